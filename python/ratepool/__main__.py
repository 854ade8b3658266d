"""Entry point of the ``ratepool`` command (console script and ``python -m ratepool``).

It is deliberately light: it installs the Ctrl-C handler before anything heavy (arviz, pandas,
the engines, the command line itself) is imported, so Ctrl-C in any phase, imports included,
ends the command with the line ``interrupted`` on stderr and exit code 130.

The handler is installed even when the process inherited SIGINT as ignored (started with
``nohup``, as a background job of a non-interactive shell, or by a parent that ignores it).
That is a choice: ``ratepool`` is a foreground tool, a user pressing Ctrl-C expects it to stop,
and an interrupted run loses nothing (an earlier results folder is replaced only by a complete
new one). A caller that must not be interrupted by SIGINT should not send it; ``nohup`` still
protects against SIGHUP.
"""

from __future__ import annotations

import signal
import sys
from typing import Sequence

__all__ = ["main"]

EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ratepool`` command line; return its exit code (130 when interrupted)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        from ratepool._testhooks import pause_at

        pause_at("import")
        from ratepool.cli.main import main as cli_main

        return cli_main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
