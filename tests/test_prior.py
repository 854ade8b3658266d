"""The prior predictive check's shares, against numpy on known draws (no sampling)."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.model.prior import PLAUSIBLE_RANGE, prior_predictive_check


def _prior_idata(y_pred: np.ndarray) -> az.InferenceData:
    return az.from_dict(prior_predictive={"y_pred": y_pred}, dims={"y_pred": ["entity"]})


def test_shares_in_the_fixed_and_in_the_observed_range() -> None:
    rng = np.random.default_rng(0)
    y_pred = rng.negative_binomial(0.7, 0.7 / (0.7 + 400.0), size=(1, 500, 4))
    frame = pd.DataFrame({"entity": ["a", "a", "b", "c", "d"],
                          "count": [300, 420, 900, 555, 610]})
    data = ratepool.from_dataframe(frame)
    check = prior_predictive_check(_prior_idata(y_pred), data)
    counts = y_pred.ravel()
    assert PLAUSIBLE_RANGE == (0, 50)
    assert check["share_0_50"] == pytest.approx(np.mean(counts <= 50))
    assert (check["observed_min"], check["observed_max"]) == (300, 900)
    assert check["share_observed_range"] == pytest.approx(
        np.mean((counts >= 300) & (counts <= 900)))
    assert 0.05 < check["share_observed_range"] < 0.95 and check["share_0_50"] < 0.5
    assert "share_observed_range" not in prior_predictive_check(_prior_idata(y_pred))


def test_observed_range_of_pre_aggregated_data_comes_from_the_histogram() -> None:
    entities = pd.DataFrame({"entity": ["a", "b"], "n_windows": [2, 1], "total_count": [7, 0]})
    histogram = pd.DataFrame({"value": [0, 2, 5], "frequency": [1, 1, 1]})
    data = ratepool.from_aggregates(entities, histogram)
    y_pred = np.arange(12).reshape(1, 6, 2)
    check = prior_predictive_check(_prior_idata(y_pred), data)
    assert (check["observed_min"], check["observed_max"]) == (0, 5)
    assert check["share_observed_range"] == pytest.approx(6 / 12)
