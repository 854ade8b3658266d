"""Streaming aggregation of files (`aggregate_file`) and pre-aggregated input (`from_aggregates`).

The reference is `from_dataframe` on the whole file read at once, and, independently, pandas
groupby/value_counts over the raw rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ratepool
from ratepool.aggregate_file import aggregate_file
from ratepool.data import MAX_STAN_INT, read_table
from ratepool.engines.pystan import pystan_available
from ratepool.fit import stan_data

CHUNKSIZES = [1, 7, 64, 100_000]


def _rows(seed: int = 3, n_rows: int = 400, n_entities: int = 23) -> pd.DataFrame:
    """Shuffled rows, so every entity's windows are spread over many chunks."""
    rng = np.random.default_rng(seed)
    entity = rng.integers(0, n_entities, size=n_rows)
    entity[:n_entities] = np.arange(n_entities)  # every entity present
    rng.shuffle(entity)
    window = np.zeros(n_rows, dtype=np.int64)
    for i in range(n_entities):
        mask = entity == i
        window[mask] = np.arange(mask.sum())
    counts = rng.negative_binomial(2.0, 2.0 / (2.0 + rng.gamma(2.0, 3.0, n_entities)[entity]))
    labels = np.array([f"user-{i:02d}" for i in range(n_entities)], dtype=object)
    return pd.DataFrame({"user": labels[entity], "day": window, "events": counts})


def _write(frame: pd.DataFrame, tmp_path: Path, fmt: str) -> Path:
    path = tmp_path / f"rows.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _assert_same_stats(got: ratepool.CountData, want: ratepool.CountData) -> None:
    pd.testing.assert_index_equal(got.labels, want.labels)
    for name in ("n_windows", "entity_total", "count_value", "count_freq"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        assert getattr(got, name).dtype == np.int64, name


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("chunksize", CHUNKSIZES)
def test_file_matches_from_dataframe(tmp_path: Path, fmt: str, chunksize: int) -> None:
    path = _write(_rows(), tmp_path, fmt)
    want = ratepool.from_dataframe(read_table(path), entity_col="user", count_col="events",
                                   window_col="day")
    got = aggregate_file(path, "user", "events", "day", chunksize=chunksize)
    _assert_same_stats(got, want)
    assert not got.has_rows


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_file_matches_pandas_groupby(tmp_path: Path, fmt: str) -> None:
    """Independent reference: pandas groupby and value_counts on the raw rows."""
    frame = _rows(seed=11)
    got = aggregate_file(_write(frame, tmp_path, fmt), "user", "events", chunksize=13)
    grouped = frame.groupby("user")["events"].agg(["size", "sum"]).sort_index()
    assert list(got.labels) == list(grouped.index)
    np.testing.assert_array_equal(got.n_windows, grouped["size"].to_numpy())
    np.testing.assert_array_equal(got.entity_total, grouped["sum"].to_numpy())
    histogram = frame["events"].value_counts().sort_index()
    np.testing.assert_array_equal(got.count_value, histogram.index.to_numpy())
    np.testing.assert_array_equal(got.count_freq, histogram.to_numpy())


def test_numeric_csv_labels_match_whole_file_read(tmp_path: Path) -> None:
    frame = _rows(seed=5)
    frame["user"] = frame["user"].str.slice(5).astype(int) * 10
    path = _write(frame, tmp_path, "csv")
    want = ratepool.from_dataframe(read_table(path), entity_col="user", count_col="events")
    got = aggregate_file(path, "user", "events", chunksize=9)
    _assert_same_stats(got, want)
    assert got.labels.dtype == np.int64


def test_totals_beyond_int32_are_exact(tmp_path: Path) -> None:
    big = MAX_STAN_INT - 3
    frame = pd.DataFrame({"entity": ["a"] * 5 + ["b"] * 2, "count": [big] * 5 + [1, 0]})
    data = aggregate_file(_write(frame, tmp_path, "parquet"), chunksize=2)
    assert data.entity_total.tolist() == [5 * big, 1]  # Python ints: exact
    assert data.count_freq.tolist() == [1, 1, 5]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("bad", "problem"),
    [(-1, "negative"), (2.5, "non-integer"), (MAX_STAN_INT + 1, "above 2147483647"),
     (np.nan, "missing")],
)
def test_bad_count_reported_with_file_row(tmp_path: Path, fmt: str, bad: float,
                                          problem: str) -> None:
    frame = _rows(n_rows=100)
    frame["events"] = frame["events"].astype(float)
    frame.loc[57, "events"] = bad
    path = _write(frame, tmp_path, fmt)
    with pytest.raises(ratepool.DataError, match=problem) as caught:
        aggregate_file(path, "user", "events", chunksize=10)
    assert "row 57:" in str(caught.value)
    assert "'events'" in str(caught.value) and str(path) in str(caught.value)
    # the same row number as validating the whole file at once
    with pytest.raises(ratepool.DataError, match="row 57:"):
        ratepool.from_dataframe(read_table(path), entity_col="user", count_col="events")


