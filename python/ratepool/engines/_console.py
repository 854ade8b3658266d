"""Capture what an engine writes to stdout/stderr, optionally echoing it (its progress bar)."""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Iterator, TextIO

__all__ = ["captured_console"]


class _Tee(io.TextIOBase):
    """A text stream that records everything and forwards it to ``echo`` when given."""

    def __init__(self, record: io.StringIO, echo: TextIO | None) -> None:
        self._record = record
        self._echo = echo

    def write(self, text: str) -> int:
        self._record.write(text)
        if self._echo is not None:
            self._echo.write(text)
            self._echo.flush()
        return len(text)

    def isatty(self) -> bool:  # engines draw in-place bars only on a terminal
        return bool(self._echo is not None and self._echo.isatty())

    def flush(self) -> None:
        if self._echo is not None:
            self._echo.flush()


@contextlib.contextmanager
def captured_console(show: bool) -> Iterator[io.StringIO]:
    """Redirect Python-level stdout and stderr into a buffer; echo to stderr if ``show``."""
    record = io.StringIO()
    tee = _Tee(record, sys.stderr if show else None)
    with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(tee):
        yield record
