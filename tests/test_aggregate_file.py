"""Aggregating files and DuckDB queries (`aggregate_file`, `from_duckdb`) and pre-aggregated
input (`from_aggregates`).

The reference is `load_counts` on the same rows (which keeps the rows and aggregates them in
numpy), and, independently, pandas groupby/value_counts over the raw rows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool import aggregate_file, from_duckdb
from ratepool.data.counts import MAX_STAN_INT
from ratepool.engines.pystan import pystan_available
from ratepool.model.standata import stan_data


def _rows(seed: int = 3, n_rows: int = 400, n_entities: int = 23) -> pd.DataFrame:
    """Shuffled rows, so every entity's windows are spread over the file."""
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


def _write(frame: pd.DataFrame, tmp_path: Path, fmt: str, name: str = "rows") -> Path:
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _assert_same_stats(got: ratepool.CountData, want: ratepool.CountData) -> None:
    pd.testing.assert_index_equal(got.labels, want.labels)
    assert [type(v) for v in got.labels] == [type(v) for v in want.labels]
    for name in ("n_windows", "entity_total", "count_value", "count_freq"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        assert getattr(got, name).dtype == np.int64, name


def _query(path: Path) -> str:
    """The SQL a user would write for the file: the entity (and window) column as text."""
    if path.suffix == ".parquet":
        return f"SELECT * FROM read_parquet('{path}')"
    return f"SELECT * FROM read_csv('{path}', types = {{'user': 'VARCHAR', 'day': 'VARCHAR'}})"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("labels", ["text", "integers", "leading zeros"])
def test_file_and_query_match_load_counts(tmp_path: Path, fmt: str, labels: str) -> None:
    frame = _rows()
    if labels != "text":
        number = frame["user"].str.slice(5).astype(int) * 10
        frame["user"] = number if labels == "integers" else number.map(lambda n: f"{n:03d}")
    if labels == "leading zeros":  # "010" and "10" are two entities
        frame.loc[frame.index[frame["user"] == "010"][::2], "user"] = "10"
    path = _write(frame, tmp_path, fmt)
    want = ratepool.load_counts(path, entity_col="user", count_col="events", window_col="day")
    assert want.has_rows and all(isinstance(v, str) for v in want.labels)
    columns = dict(entity_col="user", count_col="events", window_col="day")
    got = aggregate_file(path, "user", "events", "day")
    _assert_same_stats(got, want)
    assert not got.has_rows
    con = duckdb.connect()
    _assert_same_stats(from_duckdb(con, _query(path), **columns), want)
    _assert_same_stats(from_duckdb(con, con.sql(_query(path)), **columns), want)  # a relation


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_file_matches_pandas_groupby(tmp_path: Path, fmt: str) -> None:
    """Independent reference: pandas groupby and value_counts on the raw rows."""
    frame = _rows(seed=11)
    got = aggregate_file(_write(frame, tmp_path, fmt), "user", "events")
    grouped = frame.groupby("user")["events"].agg(["size", "sum"]).sort_index()
    assert list(got.labels) == list(grouped.index)
    np.testing.assert_array_equal(got.n_windows, grouped["size"].to_numpy())
    np.testing.assert_array_equal(got.entity_total, grouped["sum"].to_numpy())
    histogram = frame["events"].value_counts().sort_index()
    np.testing.assert_array_equal(got.count_value, histogram.index.to_numpy())
    np.testing.assert_array_equal(got.count_freq, histogram.to_numpy())


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_glob_of_files_equals_one_file(tmp_path: Path, fmt: str) -> None:
    frame = _rows(seed=4)
    whole = _write(frame, tmp_path, fmt)
    parts = tmp_path / "events"
    parts.mkdir()
    cuts = [0, 150, 260, len(frame)]
    for i in range(3):
        _write(frame.iloc[cuts[i]:cuts[i + 1]], parts, fmt, name=f"part-{i}")
    pattern = parts / f"*.{fmt}"
    want = ratepool.load_counts(whole, entity_col="user", count_col="events", window_col="day")
    _assert_same_stats(aggregate_file(pattern, "user", "events", "day"), want)
    _assert_same_stats(ratepool.load_counts(pattern, entity_col="user", count_col="events",
                                            window_col="day"), want)
    # an error names the file and its own line / row
    bad = frame.iloc[150:260].copy()
    bad.iloc[3, bad.columns.get_loc("events")] = -4
    _write(bad, parts, fmt, name="part-1")
    place = f"part-1.{fmt} " + ("line 5" if fmt == "csv" else "row 4")
    for read in (aggregate_file, ratepool.load_counts):
        with pytest.raises(ratepool.DataError, match=rf"negative.*part-1\.{fmt} \w+ \d") as caught:
            read(pattern, entity_col="user", count_col="events")
        assert place + ": -4" in str(caught.value)


def test_totals_beyond_int32_are_exact(tmp_path: Path) -> None:
    big = MAX_STAN_INT - 3
    frame = pd.DataFrame({"entity": ["a"] * 5 + ["b"] * 2, "count": [big] * 5 + [1, 0]})
    data = aggregate_file(_write(frame, tmp_path, "parquet"))
    assert data.entity_total.tolist() == [5 * big, 1]  # Python ints: exact
    assert data.count_freq.tolist() == [1, 1, 5]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("bad", "problem"),
    [(-1, "negative"), (2.5, "non-integer"), (MAX_STAN_INT + 1, "above 2147483647"),
     (np.nan, "missing"), (np.inf, "infinite")],
)
def test_bad_count_reported_with_file_line(tmp_path: Path, fmt: str, bad: float,
                                           problem: str) -> None:
    frame = _rows(n_rows=100)
    frame["events"] = frame["events"].astype(float)
    frame.loc[57, "events"] = bad
    frame.loc[80, "events"] = bad
    path = _write(frame, tmp_path, fmt)
    place = "line 59" if fmt == "csv" else "row 58"
    con = duckdb.connect()
    calls = {"aggregate_file": lambda: aggregate_file(path, "user", "events"),
             "load_counts": lambda: ratepool.load_counts(path, entity_col="user",
                                                         count_col="events"),
             "from_duckdb": lambda: from_duckdb(con, _query(path), entity_col="user",
                                                count_col="events")}
    for how, call in calls.items():
        with pytest.raises(ratepool.DataError, match=problem) as caught:
            call()
        message = str(caught.value)
        assert "'events'" in message and "2 row(s)" in message, (how, message)
        if how == "from_duckdb":
            assert "row 58" in message, message  # the query's row
        else:
            assert place in message and str(path) in message, (how, message)


