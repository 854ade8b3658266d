"""Entity summary table against hand computations on synthetic draws."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

import ratepool
from ratepool.posterior.summary import entity_summary


def _data() -> ratepool.CountData:
    frame = pd.DataFrame({"entity": ["a"] * 2 + ["b"] * 50 + ["c"] * 5,
                          "count": [3, 5] + [1] * 50 + [0] * 5})
    return ratepool.from_dataframe(frame)


def _idata(rng: np.random.Generator, phi: float) -> az.InferenceData:
    shape = (2, 500)
    theta = rng.gamma(5.0, 1.0, size=shape + (3,))
    return az.from_dict(posterior={"mu": rng.gamma(4.0, 1.0, shape),
                                   "alpha": np.full(shape, 2.0), "phi": np.full(shape, phi),
                                   "theta": theta},
                        coords={"entity": ["a", "b", "c"]}, dims={"theta": ["entity"]})


def test_columns_and_values() -> None:
    data = _data()
    idata = _idata(np.random.default_rng(0), phi=3.0)
    table = entity_summary(idata, data)
    assert list(table.index) == ["a", "b", "c"]
    np.testing.assert_array_equal(table["n_windows"], [2, 50, 5])
    np.testing.assert_allclose(table["raw_rate"], [4.0, 1.0, 0.0])
    theta = idata.posterior["theta"].values.reshape(-1, 3)
    np.testing.assert_allclose(table["theta_mean"], theta.mean(axis=0))
    np.testing.assert_allclose(table["theta_sd"], theta.std(axis=0, ddof=1))
    assert np.all(table["theta_hdi_low"] < table["theta_mean"])
    assert np.all(table["theta_mean"] < table["theta_hdi_high"])
    # shrinkage by hand: E[alpha / (alpha + n * phi / (phi + theta))]
    expected = (2.0 / (2.0 + np.array([2, 50, 5]) * 3.0 / (3.0 + theta))).mean(axis=0)
    np.testing.assert_allclose(table["shrinkage"], expected)
    # more windows, less pooling
    assert table.loc["b", "shrinkage"] < table.loc["c", "shrinkage"] < table.loc["a", "shrinkage"]


def test_shrinkage_is_the_conjugate_weight_for_poisson_like_data() -> None:
    """As phi grows, the weight tends to the Gamma-Poisson posterior-mean weight alpha/(alpha+n)."""
    table = entity_summary(_idata(np.random.default_rng(1), phi=1e9), _data())
    np.testing.assert_allclose(table["shrinkage"], 2.0 / (2.0 + np.array([2, 50, 5])),
                               rtol=1e-6)
    assert table["shrinkage"].between(0, 1).all()
