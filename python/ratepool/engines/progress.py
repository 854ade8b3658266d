"""One progress line for a sampling run, the same on both engines.

Each engine reports how far its chains are: CmdStan one iteration count per chain (from its
console lines), PyStan the share of all chains' iterations (httpstan's own ``Sampling: 45%``).
`SamplingProgress` turns either into what a user sees:

* on a terminal (``echo`` is a TTY), one line redrawn in place,
  ``Sampling:  45% (4 chains x 3000 iterations, 1m05s)``, ended by a ``done`` line;
* elsewhere (a pipe, a log file, or no ``echo``: library callers), the log gets a line at INFO
  every tenth of the run (``sampling: 40% of 4 chains x 3000 iterations after 1m05s``), so a long
  run shows life wherever logging is configured, and the echo only the final line.

It is thread-safe: CmdStan's chains report from one thread each.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import TextIO

__all__ = ["SamplingProgress", "LOG_STEP", "format_seconds"]

log = logging.getLogger(__name__)

#: Share of the run between two INFO lines when no line is redrawn in place.
LOG_STEP = 0.1
#: A CmdStan console progress line, ``Chain [2] Iteration:  100 / 3000 [  3%]  (Warmup)``
#: (``Chain [n]`` is there when one process runs several chains).
_CMDSTAN_ITERATION = re.compile(r"^(?:Chain \[(\d+)\] )?Iteration:\s*(\d+)\s*/")
#: PyStan's progress line, ``Sampling:  45% (5400/12000)``.
_PYSTAN_SHARE = re.compile(r"Sampling:\s*(\d+)%")
#: The PyStan child's line before each wave of chains, ``ratepool: sampling chains 3-4 of 4``
#: (`ratepool.engines._pystan_child`); PyStan's share that follows is the wave's.
_PYSTAN_WAVE = re.compile(r"ratepool: sampling chains (\d+)-(\d+) of (\d+)")


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class SamplingProgress:
    """How far a run of ``chains`` chains of ``iterations`` iterations each (warmup included) is.

    Parameters
    ----------
    chains : int
        Chains of the run.
    iterations : int
        Iterations of each chain, warmup included.
    echo : file-like, optional
        Where a user watches (the CLI's stderr); None for library callers (the log only).
    """

    def __init__(self, chains: int, iterations: int, echo: TextIO | None = None) -> None:
        self.chains = max(int(chains), 1)
        self.iterations = max(int(iterations), 1)
        self.echo = echo
        self._live = bool(echo is not None and echo.isatty())
        self._done_by_chain: dict[int, int] = {}
        self._share = 0.0
        self._logged_steps = 0
        self._shown = -1  # the percent on the terminal line
        self._wave = (0.0, 1.0)  # PyStan's current wave: share done before it, its share
        self._finished = False
        self._start = time.monotonic()
        self._lock = threading.Lock()

    @property
    def share(self) -> float:
        """The share of all iterations done, in [0, 1]."""
        return self._share

    def cmdstan_line(self, line: str, chain: int) -> None:
        """Take one of CmdStan's console lines; ``chain`` is the chain (process) it came from,
        used when the line does not name its chain."""
        match = _CMDSTAN_ITERATION.match(line.strip())
        if match is None:
            return
        chain = int(match.group(1)) if match.group(1) else chain
        with self._lock:
            self._done_by_chain[chain] = int(match.group(2))
            total = sum(self._done_by_chain.values())
            self._advance(total / (self.chains * self.iterations))

    def pystan_line(self, line: str) -> None:
        """Take one of PyStan's console lines (its ``Sampling: NN%`` progress, the share of
        the current wave of chains, announced by ``ratepool: sampling chains 3-4 of 4``)."""
        wave = _PYSTAN_WAVE.search(line)
        if wave is not None:
            first, last, total = (int(group) for group in wave.groups())
            with self._lock:
                self._wave = ((first - 1) / total, (last - first + 1) / total)
            return
        match = _PYSTAN_SHARE.search(line)
        if match is None:
            return
        with self._lock:
            before, share = self._wave
            self._advance(before + share * int(match.group(1)) / 100)

    def finish(self) -> None:
        """The run ended: the final line (once)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._share = 1.0
            took = format_seconds(time.monotonic() - self._start)
            if self._live or self.echo is None:
                self._log_steps(final=True)
            if self.echo is not None:
                line = f"Sampling: 100% in {took}, done."
                self.echo.write(f"\r{line.ljust(60)}\n" if self._live else f"{line}\n")
                self.echo.flush()

    def _advance(self, share: float) -> None:
        share = min(max(share, self._share), 1.0)  # never backwards
        if self._finished or share == self._share and share > 0:
            return
        self._share = share
        if self._live and int(share * 100) > self._shown:  # redrawn when the percent changes
            self._shown = int(share * 100)
            elapsed = format_seconds(time.monotonic() - self._start)
            self.echo.write(f"\rSampling: {share:4.0%} ({self.chains} chains x "  # type: ignore
                            f"{self.iterations} iterations, {elapsed})".ljust(60))
            self.echo.flush()  # type: ignore[union-attr]
        elif not self._live:
            self._log_steps()

    def _log_steps(self, final: bool = False) -> None:
        """An INFO line for each tenth of the run passed since the last one (at DEBUG when the
        line is redrawn on a terminal)."""
        steps = int(self._share / LOG_STEP + 1e-9)
        if steps <= self._logged_steps or (steps * LOG_STEP >= 1 and not final):
            return
        self._logged_steps = steps
        level = logging.DEBUG if self._live else logging.INFO
        log.log(level, "sampling: %d%% of %d chains x %d iterations after %s",
                round(min(steps * LOG_STEP, 1) * 100), self.chains, self.iterations,
                format_seconds(time.monotonic() - self._start))