def test_text_and_boolean_counts_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "text.csv"
    path.write_text("entity,count\na,1\na,three\nb,2\n")
    for read in (aggregate_file, ratepool.load_counts):
        with pytest.raises(ratepool.DataError, match=r"not numbers.*line 3: 'three'"):
            read(path)
    flags = tmp_path / "flags.csv"
    flags.write_text("entity,count\na,true\nb,false\n")
    for read in (aggregate_file, ratepool.load_counts):
        with pytest.raises(ratepool.DataError, match="holds booleans"):
            read(flags)


def test_missing_label_reported_with_file_line(tmp_path: Path) -> None:
    frame = _rows(n_rows=100)
    frame.loc[81, "user"] = None
    path = _write(frame, tmp_path, "csv")
    for read in (aggregate_file, ratepool.load_counts):
        with pytest.raises(ratepool.DataError, match=r"missing entity labels.*line 83:"):
            read(path, entity_col="user", count_col="events")


def test_missing_window_reported_with_file_row(tmp_path: Path) -> None:
    frame = _rows(n_rows=100).astype({"day": float})
    frame.loc[44, "day"] = np.nan
    path = _write(frame, tmp_path, "parquet")
    for read in (aggregate_file, ratepool.load_counts):
        with pytest.raises(ratepool.DataError, match=r"missing window labels.*row 45:"):
            read(path, entity_col="user", count_col="events", window_col="day")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_duplicate_windows_are_found_exactly(tmp_path: Path, fmt: str) -> None:
    frame = _rows(n_rows=60)
    frame.loc[59, ["user", "day"]] = frame.loc[2, ["user", "day"]].to_numpy()
    path = _write(frame, tmp_path, fmt)
    first, last = ("line 4", "line 61") if fmt == "csv" else ("row 3", "row 60")
    for read in (aggregate_file, ratepool.load_counts):
        with pytest.raises(ratepool.DataError, match=rf"2 rows repeat.*{first}: .*{last}: "):
            read(path, entity_col="user", count_col="events", window_col="day")
    allowed = aggregate_file(path, "user", "events", "day", allow_duplicate_windows=True)
    unchecked = aggregate_file(path, "user", "events", "day", check_windows=False)
    want = ratepool.load_counts(path, entity_col="user", count_col="events", window_col="day",
                                allow_duplicate_windows=True)
    _assert_same_stats(allowed, want)
    _assert_same_stats(unchecked, want)


