"""Working directories a run owns, and a sweep that deletes only what is provably stale.

Every directory made here is ``<prefix><pid>-<random>`` (the process id is for people reading a
listing; it proves nothing: another container or machine sharing the file system has its own
process ids). While its owner uses it, the directory holds a lock file, ``.ratepool-lock``,
with an exclusive ``flock`` held by the owner; the lock file is locked before it gets its name,
so a lock file that can be locked by someone else means its owner has gone. A sweep deletes a
sibling only when both hold: its lock is held by nobody, and nothing in it (the directory and
its direct entries) changed for `STALE_AFTER_SECONDS` — the margin for file systems whose locks
are not shared between machines. A directory without a lock file is never deleted.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

__all__ = ["owned_dir", "owned_tempdir", "sweep_stale", "owner_gone", "release_lock",
           "LOCK_NAME", "STALE_AFTER_SECONDS"]

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: no flock, so no proof of staleness; sweeps delete nothing
    fcntl = None  # type: ignore[assignment]

#: The lock file inside every owned directory.
LOCK_NAME = ".ratepool-lock"
#: How long an unlocked directory must have been left unchanged before a sweep deletes it.
STALE_AFTER_SECONDS = 3600.0


def _make_dir(parent: Path, prefix: str, mode: int) -> Path:
    """Create ``parent/<prefix><pid>-<random>`` with ``mode`` (less the umask)."""
    for _ in range(100):
        path = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, "no free directory name", str(parent / prefix))


def _lock(directory: Path) -> int:
    """Create the directory's lock file, already locked, and return its descriptor."""
    temp = directory / f"{LOCK_NAME}.{secrets.token_hex(4)}"
    descriptor = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(temp, directory / LOCK_NAME)  # appears under its name only once locked
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def release_lock(directory: Path) -> None:
    """Remove the lock file (before ``directory`` is renamed into a place that outlives the run).

    The lock itself stays held through the open descriptor until the owner finishes.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(Path(directory) / LOCK_NAME)


def _last_change(directory: Path) -> float:
    times = [directory.lstat().st_mtime]
    with os.scandir(directory) as entries:
        times += [entry.stat(follow_symlinks=False).st_mtime for entry in entries]
    return max(times)


def owner_gone(directory: str | Path) -> bool:
    """Whether ``directory`` has a lock file that nobody holds (its owner has finished or died)."""
    if fcntl is None:
        return False
    try:
        descriptor = os.open(Path(directory) / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False  # no lock file: no proof
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its owner holds it
    finally:
        os.close(descriptor)  # releases our probe lock, if we got it
    return True


def _provably_stale(directory: Path, now: float) -> bool:
    """Owner gone, and nothing changed for `STALE_AFTER_SECONDS`."""
    try:
        return owner_gone(directory) and now - _last_change(directory) > STALE_AFTER_SECONDS
    except OSError:
        return False


def sweep_stale(parent: str | Path, prefix: str) -> list[Path]:
    """Delete ``parent/<prefix>*`` directories that are provably stale; return them."""
    parent = Path(parent)
    removed = []
    now = time.time()
    try:
        entries = [entry for entry in parent.iterdir() if entry.name.startswith(prefix)]
    except OSError:
        return removed
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink() and _provably_stale(entry, now):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("removed %d directories left by runs that ended without cleaning up in %s",
                 len(removed), parent)
    return removed


@contextlib.contextmanager
def owned_dir(parent: str | Path, prefix: str, *, private: bool = True) -> Iterator[Path]:
    """Sweep stale siblings, create ``parent/<prefix><pid>-<random>`` holding its lock, and
    delete it afterwards (if it is still there: the caller may have renamed it away).

    Parameters
    ----------
    parent : path
        Where to create it (created if missing).
    prefix : str
        Name prefix; siblings with the same prefix are swept.
    private : bool
        Mode 0700 (default); otherwise 0777 less the umask, like any new directory.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(parent, prefix)
    path = _make_dir(parent, prefix, 0o700 if private else 0o777)
    try:
        descriptor = _lock(path)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(descriptor)


@contextlib.contextmanager
def owned_tempdir(prefix: str, parent: str | Path | None = None) -> Iterator[Path]:
    """A fresh private owned directory (in the temp directory by default), deleted afterwards."""
    with owned_dir(parent or tempfile.gettempdir(), prefix) as path:
        yield path
