"""Input validation: every bad input raises a `RatepoolError` subclass before any compile or
sampling, with a message that names the column (or key), shows the offending values and says how
to fix it."""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.data.counts import MAX_STAN_INT
from ratepool.data.frame import from_aggregates, from_dataframe
from ratepool.data.tables import load_counts
from ratepool.engines.base import Engine
from ratepool.errors import ConfigError, DataError, RatepoolError


def rows(counts: list[Any], entities: list[Any] | None = None, **extra: list[Any]
         ) -> pd.DataFrame:
    """A small raw table: entities a, a, b, b unless given."""
    entities = entities if entities is not None else ["a", "a", "b", "b"][: len(counts)]
    return pd.DataFrame({"entity": entities, "count": counts, **extra})


# (case id, frame, keyword arguments, strings the message must contain: column, value, fix)
RAW_CASES: list[tuple[str, Callable[[], pd.DataFrame], dict[str, Any], list[str]]] = [
    ("missing count column", lambda: pd.DataFrame({"entity": ["a"], "counts": [1]}), {},
     ["'count'", "'counts'", "count_col="]),
    ("misnamed entity column", lambda: pd.DataFrame({"host": ["a", "b"], "count": [1, 2]}), {},
     ["'entity'", "'host'", "entity_col="]),
    ("missing window column", lambda: rows([1, 2, 3, 4]), {"window_col": "day"},
     ["'day'", "window_col="]),
    ("negative count", lambda: rows([1, -2, 3, 4]), {},
     ["'count'", "index 1: -2", "cannot be negative"]),
    ("fractional count", lambda: rows([1, 3.5, 3, 4]), {},
     ["'count'", "index 1: 3.5", "whole numbers"]),
    ("NaN count", lambda: rows([1.0, np.nan, 3.0, 4.0]), {},
     ["'count'", "index 1: nan", "drop or fill"]),
    ("None count among objects", lambda: rows([1, None, 3, "4"]), {},
     ["'count'", "index 1: None", "drop or fill"]),
    ("nullable integer NA", lambda: rows(pd.array([1, None, 3, 4], dtype="Int64")), {},
     ["'count'", "index 1: <NA>", "drop or fill"]),
    ("string count", lambda: rows([1, "three", 3, 4]), {},
     ["'count'", "index 1: 'three'", "clean or drop"]),
    ("empty-string count", lambda: rows(["", "4", "1", "1"]), {},
     ["'count'", "index 0: ''", "clean or drop"]),
    ("fractional count as string", lambda: rows(["3.0", "3.5", "1", "1"]), {},
     ["'count'", "index 1: '3.5'", "whole numbers"]),
    ("boolean column", lambda: rows([True, False, True, True]), {},
     ["'count'", "booleans", ".astype(int)"]),
    ("boolean among integers", lambda: rows([1, True, 3, 4]), {},
     ["'count'", "index 1: True", "number of events"]),
    ("count above 2^31 - 1", lambda: rows([1, MAX_STAN_INT + 1, 3, 4]), {},
     ["'count'", f"index 1: {MAX_STAN_INT + 1}", "rescale"]),
    ("float count above 2^31 - 1", lambda: rows([1.0, 2.0**31, 3.0, 4.0]), {},
     ["'count'", "index 1: 2147483648.0", "rescale"]),
    ("Python int beyond int64", lambda: rows(np.array([1, 2**70, 3, 4], dtype=object)), {},
     ["'count'", f"index 1: {2**70}", "rescale"]),
    ("infinite count", lambda: rows([1.0, np.inf, 3.0, 4.0]), {},
     ["'count'", "index 1: inf", "drop those rows"]),
    ("complex counts", lambda: rows(np.array([1, 2, 3, 4], dtype=complex)), {},
     ["'count'", "complex", "convert"]),
    ("datetime counts", lambda: rows(pd.to_datetime(["2024-01-01"] * 4)), {},
     ["'count'", "datetime64", "count_col="]),
    ("empty data", lambda: pd.DataFrame({"entity": [], "count": []}), {},
     ["no rows", "at least one row"]),
    ("missing entity label", lambda: rows([1, 2, 3, 4], ["a", None, "b", "b"]), {},
     ["'entity'", "index 1: nan", "give them a label"]),
    ("NaN entity label", lambda: rows([1, 2, 3, 4], ["a", np.nan, "b", "b"]), {},
     ["'entity'", "index 1: nan", "give them a label"]),
    ("unhashable entity labels", lambda: rows([1, 2, 3, 4], [[1], [1], [2], [2]]), {},
     ["'entity'", "[1]", "strings or numbers"]),
    ("single entity", lambda: rows([1, 2, 3], ["only", "only", "only"]), {},
     ["'entity'", "'only'", "at least two entities"]),
    ("duplicated (entity, window)", lambda: rows([1, 2, 3, 4], window=[1, 1, 1, 2]),
     {"window_col": "window"}, ["('entity', 'window')", "index 0: ('a', 1)",
                                "allow_duplicate_windows=True"]),
    ("missing window label", lambda: rows([1, 2, 3, 4], window=[1, None, 1, 2]),
     {"window_col": "window"}, ["'window'", "index 1:", "give each its window"]),
    ("repeated column name", lambda: pd.DataFrame([["a", 1, 2], ["b", 3, 4]],
                                                  columns=["entity", "count", "count"]), {},
     ["['count']", "rename or drop"]),
]


