#!/usr/bin/env python
"""Benchmark of the AR(1) temporal model: sampling time against the number of windows N.

For each N, a panel simulated from the temporal model (`ratepool.model.simulate.simulate_ar_counts`:
40 windows per entity of which about 36 are kept, so J = N / 36; mu 5, alpha 2, phi 3, rho 0.7, sigma 0.35, 10% of
windows missing, seeded) is fitted with the DEFAULT sampler settings (4 chains x (1000 warmup
+ 2000 draws), adapt delta 0.9; obs_predictions auto) on PyStan, each N in a fresh process.
Compilation is done once, up front. The table gives the sampling seconds
(`FitResult.sampling_seconds`: all chains and collecting the draws), seconds per window, min
bulk ESS over mu/alpha/phi/rho/s/sigma per second, max R-hat, divergences, and the peak summed RSS
of the process tree during the fit, and the CPU seconds the process tree spent during the fit
(``cpu_s``, from /proc: user + system time of this process and the sampler workers it
started). On a shared machine the wall time depends on the load; ``cpu_s / 2`` is what the fit
takes on an idle 2-core machine (4 chains keep both cores busy), and the extrapolation of the
largest N that samples in 600 s uses it (the cost of a gradient is O(N); the number of leapfrog
steps per iteration grows slowly with N, so read it as an upper bound when the last measured N
is far below it).

Usage::

    python scripts/benchmark_temporal.py                    # N = 500, 1000, 2000, 4000
    python scripts/benchmark_temporal.py --sizes 1000 8000 --time-cap 900
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import TreeMemory, _tree  # noqa: E402  (the process-tree RSS poller)

DEFAULT_SIZES = (500, 1000, 2000, 4000)
WINDOWS_PER_ENTITY = 40
TRUTH = dict(mu=5.0, alpha=2.0, phi=3.0, rho=0.7, sigma=0.35, missing=0.1)
PARAMETERS = ["mu", "alpha", "phi", "rho", "s", "sigma"]
BUDGET_S = 600.0


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _tree(os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def run_one(n_rows: int, seed: int) -> dict:
    """One measurement (inside a fresh subprocess)."""
    import arviz as az

    import ratepool
    from ratepool.model.simulate import simulate_ar_counts

    kept_per_entity = 1 + (WINDOWS_PER_ENTITY - 1) * (1 - TRUTH["missing"])
    n_entities = max(2, round(n_rows / kept_per_entity))
    simulated = simulate_ar_counts(n_entities=n_entities, windows=WINDOWS_PER_ENTITY,
                                   seed=seed, **TRUTH)
    data = ratepool.from_dataframe(simulated.frame, window_col="window")
    config = ratepool.ModelConfig(temporal="ar1", engine="pystan",
                                  max_temporal_windows=10**9)
    cpu_before = tree_cpu_seconds()
    with TreeMemory() as tree:
        result = ratepool.fit(data, config)
    cpu = tree_cpu_seconds() - cpu_before
    posterior = result.idata.posterior[PARAMETERS]
    ess = az.ess(posterior, method="bulk")
    rhat = az.rhat(posterior)
    seconds = result.sampling_seconds
    return {
        "N": data.n_windows_total, "J": data.n_entities, "status": "ok",
        "sampling_s": seconds, "s_per_window": seconds / data.n_windows_total,
        "min_ess_per_s": min(float(ess[v]) for v in PARAMETERS) / seconds,
        "rhat_max": max(float(rhat[v]) for v in PARAMETERS),
        "divergences": int(result.idata.sample_stats["diverging"].sum()),
        "path_kept": "lambda" in result.idata.posterior,
        "tree_rss_gb": tree.peak_bytes / 2**30,
        "cpu_s": cpu, "idle_2core_s": cpu / 2, "load_avg_1min": os.getloadavg()[0],
    }


def in_subprocess(args: list[str], timeout: float) -> dict | None:
    process = subprocess.Popen([sys.executable, __file__, "--worker", *args],
                               stdout=subprocess.PIPE, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None
    if process.returncode != 0:
        return {"status": f"failed (exit code {process.returncode})"}
    return json.loads(out.decode().strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--time-cap", type=float, default=1200.0,
                        help="seconds allowed for one run (whole subprocess)")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--worker", nargs=1, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_one(int(args.worker[0]), args.seed)))
        return 0

    subprocess.run([sys.executable, "-c", "import ratepool; from ratepool.model.program import "
                    "temporal_program; ratepool.get_engine('pystan').compile(temporal_program())"],
                   check=True)
    rows = []
    for n_rows in args.sizes:
        start = time.perf_counter()
        row = in_subprocess([str(n_rows)], args.time_cap)
        row = row or {"N": n_rows, "status": f"exceeded cap ({args.time_cap:.0f} s)"}
        row["wall_s"] = time.perf_counter() - start
        rows.append(row)
        print(json.dumps(row), flush=True)
        if row["status"] != "ok":
            break
    keys = ["N", "J", "status", "sampling_s", "cpu_s", "idle_2core_s", "load_avg_1min",
            "min_ess_per_s", "rhat_max", "divergences", "path_kept", "tree_rss_gb", "wall_s"]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{row[k]:.4g}" if isinstance(row.get(k), float)
                                else str(row.get(k, "")) for k in keys) + " |")
    measured = [row for row in rows if row["status"] == "ok"]
    if measured:
        last = measured[-1]
        limit = int(BUDGET_S * last["N"] / last["idle_2core_s"])
        print(f"\nlinear extrapolation from N = {last['N']} (CPU seconds / 2): about "
              f"{limit:,} windows in {BUDGET_S:.0f} s of sampling on an idle 2-core machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
