#!/usr/bin/env python
"""Benchmark of threads per chain: the cost of a gradient by threads (CmdStan).

For each J, the benchmark's aggregates (`bench_data.simulate_aggregates`: mu 4, alpha 2, phi 3,
``--windows-per-entity`` windows per entity, seeded) are sampled by ONE chain of the packaged
program from ratepool's warm start (its inits and initial metric), ``--iterations`` warmup (and 10 sampling)
iterations with the warmup draws kept, three ways: the plain build (``grainsize = 0``, the
one-pass sum every fit with ``threads_per_chain = 1`` runs), and the build with STAN_THREADS
at each ``--threads`` count (``grainsize`` from `ratepool.model.standata.entity_grainsize`).
The figure is the wall time per gradient: elapsed seconds / the leapfrog steps of all
iterations (CmdStan's ``n_leapfrog__``), so that runs whose trajectories differ in the last
bits still compare; the speed-up is the plain build's time per gradient over each run's.
Run it on an otherwise idle machine (the load is printed): threads compete for cores with
everything else.

Usage::

    python scripts/benchmark_threads.py --entities 10000 100000 --threads 1 2 \\
        --out threads.csv
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))
sys.path.insert(0, str(HERE))

import pandas as pd  # noqa: E402

import ratepool  # noqa: E402
from bench_data import simulate_aggregates  # noqa: E402
from ratepool.model.program import default_program  # noqa: E402
from ratepool.model.standata import stan_data  # noqa: E402
from ratepool.model.warm_start import warm_start  # noqa: E402


def measure(model: object, values: dict, threads: int, iterations: int, seed: int) -> dict:
    """One chain of ``iterations`` warmup iterations; time per gradient."""
    start = warm_start(values, 1, seed)
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as out:
        began = time.perf_counter()
        fit = model.sample(data=values, chains=1, iter_warmup=iterations, iter_sampling=10,
                           save_warmup=True, inits=start.inits[0],
                           inv_metric={"inv_metric": start.inv_metric.tolist()},
                           seed=seed, adapt_delta=0.9, show_progress=False, output_dir=out,
                           threads_per_chain=threads if threads > 1 else None)
        seconds = time.perf_counter() - began
        steps = int(fit.draws_pd(inc_warmup=True)["n_leapfrog__"].sum())
    return {"seconds": seconds, "gradients": steps, "ms_per_gradient": 1e3 * seconds / steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--windows-per-entity", type=int, default=100)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    engine = ratepool.get_engine("cmdstan")
    program = default_program()
    models = {False: engine.cmdstan_model(program), True: engine.cmdstan_model(program, True)}
    print(f"CPUs: {os.cpu_count()}; load average {os.getloadavg()}")
    rows = []
    for entities in args.entities:
        entity_table, histogram = simulate_aggregates(
            args.windows_per_entity * entities, entities, args.seed)
        data = ratepool.from_aggregates(entity_table, histogram)
        runs = [("plain", 1)] + [("STAN_THREADS", t) for t in args.threads]
        plain = None
        for build, threads in runs:
            config = ratepool.ModelConfig(threads_per_chain=max(threads, 1))
            values = stan_data(data, config)
            if build == "STAN_THREADS" and threads == 1:
                values["grainsize"] = stan_data(data, config.replace(threads_per_chain=2))[
                    "grainsize"]  # the chunks of two threads, summed by one
            row = {"J": entities, "build": build, "threads": threads,
                   "grainsize": values["grainsize"],
                   **measure(models[build == "STAN_THREADS"], values, threads,
                             args.iterations, args.seed)}
            plain = plain or row["ms_per_gradient"]
            row["speed_up"] = plain / row["ms_per_gradient"]
            rows.append(row)
            print(row, flush=True)
    table = pd.DataFrame(rows)
    print(f"load average at the end {os.getloadavg()}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.out:
        partial = args.out.with_suffix(".partial")
        table.to_csv(partial, index=False)
        partial.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
