"""Several PyStan runs at once, in separate processes: first compiles of one program build it
once and all succeed; identical seeded runs all succeed and give identical draws."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import EXAMPLE_CSV

PROBE = """
import logging, sys
import numpy as np
import ratepool
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
data = ratepool.load_counts(sys.argv[1])
config = ratepool.ModelConfig(n_samples=50, n_tune=50, n_chains=1, random_seed=int(sys.argv[2]))
result = ratepool.fit(data, config, engine="pystan")
if len(sys.argv) > 3:
    np.savez(sys.argv[3], **{name: result.idata.posterior[name].values
                             for name in result.idata.posterior.data_vars})
print("fitted")
"""


def _fresh_cache_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    # ArviZ writes a once-a-day stamp file in the cache on import, through a fixed temporary
    # name: three first imports at once in a fresh cache can race there (ArviZ's, not ours).
    subprocess.run([sys.executable, "-c", "import arviz"], env=env, check=True,
                   capture_output=True)
    return env


def _run_at_once(env: dict[str, str], argvs: list[list[str]]) -> list[tuple[str, str]]:
    processes = [subprocess.Popen([sys.executable, "-c", PROBE, str(EXAMPLE_CSV), *argv],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
                 for argv in argvs]
    outputs = [p.communicate(timeout=900) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
        assert "fitted" in stdout
    return outputs


@pytest.mark.slow
def test_concurrent_first_compiles_all_succeed(tmp_path: Path) -> None:
    env = _fresh_cache_env(tmp_path)
    outputs = _run_at_once(env, [["1"], ["2"], ["3"]])
    assert sum("compiling" in stderr for _, stderr in outputs) == 1
    modules = list((tmp_path / "cache").rglob("*.so"))
    assert len(modules) == 1


@pytest.mark.slow
def test_identical_seeded_runs_at_once_all_succeed_with_identical_draws(
        tmp_path: Path) -> None:
    env = _fresh_cache_env(tmp_path)
    files = [tmp_path / f"draws{i}.npz" for i in range(3)]
    _run_at_once(env, [["7", str(file)] for file in files])
    loaded = [np.load(file) for file in files]
    assert set(loaded[0].files) == set(loaded[1].files) == set(loaded[2].files)
    for name in loaded[0].files:
        np.testing.assert_array_equal(loaded[1][name], loaded[0][name], err_msg=name)
        np.testing.assert_array_equal(loaded[2][name], loaded[0][name], err_msg=name)
    assert not list((tmp_path / "cache").rglob("*.jsonlines.gz"))  # no fit left behind


SEQUENTIAL = """
import sys
import numpy as np
import ratepool
data = ratepool.load_counts(sys.argv[1])
config = ratepool.ModelConfig(n_samples=50, n_tune=50, n_chains=2, random_seed=7)
engine = ratepool.get_engine("pystan")  # one engine: both runs in its one child process
first, second = (ratepool.fit(data, config, engine=engine) for _ in range(2))
np.testing.assert_array_equal(first.idata.posterior["mu"].values,
                              second.idata.posterior["mu"].values)
print("fitted twice")
"""


@pytest.mark.slow
def test_identical_seeded_runs_one_after_another_in_one_process(tmp_path: Path) -> None:
    """The sampler's worker processes outlive a run and inherit the run's fit lock: the lock is
    released explicitly, or the next run with the same fit names waits on it for ever."""
    done = subprocess.run([sys.executable, "-c", SEQUENTIAL, str(EXAMPLE_CSV)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fitted twice" in done.stdout
