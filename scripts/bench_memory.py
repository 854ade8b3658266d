"""Peak memory and CPU of a process tree (Linux ``/proc``), polled in a thread.

Shared by the benchmark scripts (`benchmark.py`, `benchmark_scale_out.py`,
`benchmark_temporal.py`, `benchmark_cluster.py`): the worker process and every process it
starts (the PyStan child and its chain processes, CmdStan, Dask workers) are summed, so the
peak is what the machine had to hold.
"""

from __future__ import annotations

import os
import threading
import time


class TreeMemory:
    """Polls the summed RSS of this process and all its descendants (Linux /proc) in a thread.

    Also the summed PSS (``/proc/PID/smaps_rollup``): forked chain processes share pages with
    their parent, which a sum of RSS counts once per process and PSS splits between them.

    Parameters
    ----------
    interval : float
        Seconds between polls.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self._phase_peak = 0
        self._cpu_ticks: dict[int, int] = {}  # latest user + system ticks of each process seen
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            tree = _tree(os.getpid())
            rss = sum(_rss_pages(p) for p in tree) * page
            self.peak_bytes = max(self.peak_bytes, rss)
            self._phase_peak = max(self._phase_peak, rss)
            self.peak_pss_bytes = max(self.peak_pss_bytes, sum(_pss_bytes(p) for p in tree))
            for pid in tree:
                ticks = _cpu_ticks(pid)
                if ticks is not None:
                    self._cpu_ticks[pid] = ticks
            self._stop.wait(self._interval)

    def phase_peak(self) -> float:
        """Peak summed RSS (GB) since the last call; starts the next phase."""
        time.sleep(2 * self._interval)  # at least one poll of the phase's end
        peak, self._phase_peak = self._phase_peak, 0
        return peak / 2**30

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) used so far by the processes of the tree (polled: a
        process's last 0.1 s may be missed)."""
        return sum(self._cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    except (OSError, IndexError, ValueError):
        return None


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    stack.extend(int(c) for c in handle.read().split())
        except OSError:
            continue
    return pids


def _rss_pages(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
