"""Ctrl-C in every phase of ``ratepool fit`` (imports included), whatever SIGINT disposition the
command inherited: exit 130, "interrupted" on stderr, no traceback, the earlier results folder
intact byte for byte, no process of the run left and no run directory left behind.

The run is paused at a named phase by the test-only hook (`ratepool._testhooks`): the test
waits for the hook's marker file, then sends SIGINT. Nothing depends on speed or load: waits are
on files and process exits, bounded by generous timeouts that only end a failing test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import ratepool
from ratepool._testhooks import PHASES
from ratepool.engines.pystan import pystan_available

from .conftest import EXAMPLE_CSV, engine_params

needs_pystan = pytest.mark.skipif(not pystan_available(), reason="pystan is not installed")
#: Bounds that only end a failing test (a compile on a loaded machine takes minutes).
MARKER_TIMEOUT = 900.0
EXIT_TIMEOUT = 120.0
#: The SIGINT disposition the command inherits: as from a terminal, or from nohup / a
#: background job of a non-interactive shell.
DISPOSITIONS = {"inherited-default": signal.SIG_DFL, "inherited-ignore": signal.SIG_IGN}


def fit_command(out: Path, config: Path, engine: str = "pystan") -> list[str]:
    """``ratepool fit`` of the example data (PyStan by default: CmdStan is absent in CI)."""
    return [sys.executable, "-m", "ratepool", "fit", str(EXAMPLE_CSV), "--window-col",
            "window", "--engine", engine, "--out", str(out), "--config", str(config),
            "--quiet"]


def write_config(path: Path, samples: int, warmup: int = 100) -> Path:
    path.write_text(f"[sampling]\nn_samples = {samples}\nn_tune = {warmup}\nn_chains = 2\n")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def start_with_sigint(disposition: signal.Handlers):
    """A ``preexec_fn`` giving the child process the SIGINT disposition ``disposition`` (so the
    test does not depend on how pytest itself was started)."""
    return lambda: signal.signal(signal.SIGINT, disposition)


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float) -> None:
    """Until ``path`` exists; fail at once if ``process`` ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before the "
                                 f"marker appeared:\n{process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no marker {path} after {timeout} s")
        time.sleep(0.1)


def wait_for_group_exit(group: int, timeout: float) -> list[int]:
    """Wait until no live (non-zombie) process is in process group ``group``; return those left
    when ``timeout`` (a failure bound) ran out."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == group and fields[0] != "Z":
                    alive.append(int(stat.parent.name))
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.fixture()
def short_tmp():
    """A private TMPDIR with a short path (httpstan binds a Unix socket in it)."""
    path = Path(tempfile.mkdtemp(prefix="rp-int-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def earlier_results(tmp_path_factory) -> Path:
    """A complete results folder from a quick run, copied by each test."""
    base = tmp_path_factory.mktemp("earlier")
    out = base / "results"
    done = subprocess.run(fit_command(out, write_config(base / "quick.toml", 50, 50)),
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def interrupt_at(phase: str, disposition: signal.Handlers, out: Path, temp: Path,
                 config: Path, engine: str) -> subprocess.CompletedProcess:
    """Run ``ratepool fit`` paused at ``phase``, send SIGINT to it, and return how it ended;
    asserts that no process of its group is left."""
    marker = out.parent / "paused.marker"  # not in TMPDIR: that must end up empty
    env = dict(os.environ, TMPDIR=str(temp), RATEPOOL_TEST_PAUSE_AT=phase,
               RATEPOOL_TEST_PAUSE_FILE=str(marker))
    process = subprocess.Popen(fit_command(out, config, engine), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=start_with_sigint(disposition))
    try:
        wait_for_file(marker, process, MARKER_TIMEOUT)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=EXIT_TIMEOUT)
        survivors = wait_for_group_exit(process.pid, timeout=EXIT_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        marker.unlink(missing_ok=True)
    assert survivors == [], f"processes left: {survivors}"
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.slow
@needs_pystan  # for the earlier results
@pytest.mark.parametrize("engine", engine_params())
@pytest.mark.parametrize("disposition", list(DISPOSITIONS))
@pytest.mark.parametrize("phase", PHASES)
def test_ctrl_c_in_every_phase(phase: str, disposition: str, engine: str, earlier_results: Path,
                               tmp_path: Path, short_tmp: Path) -> None:
    if engine == "cmdstan" and phase == "sample":
        pytest.skip("CmdStan's chains are its own executables: no pause point inside them "
                    "(the PyStan half pauses a chain process)")
    out = tmp_path / "results"
    shutil.copytree(earlier_results, out)
    before = snapshot(out)
    config = write_config(tmp_path / "run.toml", 100)
    ended = interrupt_at(phase, DISPOSITIONS[disposition], out, short_tmp, config, engine)
    assert ended.returncode == 130, ended.stderr[-3000:]
    assert ended.stderr.strip().splitlines()[-1] == "interrupted", ended.stderr[-3000:]
    assert "Traceback" not in ended.stderr and "KeyboardInterrupt" not in ended.stderr
    assert snapshot(out) == before  # earlier results intact, byte for byte
    assert list(short_tmp.iterdir()) == []  # no run directory left
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_every_public_name_resolves() -> None:
    """``import ratepool`` loads names lazily; each one in __all__ must still resolve, by
    attribute and by ``from ratepool import``."""
    for name in ratepool.__all__:
        assert getattr(ratepool, name) is not None, name
    namespace: dict = {}
    exec(f"from ratepool import {', '.join(ratepool.__all__)}", namespace)
    assert [n for n in ratepool.__all__ if n not in namespace] == []
    assert set(ratepool.__all__) <= set(dir(ratepool))
    with pytest.raises(AttributeError, match="no_such_name"):
        ratepool.no_such_name  # noqa: B018


def test_import_ratepool_is_light() -> None:
    """The command's Ctrl-C handler is installed before the heavy imports: importing the
    package and its entry module must not load them."""
    probe = ("import sys, ratepool, ratepool.__main__; "
             "print(sorted(m for m in ('arviz', 'pandas', 'numpy', 'ratepool.cli') "
             "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=EXIT_TIMEOUT, check=True)
    assert done.stdout.strip() == "[]"


def test_importing_the_fit_submodule_keeps_ratepool_fit_the_function() -> None:
    """``ratepool.fit`` is the function; importing the module that defines it first must not
    change that."""
    probe = ("import ratepool.workflow.fit, ratepool\n"
             "assert callable(ratepool.fit) and ratepool.fit.__module__ == 'ratepool.workflow.fit'\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=EXIT_TIMEOUT)
    assert done.returncode == 0, done.stderr