@pytest.mark.parametrize("case, make, kwargs, expected", RAW_CASES,
                         ids=[case[0] for case in RAW_CASES])
def test_bad_raw_data_raises_data_error(case: str, make: Callable[[], pd.DataFrame],
                                        kwargs: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(DataError) as caught:
        from_dataframe(make(), **kwargs)
    assert isinstance(caught.value, RatepoolError)
    for text in expected:
        assert text in str(caught.value), (case, str(caught.value))


def test_message_shows_at_most_five_offending_rows_and_counts_them_all() -> None:
    frame = rows([-1] * 12, ["a"] * 6 + ["b"] * 6)
    with pytest.raises(DataError) as caught:
        from_dataframe(frame)
    message = str(caught.value)
    assert "12 row(s)" in message
    assert "index 4: -1" in message and "index 5" not in message


def test_first_offending_rows_are_named_by_the_frames_own_index() -> None:
    frame = rows([1, 2, 3.5, 4]).set_axis([10, 20, 30, 40])
    with pytest.raises(DataError, match="index 30: 3.5"):
        from_dataframe(frame)


@pytest.mark.parametrize("values", [[1.0, 3.0, 0.0, 7.0], ["1", "3", "0", "7"],
                                    pd.array([1, 3, 0, 7], dtype="Int64"),
                                    np.array([1, 3, 0, 7], dtype=np.uint8),
                                    [1, 3, 0, MAX_STAN_INT]])
def test_integral_values_of_any_numeric_type_are_accepted(values: Any) -> None:
    data = from_dataframe(rows(values))
    assert data.y.dtype == np.int64
    assert data.y.tolist() == [int(v) for v in values]


def test_entity_with_one_window_is_accepted() -> None:
    data = from_dataframe(rows([1, 2, 3], ["a", "b", "b"]))
    assert data.n_windows.tolist() == [1, 2]


def test_duplicated_windows_opt_in_counts_each_row_as_a_window(
        caplog: pytest.LogCaptureFixture) -> None:
    frame = rows([1, 2, 3, 4], window=[1, 1, 1, 2])
    with caplog.at_level(logging.INFO, logger="ratepool.data"):
        data = from_dataframe(frame, window_col="window", allow_duplicate_windows=True)
    assert data.n_windows.tolist() == [2, 2]
    assert data.entity_total.tolist() == [3, 7]
    assert "2 rows repeat an (entity, window) pair" in caplog.text


def test_without_a_window_column_rows_are_windows() -> None:
    data = from_dataframe(rows([1, 2, 3, 4]))
    assert data.n_windows.tolist() == [2, 2]


def test_all_zero_counts_are_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ratepool.data"):
        data = from_dataframe(rows([0, 0, 0, 0]))
    assert data.entity_total.tolist() == [0, 0]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "every count is zero" in warnings[0].getMessage()


def test_some_zero_counts_log_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ratepool.data"):
        from_dataframe(rows([0, 0, 0, 1]))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_bad_file_paths_raise_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_counts(tmp_path / "missing.csv")
    other = tmp_path / "counts.xlsx"
    other.write_text("entity,count\n")
    with pytest.raises(DataError, match=r"unknown format '\.xlsx'; use \.csv or \.parquet"):
        load_counts(other)


def test_csv_with_a_fractional_count_names_the_row(tmp_path) -> None:
    path = tmp_path / "counts.csv"
    path.write_text("entity,count\na,1\na,2\nb,2.5\nb,0\n")
    with pytest.raises(DataError, match=r"column 'count' has non-integer counts.*line 4: 2\.5"):
        load_counts(path)


# --------------------------------------------------------------------------------------------
# Pre-aggregated input


ENTITIES = pd.DataFrame({"entity": ["a", "b"], "n_windows": [2, 2], "total_count": [3, 4]})
HISTOGRAM = pd.DataFrame({"value": [1, 2, 3], "frequency": [2, 1, 1]})

AGGREGATE_CASES: list[tuple[str, pd.DataFrame, pd.DataFrame, list[str]]] = [
    ("histogram has fewer windows", ENTITIES, HISTOGRAM.assign(frequency=[1, 1, 1]),
     ["3 windows", "'frequency'", "counts 4", "'n_windows'", "same windows"]),
    ("histogram total differs", ENTITIES,
     pd.DataFrame({"value": [0, 1, 2, 3], "frequency": [1, 1, 1, 1]}),
     ["= 6", "'total_count' summed = 7", "same windows"]),
    ("missing histogram column", ENTITIES, HISTOGRAM.rename(columns={"frequency": "freq"}),
     ["histogram", "'frequency'", "'freq'"]),
    ("repeated entity", ENTITIES.assign(entity=["a", "a"]), HISTOGRAM,
     ["'entity'", "index 0: 'a'", "one row per entity"]),
    ("entity with no windows", ENTITIES.assign(n_windows=[0, 4]), HISTOGRAM,
     ["'n_windows'", "index 0: 0", "drop entities"]),
    ("boolean totals", ENTITIES.assign(total_count=[True, True]), HISTOGRAM,
     ["'total_count'", "index 0: True", "as an integer"]),
    ("non-numeric total", ENTITIES.assign(total_count=["3", "x"]), HISTOGRAM,
     ["'total_count'", "index 1: 'x'", "whole number"]),
    ("fractional frequency", ENTITIES, HISTOGRAM.assign(frequency=[2, 1.5, 0.5]),
     ["'frequency'", "index 1: 1.5", "whole numbers"]),
    ("repeated histogram value", ENTITIES, pd.DataFrame({"value": [1, 1, 2],
                                                         "frequency": [2, 1, 1]}),
     ["'value'", "give each value once"]),
    ("negative histogram value", ENTITIES, HISTOGRAM.assign(value=[-1, 2, 3]),
     ["'value'", "index 0: -1", "cannot be negative"]),
    ("impossible total", ENTITIES.assign(total_count=[7, 0]),
     HISTOGRAM,
     ["'total_count'", "index 0: 7", "same windows"]),
    ("single entity", ENTITIES.iloc[:1], pd.DataFrame({"value": [1, 2], "frequency": [1, 1]}),
     ["'entity'", "'a'", "at least two entities"]),
    ("empty entity table", ENTITIES.iloc[:0], HISTOGRAM, ["entity table has no rows"]),
]


@pytest.mark.parametrize("case, entities, histogram, expected", AGGREGATE_CASES,
                         ids=[case[0] for case in AGGREGATE_CASES])
def test_bad_aggregates_raise_data_error(case: str, entities: pd.DataFrame,
                                         histogram: pd.DataFrame, expected: list[str]) -> None:
    with pytest.raises(DataError) as caught:
        from_aggregates(entities, histogram)
    for text in expected:
        assert text in str(caught.value), (case, str(caught.value))


def test_consistent_aggregates_are_accepted() -> None:
    data = from_aggregates(ENTITIES, HISTOGRAM)
    assert data.entity_total.tolist() == [3, 4]
    assert data.count_value.tolist() == [1, 2, 3] and data.count_freq.tolist() == [2, 1, 1]


def test_aggregates_with_all_zero_counts_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ratepool.data"):
        from_aggregates(ENTITIES.assign(total_count=[0, 0]),
                        pd.DataFrame({"value": [0], "frequency": [4]}))
    assert "every count is zero" in caplog.text


# --------------------------------------------------------------------------------------------
# Configuration


CONFIG_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"mu_prior_rate": -0.1}, ["mu_prior_rate", "> 0.0", "-0.1"]),
    ({"alpha_prior_sd": 0.0}, ["alpha_prior_sd", "> 0.0"]),
    ({"overdispersion_prior_sd": -2.0}, ["overdispersion_prior_sd", "-2.0"]),
    ({"overdispersion_prior_sd": float("nan")}, ["overdispersion_prior_sd", "finite"]),
    ({"alpha_prior_sd": float("inf")}, ["alpha_prior_sd", "finite"]),
    ({"n_chains": 0}, ["n_chains", "at least 1", "0"]),
    ({"n_chains": -3}, ["n_chains", "at least 1"]),
    ({"n_chains": 2.5}, ["n_chains", "integer", "2.5"]),
    ({"n_chains": True}, ["n_chains", "integer"]),
    ({"n_samples": 0}, ["n_samples", "at least 1"]),
    ({"n_tune": -1}, ["n_tune", "at least 0"]),
    ({"target_accept": 0.0}, ["target_accept", "strictly between 0.0 and 1.0"]),
    ({"target_accept": 1.0}, ["target_accept", "strictly between"]),
    ({"target_accept": 1.5}, ["target_accept", "1.5"]),
    ({"target_accept": -0.2}, ["target_accept", "-0.2"]),
    ({"target_accept": "0.9"}, ["target_accept", "finite number"]),
    ({"random_seed": -1}, ["random_seed", "between 0 and"]),
    ({"random_seed": 2**31}, ["random_seed", str(2**31)]),
    ({"parameterization": "noncentered"}, ["parameterization", "'non_centered'"]),
    ({"likelihood": "poisson"}, ["likelihood", "'sufficient'"]),
    ({"engine": "stan"}, ["engine", "'pystan'"]),
    ({"obs_predictions": "yes"}, ["obs_predictions", "'yes'"]),
]


