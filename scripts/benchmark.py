#!/usr/bin/env python
"""Benchmark: aggregation, sampling and memory versus N, sufficient statistics vs per observation.

For each N (default 1e3 .. 1e7) and J = 2,000 entities (J = N when N < J, since every entity
needs a window), simulated data (seeded, numpy-vectorised) are fitted with the DEFAULT
`ModelConfig` (4 chains, 1000 warmup, 2000 draws; obs_predictions auto) on the chosen engine,
once with ``likelihood="sufficient"`` and once with ``likelihood="observation"``. The
per-observation path stops at the first N whose run exceeds ``--time-cap``; larger N are
reported as "skipped (cap)".

Each (N, likelihood) run is a fresh subprocess, so peak memory does not carry over:
``RSS after aggregation`` and ``peak RSS`` are ``getrusage(RUSAGE_SELF).ru_maxrss`` of that
subprocess after aggregation (simulated DataFrame + CountData) and at the end (adds the engine,
the draws and their conversion to arviz); ``fit tree RSS`` is the peak of the summed RSS of
the subprocess and every process it started (sampler workers), polled every 0.1 s during the
fit. Compilation is done once, up front, and reported once.

Columns: aggregation seconds (`ratepool.from_dataframe` on an in-memory DataFrame with string
entity labels), sampling seconds (`FitResult.sampling_seconds`: data binding, all chains and
collecting the draws; compile excluded), min bulk-ESS per second over mu/alpha/phi and over
all theta_i (arviz bulk ESS / sampling seconds), max R-hat over mu/alpha/phi.

Usage::

    python scripts/benchmark.py                          # full grid, PyStan/auto engine
    python scripts/benchmark.py --sizes 1000 10000 --time-cap 300 --out results.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
TRUTH = {"mu": 4.0, "alpha": 2.0, "phi": 3.0}
LIKELIHOODS = ("sufficient", "observation")


def simulate_rows(n_rows: int, n_entities: int, seed: int) -> pd.DataFrame:
    """N rows split unequally among J entities (each at least one window), vectorised.

    Window shares are Gamma(1) weights, so entity sizes vary roughly exponentially. Counts are
    NB2(theta_i, phi) with theta_i ~ Gamma(mu * alpha, alpha).
    """
    from ratepool.simulate import draw_entity_rates, nb2_draws

    rng = np.random.default_rng(seed)
    weights = rng.gamma(1.0, size=n_entities)
    n_windows = 1 + rng.multinomial(n_rows - n_entities, weights / weights.sum())
    theta = draw_entity_rates(rng, TRUTH["mu"], TRUTH["alpha"], n_entities)
    entity = np.repeat(np.arange(n_entities), n_windows)
    rng.shuffle(entity)  # rows in arbitrary order, as in a log
    counts = nb2_draws(rng, theta[entity], TRUTH["phi"])
    labels = np.array([f"host-{i:05d}" for i in range(n_entities)], dtype=object)
    return pd.DataFrame({"entity": labels[entity], "count": counts})


class TreeMemory:
    """Polls the summed RSS of this process and all its descendants (Linux /proc) in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        import threading

        self.peak_bytes = 0
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
            self.peak_bytes = max(self.peak_bytes, sum(_rss_pages(p) for p in _tree(os.getpid()))
                                  * page)
            self._stop.wait(self._interval)


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


def run_one(n_rows: int, n_entities: int, likelihood: str, engine: str, seed: int,
            entity_predictions: bool = True) -> dict:
    """One (N, likelihood) measurement; runs inside a fresh subprocess."""
    import arviz as az
    import ratepool

    frame = simulate_rows(n_rows, n_entities, seed)
    frame_mb = frame.memory_usage(deep=True).sum() / 2**20
    start = time.perf_counter()
    data = ratepool.from_dataframe(frame, entity_col="entity", count_col="count")
    aggregation = time.perf_counter() - start
    aggregation_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del frame
    config = ratepool.ModelConfig(likelihood=likelihood, engine=engine,
                                  entity_predictions=entity_predictions)
    with TreeMemory() as tree:
        result = ratepool.fit(data, config)
    seconds = result.sampling_seconds
    posterior = result.idata.posterior
    hyper = az.ess(posterior[["mu", "alpha", "phi"]], method="bulk")
    theta = az.ess(posterior[["theta"]], method="bulk")
    rhat = az.rhat(posterior[["mu", "alpha", "phi"]])
    idata = result.idata
    return {
        "N": n_rows,
        "J": n_entities,
        "likelihood": likelihood,
        "status": "ok",
        "aggregation_s": aggregation,
        "sampling_s": seconds,
        "min_ess_bulk_per_s_hyper": min(float(hyper[v]) for v in ("mu", "alpha", "phi")) / seconds,
        "min_ess_bulk_per_s_theta": float(theta["theta"].min()) / seconds,
        "rhat_max_hyper": max(float(rhat[v]) for v in ("mu", "alpha", "phi")),
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "obs_predictions": "posterior_predictive" in idata.groups()
        and "y_rep" in idata.posterior_predictive,
        "frame_mb": frame_mb,
        "rss_after_aggregation_mb": aggregation_rss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "fit_tree_rss_mb": tree.peak_bytes / 2**20,
        "engine": result.engine,
    }