def test_file_errors(tmp_path: Path) -> None:
    path = _write(_rows(n_rows=30), tmp_path, "csv")
    with pytest.raises(ratepool.DataError, match=r"no column\(s\) \['count'\]"):
        aggregate_file(path, "user")
    with pytest.raises(ratepool.DataError, match=r"no column\(s\) \['n'\]"):
        from_duckdb(duckdb.connect(), _query(path), entity_col="user", count_col="n")
    with pytest.raises(ratepool.DataError, match="does not exist"):
        aggregate_file(tmp_path / "nope.csv")
    with pytest.raises(ratepool.DataError, match="could not read"):
        aggregate_file(tmp_path / "nothing-*.parquet")
    other = tmp_path / "rows.json"
    other.write_text("{}")
    with pytest.raises(ratepool.DataError, match="unknown format"):
        aggregate_file(other)
    empty = tmp_path / "empty.csv"
    empty.write_text("entity,count\n")
    with pytest.raises(ratepool.DataError, match="no rows"):
        aggregate_file(empty)
    with pytest.raises(ratepool.DataError, match="query failed"):
        from_duckdb(duckdb.connect(), "SELECT * FROM no_such_table")


def test_memory_limit_and_spill_directory_are_used(tmp_path: Path) -> None:
    """A tiny memory limit forces the exact duplicate check to spill into temp_directory."""
    con = duckdb.connect()
    path = tmp_path / "big.parquet"
    con.sql("COPY (SELECT (i % 1000)::BIGINT AS entity, (i // 1000)::BIGINT AS window, "
            f"(i % 7)::INTEGER AS count FROM range(2000000) t(i)) TO '{path}' (FORMAT parquet)")
    spill = tmp_path / "spill"
    data = aggregate_file(path, window_col="window", memory_limit="40MB",
                          temp_directory=spill, threads=1)
    assert data.n_windows.tolist() == [2000] * 1000
    with pytest.raises(ratepool.DataError, match="memory_limit|settings"):
        aggregate_file(path, memory_limit="lots")


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
    streamed = aggregate_file(_write(frame, tmp_path, "csv"), "user", "events")
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


def test_bad_csv_value_beyond_the_type_sniffing_sample(tmp_path: Path) -> None:
    """DuckDB guesses column types from the first ~20,000 rows; a later 'x' still gets
    ratepool's message with its line, not a conversion error."""
    frame = pd.DataFrame({"entity": np.arange(30_000) % 7, "count": np.arange(30_000) % 5})
    frame = frame.astype({"count": object})
    frame.loc[25_000, "count"] = "x"
    path = _write(frame, tmp_path, "csv")
    for read in (aggregate_file, ratepool.load_counts):
        with pytest.raises(ratepool.DataError, match=r"not numbers: 1 row\(s\), first "
                                                     r"line 25002: 'x'"):
            read(path)
