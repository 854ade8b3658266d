"""Library calls leave the process as they found it (working directory, temp directory, umask,
logging levels, httpstan's worker pool), work from two threads at once, and clean up only what
is provably theirs."""

from __future__ import annotations

import ast
import concurrent.futures
import fcntl
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import ratepool
from ratepool import tempdirs
from ratepool.engines.pystan import pystan_available
from ratepool.model.program import StanProgram, default_program

from .conftest import ROOT

PACKAGE = ROOT / "python" / "ratepool"
TINY = ratepool.ModelConfig(n_samples=100, n_tune=100, n_chains=2, engine="pystan")
needs_pystan = pytest.mark.skipif(not pystan_available(), reason="pystan is not installed")


def _umask_now() -> int:
    """The process umask, read without changing it (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    pytest.skip("no Umask line in /proc/self/status")
    return 0


# ---------------------------------------------------------------------------------------------
# process-wide state


_PROCESS_WIDE_CALLS = {("os", "chdir"), ("os", "umask"), ("logging", "basicConfig")}


def _process_wide_changes(path: Path) -> list[str]:
    """Calls in ``path`` that change process-wide state: os.chdir, os.umask, logger levels,
    assignments to ``tempfile.tempdir`` or a module's global pool."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = (owner.id if isinstance(owner, ast.Name) else None, node.func.attr)
            if name in _PROCESS_WIDE_CALLS or node.func.attr == "setLevel":
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node.func)}")
        if isinstance(node, ast.Assign):
            for target in node.targets:
                text = ast.unparse(target)
                if text in ("tempfile.tempdir", "stub.executor"):
                    found.append(f"{path.name}:{node.lineno} {text} = ...")
    return found


def test_library_code_changes_no_process_wide_state() -> None:
    """Only the command line (cli.py) configures logging; the PyStan child process (a program of
    its own) may set up its own process. Everything else leaves the process alone."""
    allowed = {PACKAGE / "cli" / "main.py", PACKAGE / "engines" / "_pystan_child.py"}
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if path not in allowed
             for hit in _process_wide_changes(path)]
    assert found == []


def test_writing_files_does_not_flip_the_umask(tmp_path: Path, monkeypatch) -> None:
    """Atomic files and folders get the permissions the umask gives, without os.umask calls
    (flipping the umask races with every other thread creating files)."""
    from ratepool.files import atomic_directory, atomic_write_text

    calls = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real(mask))
    path = atomic_write_text(tmp_path / "f.txt", "x")
    with atomic_directory(tmp_path / "folder") as staging:
        (staging / "a").write_text("a")
    assert calls == []
    mask = _umask_now()
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o777 & ~mask


