"""Private working directories that a killed process cannot leave behind for good.

Every directory made here carries its creator's process id in its name
(``<prefix><pid>-<random>``). A process that exits normally deletes its own; one that was
killed cannot, so the next `owned_tempdir` or `sweep_stale` call with the same prefix and parent
deletes every such directory whose process is no longer running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["make_owned_dir", "owned_tempdir", "sweep_stale", "pid_alive", "current_umask"]

log = logging.getLogger(__name__)


def current_umask() -> int:
    """The process's file creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def sweep_stale(parent: str | Path, prefix: str) -> list[Path]:
    """Delete ``parent/<prefix><pid>-*`` directories whose process has exited; return them."""
    parent = Path(parent)
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not pid_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("removed %d directories left by interrupted runs in %s", len(removed), parent)
    return removed


def make_owned_dir(parent: str | Path, prefix: str) -> Path:
    """Sweep stale siblings, then create ``parent/<prefix><pid>-<random>`` (mode 0700)."""
    sweep_stale(parent, prefix)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    return path


@contextlib.contextmanager
def owned_tempdir(prefix: str, parent: str | Path | None = None) -> Iterator[Path]:
    """A fresh owned directory (in the temp directory by default), deleted afterwards."""
    path = make_owned_dir(parent or tempfile.gettempdir(), prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
