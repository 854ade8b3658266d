"""Engine plumbing: selection, draw layout, compile cache reuse, no litter, engine agreement."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import arviz as az
import numpy as np
import pytest

import ratepool
from ratepool.engines.cmdstan import find_cmdstan
from ratepool.errors import CompileError, EngineNotFoundError
from ratepool.model.program import StanProgram, default_program

from .conftest import CMDSTAN_SKIP_REASON, EXAMPLE_CSV

SMALL = ratepool.ModelConfig(n_samples=200, n_tune=200, n_chains=3)


def test_auto_falls_back_to_pystan_with_a_reason(monkeypatch, caplog, tmp_path) -> None:
    monkeypatch.setenv("CMDSTAN", str(tmp_path / "no-such-cmdstan"))
    with caplog.at_level(logging.INFO, logger="ratepool"):
        engine = ratepool.get_engine("auto")
    assert engine.name == "pystan"
    assert any("engine: pystan" in r.message and "CmdStan not found" in r.message
               for r in caplog.records)


def test_cmdstan_missing_says_how_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CMDSTAN", str(tmp_path / "no-such-cmdstan"))
    with pytest.raises(EngineNotFoundError, match="install_cmdstan.*pystan"):
        ratepool.get_engine("cmdstan")


@pytest.mark.slow
def test_pystan_draws_are_laid_out_by_chain(example_data) -> None:
    """After warmup the step size is constant within a chain and differs between chains."""
    result = ratepool.fit(example_data, SMALL, engine="pystan")
    step = result.idata.sample_stats["step_size"].values
    assert step.shape == (3, 200)
    assert np.all(step == step[:, :1])
    assert len(np.unique(step[:, 0])) == 3


@pytest.mark.slow
def test_pystan_run_leaves_no_litter(example_data, monkeypatch) -> None:
    """Nothing left in the temp directory (httpstan sockets, data files) or the working
    directory. The temp directory is a private, short one (socket paths are length-limited), so
    other processes cannot interfere. (httpstan's fit cache is checked, in a private cache, by
    the cache test below.)"""
    temp = Path(tempfile.mkdtemp(prefix="rp-litter-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    cwd_before = set(Path.cwd().iterdir())
    ratepool.fit(example_data, SMALL, engine="pystan", prior_draws=50)
    assert list(temp.iterdir()) == []
    temp.rmdir()
    assert set(Path.cwd().iterdir()) == cwd_before


CACHE_PROBE = textwrap.dedent("""
    import logging, sys
    import ratepool
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    data = ratepool.load_counts(sys.argv[1])
    config = ratepool.ModelConfig(n_samples=50, n_tune=50, n_chains=1)
    ratepool.fit(data, config, engine=sys.argv[2], prior_draws=10)