@pytest.mark.parametrize("kwargs, expected", CONFIG_CASES,
                         ids=[repr(case[0]) for case in CONFIG_CASES])
def test_bad_config_values_raise_config_error(kwargs: dict[str, Any],
                                              expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        ratepool.ModelConfig(**kwargs)
    assert isinstance(caught.value, RatepoolError)
    for text in expected:
        assert text in str(caught.value), str(caught.value)


@pytest.mark.parametrize("target_accept", [1e-6, 0.5, 0.999999])
def test_target_accept_inside_the_open_interval_is_accepted(target_accept: float) -> None:
    assert ratepool.ModelConfig(target_accept=target_accept).target_accept == target_accept


# --------------------------------------------------------------------------------------------
# Validation happens before any engine work


class _UnusableEngine(Engine):
    """Fails the test if any engine method is reached."""

    name = "unusable"

    def compile(self, program):  # type: ignore[no-untyped-def]
        raise AssertionError("compile was called before validation finished")

    def sample(self, program, data, settings):  # type: ignore[no-untyped-def]
        raise AssertionError("sample was called before validation finished")

    def log_density(self, program, data, params, *, jacobian=False):  # type: ignore
        raise AssertionError("log_density was called")

    def versions(self):  # type: ignore[no-untyped-def]
        return {}


@pytest.mark.parametrize("frame", [rows([1, -2, 3, 4]), rows([1, 2, 3], ["x", "x", "x"]),
                                   pd.DataFrame({"entity": [], "count": []})],
                         ids=["negative", "single entity", "empty"])
def test_fit_validates_data_before_touching_the_engine(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError):
        ratepool.fit(frame, ratepool.ModelConfig(), engine=_UnusableEngine())
    with pytest.raises(DataError):
        ratepool.sample_prior(frame, ratepool.ModelConfig(), engine=_UnusableEngine())