class _Watcher(threading.Thread):
    """Samples process-wide state every millisecond while a fit runs and records changes."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.before = self.state()
        self.seen: list[tuple] = []

    @staticmethod
    def state() -> tuple:
        import httpstan.services_stub as stub

        return (os.getcwd(), tempfile.tempdir, _umask_now(), id(stub.executor),
                logging.getLogger("cmdstanpy").level, logging.getLogger("httpstan").level,
                logging.getLogger().level)

    def run(self) -> None:
        while not self.stop.is_set():
            now = self.state()
            if now != self.before:
                self.seen.append(now)
            time.sleep(0.001)


@pytest.mark.slow
@needs_pystan
def test_a_pystan_fit_changes_no_process_wide_state(example_data, monkeypatch) -> None:
    chdirs = []
    real_chdir = os.chdir
    monkeypatch.setattr(os, "chdir", lambda path: chdirs.append(path) or real_chdir(path))
    watcher = _Watcher()
    watcher.start()
    try:
        result = ratepool.fit(example_data, TINY, prior_draws=20)
    finally:
        watcher.stop.set()
        watcher.join()
    assert chdirs == []
    assert watcher.seen == [], f"changed from {watcher.before} to {watcher.seen[0]}"
    assert watcher.state() == watcher.before
    assert result.idata.posterior["theta"].shape == (2, 100, example_data.n_entities)


@pytest.mark.slow
@needs_pystan
def test_two_fits_from_two_threads(example_data, tmp_path: Path) -> None:
    """Each thread gets its own run, identical to the same fit run alone; the program each was
    given is the one its result records."""
    other = tmp_path / "same_code_other_file.stan"
    other.write_text(default_program().code)  # same code: the compiled module is reused
    programs = [default_program(), StanProgram.from_file(other)]
    configs = [TINY.replace(random_seed=1), TINY.replace(random_seed=2)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(ratepool.fit, example_data, config, program=program)
                   for config, program in zip(configs, programs)]
        results = [future.result(timeout=900) for future in futures]
    alone = ratepool.fit(example_data, configs[1])
    np.testing.assert_array_equal(results[1].idata.posterior["theta"].values,
                                  alone.idata.posterior["theta"].values)
    assert not np.array_equal(results[0].idata.posterior["mu"].values,
                              results[1].idata.posterior["mu"].values)
    assert [r.program.path for r in results] == [p.path for p in programs]


# ---------------------------------------------------------------------------------------------
# cleaning up only what is provably stale


def test_a_dead_pid_is_no_proof_of_staleness(tmp_path: Path) -> None:
    """Another machine's or container's run has a PID that means nothing here."""
    foreign = tmp_path / "ratepool-pystan-999999999-abcd"  # no such process on this machine
    foreign.mkdir()
    (foreign / "draws.npz").write_text("someone's work")
    old = time.time() - 7 * 24 * 3600
    os.utime(foreign, (old, old))
    with tempdirs.owned_tempdir("ratepool-pystan-", tmp_path) as mine:
        assert mine.is_dir()
    assert (foreign / "draws.npz").read_text() == "someone's work"
    assert not mine.exists()


_HOLD_LOCK = """
import sys, time
from ratepool import tempdirs
with tempdirs.owned_tempdir(sys.argv[2], sys.argv[1]) as path:
    print(path, flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _owned_dir_in_child(parent: Path, prefix: str, *, kill: bool) -> tuple[Path, subprocess.Popen]:
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    child = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(parent), prefix, "600"],
                             stdout=subprocess.PIPE, text=True, env=env)
    line = child.stdout.readline().strip()  # returns (empty) if the child fails to start
    assert line, f"the lock-holding child printed no path (exit {child.wait()})"
    path = Path(line)
    if kill:
        child.kill()
        child.wait()
    return path, child


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    for item in [path, *path.iterdir()]:
        os.utime(item, (then, then), follow_symlinks=False)


def test_a_killed_runs_directory_is_swept_once_provably_stale(tmp_path: Path) -> None:
    left, _ = _owned_dir_in_child(tmp_path, "ratepool-x-", kill=True)
    assert left.is_dir()  # a killed process cannot clean up
    tempdirs.sweep_stale(tmp_path, "ratepool-x-")
    assert left.is_dir(), "swept before the age threshold"
    _age(left, tempdirs.STALE_AFTER_SECONDS + 60)
    assert tempdirs.sweep_stale(tmp_path, "ratepool-x-") == [left]
    assert not left.exists()


def test_a_running_owners_directory_survives_however_old(tmp_path: Path) -> None:
    alive, child = _owned_dir_in_child(tmp_path, "ratepool-x-", kill=False)
    try:
        _age(alive, tempdirs.STALE_AFTER_SECONDS + 60)
        assert tempdirs.sweep_stale(tmp_path, "ratepool-x-") == []
        assert alive.is_dir()
    finally:
        child.kill()
        child.wait()


def test_the_lock_is_held_while_the_directory_is_in_use(tmp_path: Path) -> None:
    with tempdirs.owned_tempdir("ratepool-x-", tmp_path) as path:
        locks = [p for p in path.iterdir()]
        assert len(locks) == 1
        with open(locks[0], "rb") as handle:
            with pytest.raises(BlockingIOError):
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
