"""Property tests (hypothesis): the label <-> index mapping round-trips for arbitrary labels, and
the sufficient-statistics likelihood equals the per-observation one on arbitrary small datasets,
both in the Stan program itself and in an independent scipy computation."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import gammaln

from ratepool.data.frame import from_aggregates, from_dataframe
from ratepool.engines.pystan import pystan_available
from ratepool.model.program import default_program
from ratepool.model.standata import base_stan_data

# Hashable labels of two types that never compare equal to each other (so that no two distinct
# labels collapse into one entity), including empty strings, unicode and huge integers.
LABELS = st.one_of(st.text(max_size=12), st.integers(min_value=-(2**70), max_value=2**70))


@st.composite
def labelled_rows(draw: st.DrawFn) -> pd.DataFrame:
    """2..8 distinct labels, each with 1..5 windows, in shuffled row order."""
    labels = draw(st.lists(LABELS, min_size=2, max_size=8, unique=True))
    windows = draw(st.lists(st.integers(1, 5), min_size=len(labels), max_size=len(labels)))
    column = [label for label, n in zip(labels, windows) for _ in range(n)]
    counts = draw(st.lists(st.integers(0, 10**6), min_size=len(column), max_size=len(column)))
    order = draw(st.permutations(range(len(column))))
    return pd.DataFrame({"entity": pd.Series([column[i] for i in order], dtype=object),
                         "count": [counts[i] for i in order]})


@settings(max_examples=200, deadline=None)
@given(labelled_rows())
def test_label_mapping_round_trips(frame: pd.DataFrame) -> None:
    data = from_dataframe(frame)
    originals = frame["entity"].tolist()
    # Each row's Stan index maps back to its own label, with the label's type intact.
    back = data.labels_of(data.entity_index + 1).tolist()
    assert [(type(b), b) for b in back] == [(type(o), o) for o in originals]
    # Every label appears exactly once in the mapping, and the table agrees with the rows.
    table = data.mapping_table()
    assert Counter(map(repr, table["entity"])) == Counter(map(repr, set(originals)))
    for label, stan_index, n_windows, total in table.itertuples(index=False):
        mine = [c for e, c in zip(originals, frame["count"]) if type(e) is type(label)
                and e == label]
        assert data.labels_of([stan_index])[0] == label
        assert (n_windows, total) == (len(mine), sum(mine))
    # The order of the rows does not change the mapping.
    reordered = from_dataframe(frame.iloc[::-1].reset_index(drop=True))
    assert list(map(repr, reordered.labels)) == list(map(repr, data.labels))


@settings(max_examples=100, deadline=None)
@given(labelled_rows())
def test_aggregates_built_from_the_rows_give_the_same_data(frame: pd.DataFrame) -> None:
    raw = from_dataframe(frame)
    entities = pd.DataFrame({"entity": pd.Series(list(raw.labels), dtype=object),
                             "n_windows": raw.n_windows, "total_count": raw.entity_total})
    histogram = pd.DataFrame(Counter(frame["count"].tolist()).items(),
                             columns=["value", "frequency"])
    aggregated = from_aggregates(entities.iloc[::-1], histogram)
    assert list(map(repr, aggregated.labels)) == list(map(repr, raw.labels))
    for name in ("n_windows", "entity_total", "count_value", "count_freq"):
        assert getattr(aggregated, name).tolist() == getattr(raw, name).tolist()


# --------------------------------------------------------------------------------------------
# Sufficient statistics vs one term per observation


@st.composite
def dataset_and_point(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A small dataset (2..5 entities, 1..4 windows each, counts up to 10^5, often zero) and a
    parameter point in the bulk of plausible values."""
    n_windows = draw(st.lists(st.integers(1, 4), min_size=2, max_size=5))
    count = st.one_of(st.just(0), st.integers(0, 20), st.integers(0, 10**5))
    counts = draw(st.lists(count, min_size=sum(n_windows), max_size=sum(n_windows)))
    frame = pd.DataFrame({"entity": np.repeat([f"e{i}" for i in range(len(n_windows))],
                                              n_windows), "count": counts})
    positive = st.floats(min_value=0.01, max_value=100.0, allow_nan=False, allow_infinity=False)
    point = {"mu": draw(positive), "alpha": draw(positive), "phi": draw(positive),
             "theta": np.array(draw(st.lists(
                 st.floats(min_value=0.01, max_value=1e4, allow_nan=False),
                 min_size=len(n_windows), max_size=len(n_windows))))}
    return frame, point


def _sufficient_loglik(data: Any, theta: np.ndarray, phi: float) -> float:
    """The regrouped likelihood, written from the model's algebra in numpy."""
    k, m = data.count_value.astype(float), data.count_freq.astype(float)
    n, s = data.n_windows.astype(float), data.entity_total.astype(float)
    n_total = n.sum()
    return float(m @ gammaln(k + phi) - n_total * gammaln(phi) - m @ gammaln(k + 1)
                 + n_total * phi * np.log(phi) - (n * phi + s) @ np.log(theta + phi)
                 + s @ np.log(theta))


@settings(max_examples=300, deadline=None)
@given(dataset_and_point())
def test_sufficient_statistics_likelihood_equals_scipy_per_observation(case: Any) -> None:
    frame, point = case
    data = from_dataframe(frame)
    theta, phi = point["theta"], point["phi"]
    rate = theta[data.entity_index]
    per_observation = stats.nbinom.logpmf(data.y, n=phi, p=phi / (phi + rate)).sum()
    assert _sufficient_loglik(data, theta, phi) == pytest.approx(per_observation, rel=1e-9,
                                                                 abs=1e-9)


@pytest.mark.skipif(not pystan_available(), reason="pystan is not installed")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dataset_and_point())
def test_stan_likelihood_paths_agree(case: Any) -> None:
    """The Stan program's log density with use_sufficient_stats = 1 and = 0 (one
    neg_binomial_2 term per observation) at the same point: relative agreement 1e-8."""
    import ratepool

    frame, point = case
    data = from_dataframe(frame)
    engine = ratepool.get_engine("pystan")
    params = {"mu": point["mu"], "alpha": point["alpha"], "phi": point["phi"],
              "theta": point["theta"]}
    values = []
    for sufficient in (True, False):
        stan_data = base_stan_data(data, mu_rate=0.1, alpha_sd=2.0, phi_sd=2.0,
                                      use_sufficient_stats=sufficient, prior_only=False,
                                      non_centered=False, obs_predictions=False,
                                      entity_predictions=False)
        assert stan_data["use_sufficient_stats"] == int(sufficient)
        values.append(engine.log_density(default_program(), stan_data, params, jacobian=False))
    assert np.isfinite(values).all()
    assert values[0] == pytest.approx(values[1], rel=1e-8, abs=1e-8)