def compile_once(engine: str) -> dict:
    """Compile the packaged program (or find it cached); returns seconds and engine name."""
    import ratepool
    from ratepool.program import default_program

    runner = ratepool.get_engine(engine)
    start = time.perf_counter()
    compiled = runner.compile(default_program())
    return {"compile_s": time.perf_counter() - start, "compiled_now": compiled,
            "engine": runner.name, "versions": runner.versions()}


def in_subprocess(args: list[str], timeout: float | None) -> dict | None:
    """Run this script's worker mode in a new process group; None when it exceeds timeout."""
    command = [sys.executable, __file__, "--worker", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the worker and the sampler processes it started
        process.communicate()
        return None
    if process.returncode != 0:
        return {"status": f"failed (exit code {process.returncode})"}
    return json.loads(out.decode().strip().splitlines()[-1])


def _fmt(value: object, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def markdown_table(rows: list[dict]) -> str:
    header = ["N", "J", "likelihood", "status", "aggregation s", "sampling s",
              "min ESS/s mu,alpha,phi", "min ESS/s theta", "R-hat max", "divergences",
              "obs_predictions", "RSS after aggregation MB", "peak RSS MB",
              "fit tree RSS MB"]
    keys = ["N", "J", "likelihood", "status", "aggregation_s", "sampling_s",
            "min_ess_bulk_per_s_hyper", "min_ess_bulk_per_s_theta", "rhat_max_hyper",
            "divergences", "obs_predictions", "rss_after_aggregation_mb", "peak_rss_mb",
            "fit_tree_rss_mb"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = []
        for key in keys:
            value = row.get(key, "")
            if key == "N":
                value = f"{value:,}"
            elif key == "aggregation_s" or key == "rhat_max_hyper":
                value = f"{value:.3f}" if isinstance(value, float) else value
            cells.append(_fmt(value, 1 if key.endswith("_mb") or key == "sampling_s" else 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--time-cap", type=float, default=600.0,
                        help="seconds allowed for one per-observation run (whole subprocess)")
    parser.add_argument("--engine", default="auto", choices=("auto", "cmdstan", "pystan"))
    parser.add_argument("--likelihoods", nargs="+", default=list(LIKELIHOODS),
                        choices=LIKELIHOODS)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--out", type=Path, help="also write the rows to this CSV")
    parser.add_argument("--entity-predictions", choices=("on", "off"), default="on",
                        help="per-entity generated quantities (default on, as in ModelConfig)")
    parser.add_argument("--worker", nargs=5,
                        metavar=("N", "J", "LIKELIHOOD", "ENGINE", "ENTITY_PREDICTIONS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        n_rows, n_entities, likelihood, engine, entity = args.worker
        row = run_one(int(n_rows), int(n_entities), likelihood, engine, args.seed,
                      entity_predictions=entity == "on")
        print(json.dumps(row))
        return 0

    info = in_subprocess_compile(args.engine)
    print(f"engine: {info['engine']} {info['versions']}; compile: {info['compile_s']:.1f} s"
          f"{'' if info['compiled_now'] else ' (already in the cache)'}", flush=True)
    rows: list[dict] = []
    capped = set()
    for likelihood in args.likelihoods:  # the whole grid of one path, then the other
        for n_rows in args.sizes:
            n_entities = min(args.entities, n_rows)
            base = {"N": n_rows, "J": n_entities, "likelihood": likelihood}
            if likelihood in capped:
                rows.append(dict(base, status="skipped (cap)"))
                print(f"N={n_rows:,} {likelihood}: skipped (cap)", flush=True)
                continue
            cap = args.time_cap if likelihood == "observation" else None
            start = time.perf_counter()
            row = in_subprocess([str(n_rows), str(n_entities), likelihood, args.engine,
                                 args.entity_predictions], cap)
            if row is None:
                capped.add(likelihood)
                row = dict(base, status=f"exceeded cap ({args.time_cap:.0f} s)")
            row = dict(base, **row)
            row["wall_s"] = time.perf_counter() - start
            rows.append(row)
            print(f"N={n_rows:,} {likelihood}: {json.dumps(row)}", flush=True)
    rows.sort(key=lambda row: (row["N"], LIKELIHOODS.index(row["likelihood"])))
    table = markdown_table(rows)
    print()
    print(table)
    if args.out:
        with args.out.open("w", newline="") as handle:
            fields = sorted({key for row in rows for key in row})
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    return 0


def in_subprocess_compile(engine: str) -> dict:
    """Compile in a subprocess too, so the parent never loads the engine."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import benchmark; print(json.dumps(benchmark.compile_once({engine!r})))")
    command = [sys.executable, "-c", code]
    out = subprocess.run(command, stdout=subprocess.PIPE, check=True).stdout
    return json.loads(out.decode().strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
