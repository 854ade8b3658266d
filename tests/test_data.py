"""CountData: sufficient statistics, label mapping, aggregates and the Stan data dict, each
checked against an independent computation (pandas groupby, collections.Counter, Python ints)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from ratepool.data.counts import MAX_STAN_INT, _exact_bincount, count_histogram
from ratepool.data.frame import from_aggregates, from_dataframe
from ratepool.data.tables import load_counts
from ratepool.errors import DataError
from ratepool.model.standata import base_stan_data

STAN_SWITCHES = dict(mu_rate=0.1, alpha_sd=2.0, phi_sd=2.0, prior_only=False,
                     non_centered=False, entity_predictions=True)


def random_rows(seed: int, n_entities: int = 7, max_windows: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    windows = rng.integers(1, max_windows + 1, n_entities)
    labels = np.repeat([f"host-{i}" for i in rng.permutation(n_entities)], windows)
    frame = pd.DataFrame({"entity": labels, "count": rng.negative_binomial(2, 0.2, labels.size)})
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_sufficient_statistics_match_pandas_groupby() -> None:
    frame = random_rows(1)
    data = from_dataframe(frame)
    grouped = frame.groupby("entity")["count"].agg(["size", "sum"]).sort_index()
    assert list(data.labels) == list(grouped.index)
    assert data.n_windows.tolist() == grouped["size"].tolist()
    assert data.entity_total.tolist() == grouped["sum"].tolist()
    histogram = Counter(frame["count"].tolist())
    assert dict(zip(data.count_value.tolist(), data.count_freq.tolist())) == histogram
    assert np.all(np.diff(data.count_value) > 0)
    assert data.n_windows_total == len(frame) and data.n_entities == len(grouped)
    np.testing.assert_allclose(data.raw_rate(), (grouped["sum"] / grouped["size"]).to_numpy())


def test_rows_keep_their_order_and_point_at_their_entity() -> None:
    frame = random_rows(2)
    data = from_dataframe(frame)
    assert data.y.tolist() == frame["count"].tolist()
    assert np.asarray(data.labels)[data.entity_index].tolist() == frame["entity"].tolist()


def test_label_order_does_not_depend_on_row_order() -> None:
    frame = random_rows(3)
    first = from_dataframe(frame)
    second = from_dataframe(frame.iloc[::-1].reset_index(drop=True))
    assert list(first.labels) == list(second.labels) == sorted(frame["entity"].unique())
    assert first.entity_total.tolist() == second.entity_total.tolist()


def test_mixed_type_labels_get_a_deterministic_order() -> None:
    frame = pd.DataFrame({"entity": [2, "b", 1, "a", 2, "b"], "count": [1, 2, 3, 4, 5, 6]})
    data = from_dataframe(frame)
    again = from_dataframe(frame.iloc[::-1])
    assert list(data.labels) == list(again.labels)
    assert sorted(map(str, data.labels)) == ["1", "2", "a", "b"]
    totals = dict(zip(data.labels, data.entity_total.tolist()))
    assert totals == {2: 6, "b": 8, 1: 3, "a": 4}


def test_mapping_table_and_labels_of_round_trip() -> None:
    data = from_dataframe(random_rows(4))
    table = data.mapping_table()
    assert table["stan_index"].tolist() == list(range(1, data.n_entities + 1))
    assert data.labels_of(table["stan_index"]).tolist() == table["entity"].tolist()
    assert table["total_count"].tolist() == data.entity_total.tolist()
    with pytest.raises(DataError, match="out of range 1..7"):
        data.labels_of([0])
    with pytest.raises(DataError, match="out of range"):
        data.labels_of([data.n_entities + 1])


def test_from_aggregates_equals_from_dataframe_on_the_same_windows() -> None:
    frame = random_rows(5)
    raw = from_dataframe(frame)
    entities = (frame.groupby("entity")["count"].agg(n_windows="size", total_count="sum")
                .reset_index().iloc[::-1])
    histogram = frame["count"].value_counts().rename_axis("value").reset_index(name="frequency")
    aggregated = from_aggregates(entities, histogram)
    assert list(aggregated.labels) == list(raw.labels)
    for name in ("n_windows", "entity_total", "count_value", "count_freq"):
        assert getattr(aggregated, name).tolist() == getattr(raw, name).tolist(), name
    assert not aggregated.has_rows and raw.has_rows
    kwargs = dict(STAN_SWITCHES, use_sufficient_stats=True, obs_predictions=False)
    assert base_stan_data(aggregated, **kwargs) == base_stan_data(raw, **kwargs)


def test_histogram_rows_with_zero_frequency_are_dropped() -> None:
    entities = pd.DataFrame({"entity": ["a", "b"], "n_windows": [1, 2], "total_count": [2, 4]})
    histogram = pd.DataFrame({"value": [5, 2, 0], "frequency": [0, 3, 0]})
    data = from_aggregates(entities, histogram)
    assert data.count_value.tolist() == [2] and data.count_freq.tolist() == [3]


def test_stan_data_is_consistent_with_the_rows() -> None:
    data = from_dataframe(random_rows(6))
    full = base_stan_data(data, **STAN_SWITCHES, use_sufficient_stats=False, obs_predictions=True)
    assert full["N"] == len(full["y"]) == len(full["entity"]) == data.n_windows_total
    assert min(full["entity"]) == 1 and max(full["entity"]) == full["J"]
    assert sum(full["count_freq"]) == full["N"]
    np.testing.assert_array_equal(
        np.bincount(np.asarray(full["entity"]) - 1, weights=full["y"]), full["entity_total"])
    assert full["use_sufficient_stats"] == 0 and full["obs_predictions"] == 1
    lean = base_stan_data(data, **STAN_SWITCHES, use_sufficient_stats=True, obs_predictions=False)
    assert lean["N"] == 0 and lean["y"] == [] and lean["entity"] == []
    assert lean["entity_total"] == full["entity_total"]


def test_aggregates_cannot_give_per_observation_outputs() -> None:
    entities = pd.DataFrame({"entity": ["a", "b"], "n_windows": [1, 1], "total_count": [1, 2]})
    histogram = pd.DataFrame({"value": [1, 2], "frequency": [1, 1]})
    data = from_aggregates(entities, histogram)
    for use_sufficient_stats, obs_predictions in ((False, False), (True, True)):
        with pytest.raises(DataError, match="likelihood='sufficient' and obs_predictions=False"):
            base_stan_data(data, **STAN_SWITCHES, use_sufficient_stats=use_sufficient_stats,
                              obs_predictions=obs_predictions)


def test_entity_totals_beyond_the_stan_int_range_are_exact() -> None:
    counts = [MAX_STAN_INT, MAX_STAN_INT, MAX_STAN_INT, 5, 0]
    data = from_dataframe(pd.DataFrame({"entity": ["a", "a", "a", "b", "b"], "count": counts}))
    assert data.entity_total.tolist() == [3 * MAX_STAN_INT, 5]
    stan = base_stan_data(data, **STAN_SWITCHES, use_sufficient_stats=True, obs_predictions=False)
    assert stan["entity_total"] == [float(3 * MAX_STAN_INT), 5.0]


def test_exact_bincount_sums_past_2_to_the_53() -> None:
    # 2^23 + 2 counts of 2^31 - 1 total more than 2^53: float sums would round.
    size = 2**23 + 2
    y = np.full(size, MAX_STAN_INT, dtype=np.int64)
    codes = np.zeros(size, dtype=np.int64)
    codes[-1] = 1
    totals = _exact_bincount(codes, y, 2)
    assert totals.tolist() == [(size - 1) * MAX_STAN_INT, MAX_STAN_INT]


@pytest.mark.parametrize("values", [[0, 3, 3, 7, 0, 0], [10**9, 5, 10**9, 2**31 - 1, 0]],
                         ids=["bincount path", "unique path"])
def test_count_histogram_matches_counter(values: list[int]) -> None:
    value, freq = count_histogram(np.asarray(values, dtype=np.int64))
    assert dict(zip(value.tolist(), freq.tolist())) == Counter(values)
    assert value.tolist() == sorted(set(values))


def test_csv_and_parquet_load_identically(tmp_path) -> None:
    frame = random_rows(7).rename(columns={"entity": "user", "count": "logins"})
    frame["hour"] = frame.groupby("user").cumcount()
    csv, parquet = tmp_path / "counts.csv", tmp_path / "counts.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet, index=False)
    loaded = [load_counts(path, entity_col="user", count_col="logins", window_col="hour")
              for path in (csv, parquet)]
    direct = from_dataframe(frame, entity_col="user", count_col="logins", window_col="hour")
    for data in loaded:
        assert list(data.labels) == list(direct.labels)
        assert data.y.tolist() == direct.y.tolist()
    # a CSV's windows are read as text as written; a Parquet column keeps its type
    assert loaded[0].window.tolist() == [str(w) for w in direct.window.tolist()]
    assert loaded[1].window.tolist() == direct.window.tolist()