def test_missing_label_reported_with_file_row(tmp_path: Path) -> None:
    frame = _rows(n_rows=100)
    frame.loc[81, "user"] = None
    with pytest.raises(ratepool.DataError, match=r"missing entity labels.*row 81:"):
        aggregate_file(_write(frame, tmp_path, "csv"), "user", "events", chunksize=16)


def test_missing_window_reported_with_file_row(tmp_path: Path) -> None:
    frame = _rows(n_rows=100).astype({"day": float})
    frame.loc[44, "day"] = np.nan
    path = _write(frame, tmp_path, "parquet")
    with pytest.raises(ratepool.DataError, match=r"missing window labels.*row 44:"):
        aggregate_file(path, "user", "events", "day", chunksize=16)
    with pytest.raises(ratepool.DataError, match=r"missing window labels.*row 44:"):
        ratepool.from_dataframe(read_table(path), entity_col="user", count_col="events",
                                window_col="day")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_duplicate_windows_across_chunks(tmp_path: Path, fmt: str) -> None:
    frame = _rows(n_rows=60)
    frame.loc[59, ["user", "day"]] = frame.loc[2, ["user", "day"]].to_numpy()
    path = _write(frame, tmp_path, fmt)
    with pytest.raises(ratepool.DataError, match=r"2 rows repeat.*row 2, row 59"):
        aggregate_file(path, "user", "events", "day", chunksize=8)
    allowed = aggregate_file(path, "user", "events", "day", chunksize=8,
                             allow_duplicate_windows=True)
    unchecked = aggregate_file(path, "user", "events", "day", chunksize=8, check_windows=False)
    want = ratepool.from_dataframe(read_table(path), entity_col="user", count_col="events",
                                   window_col="day", allow_duplicate_windows=True)
    _assert_same_stats(allowed, want)
    _assert_same_stats(unchecked, want)


def test_file_errors(tmp_path: Path) -> None:
    path = _write(_rows(n_rows=30), tmp_path, "csv")
    with pytest.raises(ratepool.DataError, match=r"no column\(s\) \['count'\]"):
        aggregate_file(path, "user")
    with pytest.raises(ratepool.DataError, match="does not exist"):
        aggregate_file(tmp_path / "nope.csv")
    other = tmp_path / "rows.json"
    other.write_text("{}")
    with pytest.raises(ratepool.DataError, match="unknown format"):
        aggregate_file(other)
    empty = tmp_path / "empty.csv"
    empty.write_text("entity,count\n")
    with pytest.raises(ratepool.DataError, match="no rows"):
        aggregate_file(empty)
    with pytest.raises(ratepool.DataError, match="chunksize"):
        aggregate_file(path, "user", "events", chunksize=0)


def _aggregates(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a user would compute in SQL: GROUP BY entity, and GROUP BY count value."""
    entities = (frame.groupby("user")["events"].agg(n_windows="size", total_count="sum")
                .reset_index().rename(columns={"user": "entity"}).sample(frac=1, random_state=1))
    histogram = (frame["events"].value_counts().rename_axis("value")
                 .reset_index(name="frequency"))
    return entities, histogram


def test_from_aggregates_matches_raw_rows() -> None:
    frame = _rows(seed=8)
    entities, histogram = _aggregates(frame)
    got = ratepool.from_aggregates(entities, histogram)
    want = ratepool.from_dataframe(frame, entity_col="user", count_col="events")
    _assert_same_stats(got, want)


@pytest.mark.slow
@pytest.mark.skipif(not pystan_available(), reason="pystan is not installed")
def test_pre_aggregated_posterior_equals_raw_rows(tmp_path: Path) -> None:
    """Same Stan data and seed => the same draws, whichever way the data arrived."""
    frame = _rows(seed=21, n_rows=150, n_entities=8)
    raw = ratepool.from_dataframe(frame, entity_col="user", count_col="events")
    aggregated = ratepool.from_aggregates(*_aggregates(frame))
    streamed = aggregate_file(_write(frame, tmp_path, "csv"), "user", "events", chunksize=11)
    config = ratepool.ModelConfig(n_samples=200, n_tune=200, n_chains=2, obs_predictions=False,
                                  engine="pystan", random_seed=7)
    assert stan_data(aggregated, config) == stan_data(raw, config)
    assert stan_data(streamed, config) == stan_data(raw, config)
    fit_raw = ratepool.fit(raw, config)
    fit_agg = ratepool.fit(aggregated, config)
    for name in ("mu", "alpha", "phi", "theta"):
        np.testing.assert_array_equal(fit_agg.idata.posterior[name].values,
                                      fit_raw.idata.posterior[name].values, err_msg=name)
    # and the draws are a real posterior: the population mean lands near the data's mean rate
    mean_rate = frame["events"].mean()
    mu = fit_raw.idata.posterior["mu"].values
    assert np.quantile(mu, 0.001) < mean_rate < np.quantile(mu, 0.999)
