"""Datasets and bad inputs shared by the Dask and Spark source tests.

Each source must give, on the same rows, what `ratepool.from_dataframe` gives on the pandas
rows (the independent reference: pandas factorize/bincount on one machine), and refuse each bad
input with the same wording, the global number of offending rows and an offending example.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from ratepool.data.counts import MAX_STAN_INT, CountData
from ratepool.data.frame import from_dataframe
from ratepool.data.validate import (
    COUNT_FRACTION,
    COUNT_INFINITE,
    COUNT_MISSING,
    COUNT_NEGATIVE,
    COUNT_TOO_LARGE,
    MISSING_LABELS,
    MISSING_WINDOWS,
)
from ratepool.model.standata import base_stan_data

STAN_SWITCHES = dict(mu_rate=0.1, alpha_sd=2.0, phi_sd=2.0, prior_only=False,
                     non_centered=False, entity_predictions=True, use_sufficient_stats=True,
                     obs_predictions=False)


def _shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def string_labels() -> pd.DataFrame:
    """String labels, unequal windows per entity, a window column; rows shuffled."""
    rng = np.random.default_rng(11)
    windows = rng.integers(1, 12, 9)
    labels = np.repeat([f"host-{i}" for i in rng.permutation(9)], windows)
    frame = pd.DataFrame({"entity": labels,
                          "count": rng.negative_binomial(2, 0.2, labels.size)})
    frame["window"] = frame.groupby("entity").cumcount()
    return _shuffled(frame, 11)


def integer_labels() -> pd.DataFrame:
    """Integer labels not starting at 0 or 1, other column names, window labels as dates."""
    rng = np.random.default_rng(12)
    labels = rng.choice([1009, 17, 250, 3, 77, 4096], size=60)
    frame = pd.DataFrame({"user": labels, "logins": rng.poisson(3.0, labels.size)})
    day = frame.groupby("user").cumcount()
    frame["day"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(day, unit="D")
    return frame


def heterogeneous_counts() -> pd.DataFrame:
    """Mostly zeros, a few huge counts (up to 2^31 - 1, totals beyond it), float column."""
    rng = np.random.default_rng(13)
    labels = np.repeat([f"e{i:02d}" for i in range(12)], rng.integers(3, 15, 12))
    count = np.where(rng.random(labels.size) < 0.7, 0, rng.poisson(2.0, labels.size))
    count[:4] = [MAX_STAN_INT, MAX_STAN_INT, MAX_STAN_INT - 1, 10**9]  # all in entity e00
    frame = pd.DataFrame({"entity": labels, "count": count.astype(float)})
    return _shuffled(frame, 13)


#: (id, frame builder, from_dataframe keyword arguments)
DATASETS = [
    ("string labels, window column", string_labels,
     dict(entity_col="entity", count_col="count", window_col="window")),
    ("string labels, no window column", string_labels,
     dict(entity_col="entity", count_col="count")),
    ("integer labels, window column", integer_labels,
     dict(entity_col="user", count_col="logins", window_col="day")),
    ("zeros and huge counts, float column", heterogeneous_counts,
     dict(entity_col="entity", count_col="count")),
]
DATASET_PARAMS = [pytest.param(build, kwargs, id=name) for name, build, kwargs in DATASETS]


def assert_same_statistics(cluster: CountData, frame: pd.DataFrame, **kwargs) -> None:
    """`cluster` carries exactly the statistics and label mapping of `from_dataframe`."""
    local = from_dataframe(frame, **kwargs)
    assert cluster.labels.tolist() == local.labels.tolist()
    assert cluster.labels.dtype == local.labels.dtype
    assert [type(v) for v in cluster.labels] == [type(v) for v in local.labels]
    for name in ("n_windows", "entity_total", "count_value", "count_freq"):
        got, want = getattr(cluster, name), getattr(local, name)
        assert got.dtype == np.int64, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert cluster.mapping_table().equals(local.mapping_table())
    assert base_stan_data(cluster, **STAN_SWITCHES) == base_stan_data(local, **STAN_SWITCHES)
    assert not cluster.has_rows


def _bad(change, problem: str, column: str, n_rows: int, example: str):
    def build() -> pd.DataFrame:
        frame = string_labels()
        change(frame)
        return frame
    prefix = f"column '{column}' {re.escape(problem)}: {n_rows} row\\(s\\), "
    return build, prefix, prefix + f"e\\.g\\. .*{re.escape(example)}"


def _set(column: str, rows: list[int], value) -> callable:
    def change(frame: pd.DataFrame) -> None:
        if isinstance(value, float) or (value is None and column != "entity"):
            frame[column] = frame[column].astype(float)  # NaN marks a missing number
        frame.loc[rows, column] = value
    return change


#: (id, frame builder, from_dataframe's message regex, the cluster's message regex); the bad
#: rows are spread over the partitions (the frame has 48 rows).
BAD_ROWS = [
    ("negative counts", *_bad(_set("count", [3, 30, 47], -2), COUNT_NEGATIVE[0], "count", 3,
                              "count=-2")),
    ("fractional counts", *_bad(_set("count", [5, 40], 2.5), COUNT_FRACTION[0], "count", 2,
                                "count=2.5")),
    ("missing counts", *_bad(_set("count", [1, 33, 46], float("nan")), COUNT_MISSING[0],
                             "count", 3, "count=nan")),
    ("infinite counts", *_bad(_set("count", [7], float("inf")), COUNT_INFINITE[0], "count", 1,
                              "count=inf")),
    ("counts above Stan's int", *_bad(_set("count", [2, 44], MAX_STAN_INT + 1),
                                      COUNT_TOO_LARGE[0], "count", 2,
                                      f"count={MAX_STAN_INT + 1}")),
    ("missing labels", *_bad(_set("entity", [0, 30], None), MISSING_LABELS[0], "entity", 2,
                             "count=")),
    ("missing windows", *_bad(_set("window", [9, 45], None), MISSING_WINDOWS[0], "window", 2,
                              "window=")),
]
BAD_ROW_PARAMS = [pytest.param(build, local, cluster, id=name)
                  for name, build, local, cluster in BAD_ROWS]


def with_repeated_windows() -> pd.DataFrame:
    """Two (entity, window) pairs repeated, in rows far apart: 5 rows repeat a pair."""
    frame = string_labels()
    first = frame.iloc[0]
    second = frame.iloc[1]
    extra = pd.DataFrame({"entity": [first["entity"], second["entity"], second["entity"]],
                          "count": [1, 2, 3],
                          "window": [first["window"], second["window"], second["window"]]})
    return pd.concat([frame, extra], ignore_index=True)


REPEATED_MESSAGE = r"5 rows repeat an \('entity', 'window'\) pair, e\.g\. .* in [23] rows"
