"""Writing files so that readers never see half of one, and hashing them for run records.

A file is written under a temporary name in its own directory and renamed into place; a folder
is assembled in a hidden sibling (an owned directory, see `ratepool.tempdirs`) and renamed into
place only when complete. Permissions are those of any new file (the umask applies; it is never
changed).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import Iterator

from ratepool.errors import RatepoolError
from ratepool.tempdirs import owned_dir, owner_gone, release_lock

__all__ = ["atomic_file", "atomic_write_text", "atomic_directory", "file_sha256"]

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success it is renamed to ``path``.

    The temporary file is created empty with mode 0666 less the umask; on any exception it is
    deleted and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield temp
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file, then rename."""
    with atomic_file(path) as temp:
        with open(temp, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
    return Path(path)


def _recover_previous(target: Path) -> None:
    """Put back a folder a run that ended mid-swap had moved aside but not yet replaced.

    Only from a provably abandoned ``.old-`` directory: one whose lock is held by nobody.
    """
    if target.exists():
        return
    prefix = f".{target.name}.old-"
    for aside in sorted(target.parent.glob(prefix + "*/previous")):
        if owner_gone(aside.parent):
            os.replace(aside, target)
            log.warning("restored %s, left aside by an interrupted run", target)
            return


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield an empty hidden sibling directory; on success it replaces ``target``.

    On any exception (Ctrl-C included) the new directory is deleted and ``target`` is untouched.
    An existing ``target`` is moved aside, the new directory renamed into its place, and the old
    one deleted.

    Raises
    ------
    RatepoolError
        If ``target`` exists and is not a directory.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise RatepoolError(f"results path {target} exists and is not a directory; choose "
                            "another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover_previous(target)
    with owned_dir(target.parent, f".{target.name}.new-", private=False) as staging:
        yield staging
        release_lock(staging)
        if target.exists():
            with owned_dir(target.parent, f".{target.name}.old-") as old:
                os.replace(target, old / "previous")
                os.replace(staging, target)
        else:
            os.replace(staging, target)
