"""The ``ratepool`` command line. Printing happens here, not in the library.

Subcommands: ``fit``, ``compare``, ``prior-check``, ``export-data``, ``report --from-cmdstan-csv``,
``diagnose`` and ``score``; ``ratepool SUBCOMMAND --help`` explains each option. Exit codes: 0 success, 1 a
file could not be written or read (or ``diagnose --strict`` found a problem), 2 invalid
arguments, data or config, 3 the Stan engine is missing or failed (compile, sampling), 130
interrupted.

The console script and ``python -m ratepool`` enter through `ratepool.__main__`, which installs
the Ctrl-C handler before this module's imports (and overrides an inherited "ignore SIGINT";
its docstring says why); `main` turns Ctrl-C in any later phase into ``interrupted``, exit 130.
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from ratepool.cli.common import EXIT_ENGINE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from ratepool.cli.parser import build_parser
from ratepool.errors import EngineError, RatepoolError

__all__ = ["main"]


class _StderrHandler(logging.Handler):
    """Writes records to the current ``sys.stderr`` (looked up at each record)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _configure_logging(*, quiet: bool, verbose: bool = False) -> None:
    """Show the library's INFO lines (one per phase: reading, compiling, sampling, writing)
    unless quiet; with ``verbose``, also its DEBUG lines (the compiler's and the sampler's own
    messages) and cmdstanpy's INFO. cmdstanpy's warnings (Stan's informational "proposal
    rejected" messages during warmup) show only with ``verbose``: the diagnostics report what
    matters about the run.

    The ``ratepool`` and ``cmdstanpy`` loggers get a handler once per process (cmdstanpy adds
    its own INFO handler only to a logger without one); each call sets their levels, so repeated
    `main` calls in one process honour their own ``--quiet`` / ``--verbose``.
    """
    ours = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    for name, level in (("ratepool", ours),
                        ("cmdstanpy", logging.INFO if verbose else logging.ERROR)):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter(f"{name}: %(message)s"))
            logger.addHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (``sys.argv[1:]`` by default); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        _configure_logging(quiet=getattr(args, "quiet", False),
                           verbose=getattr(args, "verbose", False))
        return args.handler(args)
    except EngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ENGINE
    except RatepoolError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
