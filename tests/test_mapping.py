"""Entity labels <-> indices: any hashable labels, deterministic order, round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.model.standata import base_stan_data


def _frame(labels, counts) -> pd.DataFrame:
    return pd.DataFrame({"entity": labels, "count": counts})


def test_string_labels_sorted_and_round_trip() -> None:
    frame = _frame(["web-2", "db-1", "web-2", "cache", "db-1", "db-1"], [1, 2, 3, 4, 5, 6])
    data = ratepool.from_dataframe(frame)
    assert list(data.labels) == ["cache", "db-1", "web-2"]
    np.testing.assert_array_equal(data.n_windows, [1, 3, 2])
    np.testing.assert_array_equal(data.entity_total, [4, 13, 4])
    # round trip: the 1-based Stan index of every row maps back to that row's label
    np.testing.assert_array_equal(data.labels_of(data.entity_index + 1), frame["entity"])


def test_integer_labels_not_starting_at_zero_or_one() -> None:
    frame = _frame([1007, 42, 1007, 99, 42], [0, 1, 2, 3, 4])
    data = ratepool.from_dataframe(frame)
    assert list(data.labels) == [42, 99, 1007]
    table = data.mapping_table()
    assert list(table["stan_index"]) == [1, 2, 3]
    assert list(table["entity"]) == [42, 99, 1007]
    assert list(table["n_windows"]) == [2, 1, 2]
    assert list(table["total_count"]) == [5, 3, 2]


def test_shuffled_rows_give_the_same_data() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c", "d"], [1, 7, 3, 12])
    frame = _frame(labels, rng.poisson(3, len(labels)))
    reference = ratepool.from_dataframe(frame)
    shuffled = ratepool.from_dataframe(frame.sample(frac=1, random_state=1))
    assert list(shuffled.labels) == list(reference.labels)
    for field in ("n_windows", "entity_total", "count_value", "count_freq"):
        np.testing.assert_array_equal(getattr(shuffled, field), getattr(reference, field))


def test_mixed_type_labels_have_a_deterministic_order() -> None:
    frame = _frame(["b", 3, "a", 3, 1.5], [1, 1, 1, 1, 1])
    first = ratepool.from_dataframe(frame)
    second = ratepool.from_dataframe(frame.iloc[::-1])
    assert list(first.labels) == list(second.labels)
    assert set(first.labels) == {"a", "b", 3, 1.5}


def test_stan_data_uses_one_based_indices() -> None:
    data = ratepool.from_dataframe(_frame(["x", "y", "y"], [2, 0, 5]))
    stan = base_stan_data(data, mu_rate=0.1, alpha_sd=2, phi_sd=2, use_sufficient_stats=False,
                             prior_only=False, non_centered=False, obs_predictions=True,
                             entity_predictions=True)
    assert stan["entity"] == [1, 2, 2] and stan["y"] == [2, 0, 5]
    assert stan["n_windows"] == [1, 2] and stan["entity_total"] == [2.0, 5.0]
    assert stan["count_value"] == [0, 2, 5] and stan["count_freq"] == [1.0, 1.0, 1.0]


@pytest.mark.slow
def test_fit_speaks_the_users_labels() -> None:
    labels = np.repeat([2001, 17, 305], [4, 9, 2])
    frame = _frame(labels, np.arange(len(labels)) % 5)
    result = ratepool.fit(frame, ratepool.ModelConfig(n_samples=200, n_tune=200, n_chains=2),
                          engine="pystan")
    assert list(result.idata.posterior["entity"].values) == [17, 305, 2001]
    assert list(result.entity_summary().index) == [17, 305, 2001]
    np.testing.assert_array_equal(result.entity_summary()["n_windows"], [9, 2, 4])
