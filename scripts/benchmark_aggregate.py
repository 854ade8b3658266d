"""Benchmark: aggregating raw rows in Parquet files to sufficient statistics.

Generates a Parquet dataset with DuckDB itself (N rows, J entities, one window per row and
entity, counts 0..9) in a temporary directory, then measures, each in a fresh process:

- ``duckdb``: ``ratepool.aggregate_file("events/*.parquet", window_col="window")`` — DuckDB,
  out of core, exact duplicate-(entity, window) check;
- ``duckdb, no window check``: the same with ``check_windows=False``;
- ``pandas``: ``pandas.read_parquet`` of the files and ``ratepool.from_dataframe`` (numpy
  aggregation in memory, exact duplicate check with ``DataFrame.duplicated``) — the in-memory
  path; run at ``--pandas-rows`` (default 1e7) because at 1e8 rows it needs tens of GB.

Prints one Markdown table: path, rows, seconds, rows/s, peak RSS of the process. The dataset is
deleted afterwards.

    python scripts/benchmark_aggregate.py                    # 1e8 rows, J = 100,000
    python scripts/benchmark_aggregate.py --rows 1e7 --pandas-rows 1e6   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
sys.path.insert(0, {python!r})
import ratepool
how, pattern, rows, memory_limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
start = time.perf_counter()
if how == "pandas":
    import glob
    import pandas as pd
    frame = pd.concat([pd.read_parquet(f) for f in sorted(glob.glob(pattern))],
                      ignore_index=True)
    data = ratepool.from_dataframe(frame, window_col="window")
else:
    data = ratepool.aggregate_file(pattern, window_col="window", memory_limit=memory_limit,
                                   check_windows=(how == "duckdb"))
seconds = time.perf_counter() - start
assert data.n_windows_total == rows, (data.n_windows_total, rows)
print(json.dumps({{"seconds": seconds, "entities": data.n_entities}}))
"""


def generate(directory: Path, rows: int, entities: int, files: int) -> None:
    """Write ``files`` Parquet files of the rows i = 0..rows-1 with DuckDB."""
    import duckdb

    con = duckdb.connect(config={"memory_limit": "1GB", "temp_directory": str(directory)})
    per_file = -(-rows // files)
    for part in range(files):
        start, stop = part * per_file, min(rows, (part + 1) * per_file)
        con.sql(
            f"COPY (SELECT (i % {entities})::BIGINT AS entity, (i // {entities})::BIGINT AS "
            f"window, (hash(i) % 10)::INTEGER AS count FROM range({start}, {stop}) t(i)) "
            f"TO '{directory / f'part-{part:03d}.parquet'}' (FORMAT parquet)")
    con.close()


def measure(how: str, pattern: str, rows: int, memory_limit: str) -> dict:
    """Run one aggregation in a fresh process; its wall time and peak RSS."""
    code = CHILD.format(python=str(ROOT / "python"))
    process = subprocess.Popen([sys.executable, "-c", code, how, pattern, str(rows),
                                memory_limit], stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{how} failed (status {status})")
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_gb"] = usage.ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e8)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--pandas-rows", type=float, default=1e7)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--memory-limit", default="1GB")
    args = parser.parse_args()
    rows, pandas_rows = int(args.rows), int(args.pandas_rows)

    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')} on {platform.node()}: {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    table = []
    with tempfile.TemporaryDirectory(prefix="ratepool-bench-") as scratch:
        scratch_path = Path(scratch)
        for n in sorted({rows, pandas_rows}):
            directory = scratch_path / f"events-{n}"
            directory.mkdir()
            start = time.perf_counter()
            files = max(1, round(args.files * n / rows))
            generate(directory, n, args.entities, files)
            size = sum(f.stat().st_size for f in directory.iterdir()) / 1e9
            print(f"# generated {n:,} rows in {files} Parquet files ({size:.2f} GB) in "
                  f"{time.perf_counter() - start:.1f} s")
            pattern = str(directory / "*.parquet")
            paths = ["duckdb", "duckdb, no window check"] + (["pandas"] if n == pandas_rows
                                                             else [])
            for how in paths:
                key = {"duckdb, no window check": "duckdb-nocheck"}.get(how, how)
                result = measure(key, pattern, n, args.memory_limit)
                table.append((how, n, result["seconds"], result["peak_rss_gb"]))
            for file in directory.iterdir():
                file.unlink()
    print(f"# DuckDB memory_limit {args.memory_limit}, spill to a fresh temp directory; "
          f"J = {args.entities:,}; load average after: {os.getloadavg()[0]:.2f}")
    print()
    print("| path | rows | seconds | rows/s | peak RSS |")
    print("|---|---|---|---|---|")
    for how, n, seconds, rss in table:
        print(f"| {how} | {n:,} | {seconds:.1f} | {n / seconds:,.0f} | {rss:.2f} GB |")


if __name__ == "__main__":
    main()
