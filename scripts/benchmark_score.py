"""Benchmark of scoring: rows per second and peak memory, each case in a fresh process.

    python scripts/benchmark_score.py [--draws 8000] [--entities 1000] [--rows 1e6 1e7]
                                      [--distinct 20000]

Synthetic posterior draws (no fit needed): S draws of J entity rates around 0.5..50 and phi
around 3. Cases:

* ``typical``: N rows of NB2 counts for the J entities (plus 1% unseen entities). Rows share
  (entity, count) pairs, which are scored once each: the cost follows the distinct pairs.
* ``all distinct``: every row a different (entity, count) pair, the worst case; its rows/s
  is the rate at which distinct pairs are scored (N rows of distinct pairs take N / that).

The work memory of a chunk is bounded (256 MB by default, ``memory_bytes``); the rest of the
peak is the input and the output table, O(N).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd


def run_case(kind: str, rows: int, draws: int, entities: int, seed: int = 0) -> dict:
    from ratepool.model.simulate import nb2_draws
    from ratepool.posterior.predictive import PosteriorRates
    from ratepool.posterior.score import score_rows

    rng = np.random.default_rng(seed)
    base = np.exp(rng.uniform(np.log(0.5), np.log(50), entities))
    theta = base[None, :] * rng.gamma(50, 1 / 50, (draws, entities))
    labels = np.arange(entities, dtype=np.int64)
    rates = PosteriorRates(labels=labels.astype(object), theta=theta,
                           theta_new=rng.gamma(1.0, 10.0, draws),
                           phi=rng.gamma(300, 0.01, draws))
    if kind == "typical":
        entity = rng.integers(0, int(entities * 1.01), rows)   # ~1% unseen labels
        mean = np.where(entity < entities, base[np.minimum(entity, entities - 1)], 10.0)
        count = nb2_draws(rng, mean, 3.0)
    else:
        entity = np.arange(rows) % entities
        count = np.arange(rows) // entities                    # all (entity, count) distinct
    start = time.perf_counter()
    result = score_rows(rates, pd.Series(entity), count)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KB -> GB
    return {"case": kind, "rows": rows, "draws": draws, "entities": entities,
            "distinct_pairs": result.info["distinct_pairs"], "seconds": seconds,
            "rows_per_s": rows / seconds, "pairs_per_s": result.info["distinct_pairs"] / seconds,
            "peak_rss_gb": peak, "flagged": int(result.table["anomaly"].sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=8000)
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--rows", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--distinct", type=int, default=20000)
    parser.add_argument("--case", nargs=2, metavar=("KIND", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.draws, args.entities)))
        return
    cases = [("typical", int(n)) for n in args.rows] + [("distinct", args.distinct)]
    print("| case | rows | draws | distinct (entity, count) pairs | seconds | rows/s | "
          "pairs/s | peak RSS |\n|---|---|---|---|---|---|---|---|", flush=True)
    for kind, rows in cases:
        out = subprocess.run([sys.executable, __file__, "--draws", str(args.draws),
                              "--entities", str(args.entities), "--case", kind, str(rows)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {'all distinct' if kind == 'distinct' else kind} | {r['rows']:,} | "
              f"{r['draws']:,} | {r['distinct_pairs']:,} | {r['seconds']:.1f} | "
              f"{r['rows_per_s']:,.0f} | {r['pairs_per_s']:,.0f} | {r['peak_rss_gb']:.2f} GB |",
              flush=True)


if __name__ == "__main__":
    main()
