"""The Stan programs: where they live, their source and content hash.

``hierarchical_negbinom.stan`` is the model (with its options); ``temporal_negbinom.stan`` is
the structurally different AR(1) temporal model (`ratepool.model.temporal`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ratepool.errors import RatepoolError

__all__ = ["StanProgram", "default_program", "temporal_program", "cache_root", "PROGRAM_FILE",
           "TEMPORAL_PROGRAM_FILE"]

PROGRAM_FILE = "hierarchical_negbinom.stan"
TEMPORAL_PROGRAM_FILE = "temporal_negbinom.stan"


@dataclass(frozen=True)
class StanProgram:
    """A Stan program's path, source code and SHA-256 of that code."""

    path: Path
    code: str

    @property
    def sha256(self) -> str:
        """Hex digest of the program text; compiled models are cached under it."""
        return hashlib.sha256(self.code.encode("utf-8")).hexdigest()

    @property
    def name(self) -> str:
        """File name without the ``.stan`` suffix."""
        return self.path.stem

    @classmethod
    def from_file(cls, path: str | Path) -> "StanProgram":
        """Read a program from ``path``."""
        path = Path(path)
        return cls(path=path, code=path.read_text(encoding="utf-8"))


def _candidate_paths(file: str = PROGRAM_FILE) -> list[Path]:
    # Installed wheel: the build copies stan/ into the package. Source checkout or editable
    # install: the repository's top-level stan/ directory.
    packaged = Path(str(resources.files("ratepool"))) / "stan" / file
    checkout = Path(__file__).resolve().parents[3] / "stan" / file
    return [packaged, checkout]


@lru_cache(maxsize=2)
def _packaged_program(file: str) -> StanProgram:
    for path in _candidate_paths(file):
        if path.is_file():
            return StanProgram.from_file(path)
    raise RatepoolError(
        f"cannot find {file}; looked in {[str(p) for p in _candidate_paths(file)]}. "
        "Reinstall ratepool"
    )


def default_program() -> StanProgram:
    """The packaged hierarchical Gamma–Negative-Binomial program."""
    return _packaged_program(PROGRAM_FILE)


def temporal_program() -> StanProgram:
    """The packaged AR(1) temporal program (``temporal_negbinom.stan``)."""
    return _packaged_program(TEMPORAL_PROGRAM_FILE)


def cache_root() -> Path:
    """Per-user cache directory for compiled models.

    ``RATEPOOL_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/ratepool``, else ``~/.cache/ratepool``.
    It is never inside the installed package, which may be read-only.
    """
    explicit = os.environ.get("RATEPOOL_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "ratepool"