""")


def _run_probe(engine: str, cache: Path) -> str:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), RATEPOOL_CACHE_DIR=str(cache / "rp"))
    done = subprocess.run([sys.executable, "-c", CACHE_PROBE, str(EXAMPLE_CSV), engine],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def _compiled_files(cache: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in cache.rglob("*")
            if p.is_file() and (p.suffix == ".so" or os.access(p, os.X_OK))}


@pytest.mark.slow
@pytest.mark.parametrize("engine", [
    "pystan",
    pytest.param("cmdstan", marks=[pytest.mark.cmdstan, pytest.mark.skipif(
        find_cmdstan() is None, reason=CMDSTAN_SKIP_REASON)]),
])
def test_compiled_model_is_reused_across_processes(engine: str, tmp_path: Path) -> None:
    """A fresh per-user cache: the first process compiles, the second reuses the module."""
    first = _run_probe(engine, tmp_path)
    assert "compiling" in first
    compiled = _compiled_files(tmp_path)
    assert compiled, "no compiled model in the cache"
    second = _run_probe(engine, tmp_path)
    assert "compiling" not in second
    assert _compiled_files(tmp_path) == compiled  # same files, untouched
    # httpstan keeps every seeded fit unless deleted: none may remain in the private cache
    assert not [p for p in tmp_path.rglob("*.jsonlines.gz")]


@pytest.mark.slow
@pytest.mark.cmdstan
@pytest.mark.skipif(find_cmdstan() is None, reason=CMDSTAN_SKIP_REASON)
def test_engines_agree_within_monte_carlo_error(example_data) -> None:
    """Same model, same data: posterior means within 4 combined Monte Carlo standard errors."""
    config = ratepool.ModelConfig(n_samples=1000, n_tune=1000)
    fits = {name: ratepool.fit(example_data, config, engine=name).idata
            for name in ("cmdstan", "pystan")}
    for name in ("mu", "alpha", "phi", "theta"):
        means = {k: v.posterior[name].mean(("chain", "draw")).values for k, v in fits.items()}
        ses = {k: az.mcse(v, var_names=[name])[name].values for k, v in fits.items()}
        z = np.abs(means["cmdstan"] - means["pystan"]) / np.sqrt(ses["cmdstan"]**2
                                                                 + ses["pystan"]**2)
        assert np.all(z < 4.0), (name, float(np.max(z)))
    assert set(fits["cmdstan"].groups()) == set(fits["pystan"].groups())
    for group in fits["pystan"].groups():
        assert set(fits["cmdstan"][group].data_vars) == set(fits["pystan"][group].data_vars)


# ---------------------------------------------------------------------------------------------
# compiles on a busy machine: httpstan allows its own stanc run 1 second


def _fresh_cache(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing compiled yet


def test_stanc_over_its_time_budget_is_a_compile_error(monkeypatch, tmp_path) -> None:
    _fresh_cache(monkeypatch, tmp_path)
    monkeypatch.setenv("RATEPOOL_STANC_SECONDS", "0.0001")  # no stanc run is that quick
    engine = ratepool.get_engine("pystan")
    with pytest.raises(CompileError, match=r"stanc took more than 0\.0001 s to translate "
                                           r".*hierarchical_negbinom\.stan.*less loaded"):
        engine.compile(default_program())


def test_cli_compile_failure_prints_one_message_and_exits_3(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"),
               RATEPOOL_STANC_SECONDS="0.0001")
    done = subprocess.run(
        [sys.executable, "-m", "ratepool.cli", "fit", str(EXAMPLE_CSV), "--engine", "pystan",
         "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 3, done.stderr
    assert "error: stanc took more than 0.0001 s" in done.stderr
    assert "Traceback" not in done.stderr and "TimeoutExpired" not in done.stderr


def _slow_to_translate(statements: int) -> str:
    """A valid program that takes stanc seconds to translate (stanc's pedantic checks grow
    faster than linearly with a model block's statements: 2,000 take about 5 s here)."""
    lines = [f"  acc += {i}.5 * x;" for i in range(statements)]
    return "\n".join(["parameters { real x; }", "model {", "  real acc = 0;", *lines,
                      "  target += normal_lpdf(x | 0, 1) + 0 * acc;", "}"])


@pytest.mark.slow
def test_httpstan_stanc_timeouts_are_retried_then_reported(monkeypatch, tmp_path, caplog):
    _fresh_cache(monkeypatch, tmp_path)
    path = tmp_path / "slow_to_translate.stan"
    path.write_text(_slow_to_translate(3000))
    engine = ratepool.get_engine("pystan")
    with caplog.at_level(logging.DEBUG, logger="ratepool"), pytest.raises(CompileError) as caught:
        engine.compile(StanProgram.from_file(path))
    message = str(caught.value)
    assert "httpstan's stanc run (it allows 1 second) timed out 4 times" in message
    assert "slow_to_translate.stan" in message and "CmdStan" in message
    assert "Traceback" not in message
    assert any("TimeoutExpired" in record.getMessage() for record in caplog.records)
    assert not list((tmp_path / "cache").rglob("*.so"))
