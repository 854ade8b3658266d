#!/usr/bin/env python
"""Benchmark: aggregating Parquet rows on a local Dask cluster and a local Spark session.

For each N (default 1e6 and 1e7) and J = 2,000 entities, simulated rows (string labels
``host-00042``, NB2 counts, an integer window column; `bench_data.simulate_rows`) are written
once as 8 Parquet files. Each row of the table is a fresh subprocess that aggregates that
directory to `CountData`:

- ``pandas``: ``pd.read_parquet`` + `ratepool.from_dataframe` (one machine, the reference);
- ``dask``: a ``dask.distributed.LocalCluster`` of 2 worker processes x 1 thread,
  ``dd.read_parquet`` + `ratepool.from_dask`;
- ``spark``: ``SparkSession`` ``local[2]`` (shuffle partitions 2 x 4, UI off, Arrow on,
  driver memory 2 GB), ``spark.read.parquet`` + `ratepool.from_spark`;

each without and with the window column (which adds the exact duplicate-(entity, window)
group-by). ``startup s`` is starting the cluster or session (not included in ``aggregate s``,
which includes reading the files); ``tree RSS`` is the peak summed RSS of the subprocess and
every process it started (Dask workers, Spark's JVM) during the aggregation, polled every 0.1 s;
``driver RSS`` is the Python driver's own peak (``VmHWM``; Spark's JVM is a separate process).
``same`` says whether labels, windows, totals and histogram equal the pandas run's.

Usage::

    python scripts/benchmark_cluster.py                        # N = 1e6, 1e7
    python scripts/benchmark_cluster.py --sizes 1000000 --sources dask spark
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import TreeMemory  # noqa: E402
from bench_data import simulate_rows  # noqa: E402

DEFAULT_SIZES = (1_000_000, 10_000_000)
SOURCES = ("pandas", "dask", "spark")
N_FILES = 8


def write_parquet(directory: Path, n_rows: int, n_entities: int, seed: int) -> None:
    """N simulated rows with a window column, as N_FILES Parquet files."""
    if directory.exists():
        return
    frame = simulate_rows(n_rows, n_entities, seed)
    frame["window"] = frame.groupby("entity").cumcount()
    staging = directory.with_name(directory.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    for part, rows in enumerate(np.array_split(np.arange(n_rows), N_FILES)):
        frame.iloc[rows].to_parquet(staging / f"part-{part}.parquet", index=False)
    staging.rename(directory)


def digest(data) -> str:
    """A fingerprint of the statistics and label mapping, to compare runs."""
    hashed = hashlib.sha256()
    hashed.update(repr(data.labels.tolist()).encode())
    for array in (data.n_windows, data.entity_total, data.count_value, data.count_freq):
        hashed.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return hashed.hexdigest()


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (``VmHWM``; unlike ``ru_maxrss``, it does not
    carry over the parent's peak across ``exec``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_one(source: str, directory: str, window: bool) -> dict:
    """One aggregation; runs inside a fresh subprocess."""
    import ratepool

    kwargs = dict(entity_col="entity", count_col="count",
                  window_col="window" if window else None)
    start = time.perf_counter()
    if source == "pandas":
        import pandas as pd

        startup = 0.0
        with TreeMemory() as tree:
            start = time.perf_counter()
            data = ratepool.from_dataframe(pd.read_parquet(directory), **kwargs)
            seconds = time.perf_counter() - start
    elif source == "dask":
        import dask.dataframe as dd
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
        startup = time.perf_counter() - start
        with TreeMemory() as tree:
            start = time.perf_counter()
            data = ratepool.from_dask(dd.read_parquet(directory), **kwargs)
            seconds = time.perf_counter() - start
        client.close()
        cluster.close()
    else:
        from pyspark.sql import SparkSession

        spark = (SparkSession.builder.master("local[2]").appName("ratepool-benchmark")
                 .config("spark.ui.enabled", "false")
                 .config("spark.sql.shuffle.partitions", "8")
                 .config("spark.driver.memory", "2g")
                 .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        startup = time.perf_counter() - start
        with TreeMemory() as tree:
            start = time.perf_counter()
            data = ratepool.from_spark(spark.read.parquet(directory), **kwargs)
            seconds = time.perf_counter() - start
        spark.stop()
    return {
        "source": source,
        "window_check": window,
        "N": data.n_windows_total,
        "J": data.n_entities,
        "K": len(data.count_value),
        "startup_s": startup,
        "aggregate_s": seconds,
        "rows_per_s": data.n_windows_total / seconds,
        "tree_rss_mb": tree.peak_bytes / 2**20,
        "driver_rss_mb": peak_rss_mb(),
        "digest": digest(data),
    }


def in_subprocess(source: str, directory: Path, window: bool) -> dict:
    command = [sys.executable, __file__, "--worker", source, str(directory), str(int(window))]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        return {"source": source, "window_check": window, "status": "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown_table(rows: list[dict]) -> str:
    header = ["N", "J", "K", "source", "window check", "startup s", "aggregate s", "rows/s",
              "tree RSS MB", "driver RSS MB", "same as pandas"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if "digest" not in row:
            lines.append(f"| | | | {row['source']} | {row['window_check']} | failed |")
            continue
        lines.append("| " + " | ".join([
            f"{row['N']:,}", f"{row['J']:,}", f"{row['K']:,}", row["source"],
            "yes" if row["window_check"] else "no", f"{row['startup_s']:.1f}",
            f"{row['aggregate_s']:.2f}", f"{row['rows_per_s']:,.0f}",
            f"{row['tree_rss_mb']:,.0f}", f"{row['driver_rss_mb']:,.0f}",
            row.get("same", "")]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--entities", type=int, default=2_000)
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where to keep the Parquet files (default: a temporary directory)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        source, directory, window = args.worker
        print(json.dumps(run_one(source, directory, bool(int(window)))))
        return 0

    with tempfile.TemporaryDirectory(prefix="ratepool-cluster-bench-") as scratch:
        base = args.data_dir or Path(scratch)
        rows: list[dict] = []
        for n_rows in args.sizes:
            directory = base / f"rows-{n_rows}-j{args.entities}-s{args.seed}"
            write_parquet(directory, n_rows, args.entities, args.seed)
            reference: dict[bool, str] = {}
            for window in (False, True):
                for source in args.sources:
                    row = in_subprocess(source, directory, window)
                    if source == "pandas" and "digest" in row:
                        reference[window] = row["digest"]
                    if "digest" in row and window in reference:
                        row["same"] = "yes" if row["digest"] == reference[window] else "NO"
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        print()
        print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
