"""The pure helpers of the benchmark scripts (scripts/benchmark.py, bench_table.py,
plot_benchmark.py): the J-axis cases, PyStan's memory guard, the CSV round trip and the plot's
derived columns. No sampling."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import benchmark  # noqa: E402
import bench_table  # noqa: E402
import plot_benchmark  # noqa: E402


def test_j_axis_cases_are_windows_times_entities() -> None:
    assert benchmark.j_axis_cases([1000, 100_000], 100) == ["100000:1000", "10000000:100000"]


def test_pystan_guard_predicts_the_measured_peaks() -> None:
    # J = 2,000 x 8,000 draws (N = 1e7) peaked at 1.12 GB with the chains in waves of 2 (3.8 GB
    # before, all chains at once with httpstan's diagnostic lines); the guard scales with J x draws
    assert benchmark.pystan_memory_gb(2000, 8000) == pytest.approx(1.12, abs=0.05)
    assert benchmark.pystan_memory_gb(100_000, 800) == pytest.approx(
        5 * benchmark.pystan_memory_gb(2000, 8000))


def test_csv_round_trip_parses_numbers_and_keeps_gaps(tmp_path: Path) -> None:
    rows = [{"engine": "cmdstan", "J": 1000, "run": "ratepool", "wall_s": 12.5, "status": "ok"},
            {"engine": "pystan", "J": 100_000, "run": "ratepool", "status": "not run: memory"}]
    bench_table.write_rows(rows, tmp_path / "rows.csv")
    back = bench_table.read_rows([tmp_path / "rows.csv"])
    assert back[0] == rows[0]
    assert back[1]["wall_s"] is None and back[1]["J"] == 100_000


def test_derived_columns_and_series() -> None:
    rows = [plot_benchmark.with_derived(row) for row in (
        {"engine": "cmdstan", "run": "ratepool", "J": 10_000, "status": "ok", "wall_s": 200.0,
         "sample_s": 100.0, "ess_s_hyper": 8.0},
        {"engine": "cmdstan", "run": "ratepool", "J": 1000, "status": "ok", "wall_s": 20.0,
         "sample_s": 10.0, "ess_s_hyper": 100.0},
        {"engine": "cmdstan", "run": "scale-out", "J": 10**6, "status": "ok", "wall_s": 300.0,
         "sample_s": 30.0, "ess_s_hyper": 50.0},
        {"engine": "pystan", "run": "ratepool", "J": 10**5, "status": "not run: memory"})]
    assert rows[0]["ess_hyper"] == 800.0 and rows[0]["ess_per_wall_s"] == 4.0
    assert rows[0]["ms_per_entity"] == 20.0
    assert "ms_per_entity" not in rows[3]
    lines = plot_benchmark.series(rows, "wall_s")
    assert lines == {"cmdstan fit": ([1000, 10_000], [20.0, 200.0]),
                     "cmdstan fit_scaled": ([10**6], [300.0])}
