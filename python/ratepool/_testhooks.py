"""Test-only pause points, so that tests can interrupt a run at a named phase deterministically.

Not for users. When the environment variable ``RATEPOOL_TEST_PAUSE_AT`` names a phase, the
process reaching `pause_at` with that phase writes its process id into the file named by
``RATEPOOL_TEST_PAUSE_FILE`` and then waits for a signal (a Ctrl-C handler raising
KeyboardInterrupt ends the wait; a process ignoring SIGINT waits to be killed). The wait is
bounded (``RATEPOOL_TEST_PAUSE_SECONDS``, default 600) only so that a failed test cannot leave a
process behind for ever; after it the run continues. Unset, `pause_at` is one dictionary look-up.

Phases: ``import`` (the very start of the ``ratepool`` command), ``load`` (the data being
read), ``compile`` (before the engine compiles or loads the program), ``sample`` (a chain
process of the engine is running), ``summarise`` (the draws being summarised), ``write`` (the
results being written into the hidden folder, before it is renamed into place).

This module imports only the standard library: the PyStan engine's child process loads it by
path.
"""

from __future__ import annotations

import os
import time

__all__ = ["PHASES", "pause_at"]

PHASES = ("import", "load", "compile", "sample", "summarise", "write")
_VARIABLE = "RATEPOOL_TEST_PAUSE_AT"


def pause_at(phase: str) -> None:
    """If the test hook names ``phase``, write the marker file and wait for a signal."""
    if os.environ.get(_VARIABLE) != phase:
        return
    marker = os.environ["RATEPOOL_TEST_PAUSE_FILE"]
    temp = f"{marker}.tmp{os.getpid()}"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    os.replace(temp, marker)  # the marker appears complete
    deadline = time.monotonic() + float(os.environ.get("RATEPOOL_TEST_PAUSE_SECONDS", "600"))
    while time.monotonic() < deadline:
        time.sleep(0.5)  # a signal handler's exception ends the wait at once
