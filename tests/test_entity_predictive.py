"""``entity_predictions="auto"``: Stan draws the per-entity predictive quantities for small fits
(exactly today's program input, hence today's draws), and large fits derive them in numpy.

The derived draws are checked against an independent density (scipy's NB) and, in the one
sampling test, against the Stan program's own draws at the same theta and phi draws.
"""

from __future__ import annotations

import logging

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ratepool
from ratepool import ConfigError, ModelConfig
from ratepool.engines.base import Draws
from ratepool.model.predictions import entity_predictions_on
from ratepool.model.simulate import entity_replicates, simulate_counts
from ratepool.model.standata import stan_data
from ratepool.outputs.plots import ppc_figure
from ratepool.posterior.entity_predictive import (
    add_prior_replicates,
    entity_predictive,
    entity_total_log_lik,
)


def _data(n_entities: int, seed: int = 3) -> ratepool.CountData:
    simulated = simulate_counts(n_entities=n_entities, windows=(3, 10), mu=4.0, alpha=2.0,
                                phi=3.0, seed=seed)
    return ratepool.load_counts(simulated.frame, entity_col="entity", count_col="count",
                                window_col="window")


# -- the switch ------------------------------------------------------------------------------
def test_auto_is_the_default_and_round_trips_through_toml(tmp_path) -> None:
    config = ModelConfig()
    assert config.entity_predictions == "auto"
    assert config.max_entity_prediction_values == 1_000_000
    path = tmp_path / "config.toml"
    changed = config.replace(entity_predictions=False, max_entity_prediction_values=7)
    for value in (config, changed):
        path.write_text(value.to_toml())
        assert ModelConfig.from_toml(path) == value


@pytest.mark.parametrize("value", ["yes", 1, None, "AUTO"])
def test_bad_entity_predictions_are_refused(value) -> None:
    with pytest.raises(ConfigError, match="entity_predictions must be true, false or"):
        ModelConfig(entity_predictions=value)


def test_below_the_threshold_the_program_input_is_exactly_todays(example_data) -> None:
    """At the defaults the bundled example (and every fit up to 1e6 values) binds the same data
    as entity_predictions=True did, so the seeded draws are today's."""
    assert example_data.n_entities * ModelConfig().total_draws <= 1_000_000
    assert stan_data(example_data, ModelConfig()) == stan_data(
        example_data, ModelConfig(entity_predictions=True))
    assert stan_data(example_data, ModelConfig())["entity_predictions"] == 1


def test_above_the_threshold_they_are_off_with_a_log_line(caplog) -> None:
    data = _data(20)
    config = ModelConfig(max_entity_prediction_values=20 * 8000 - 1)
    with caplog.at_level(logging.INFO, logger="ratepool"):
        assert stan_data(data, config)["entity_predictions"] == 0
    assert "FitResult.entity_predictive()" in caplog.text
    assert stan_data(data, config.replace(entity_predictions=True))["entity_predictions"] == 1
    assert entity_predictions_on(config.replace(max_entity_prediction_values=20 * 8000), data,
                                 8000)
    # Not derivable in numpy with zero-inflation or exposure: Stan keeps drawing them.
    assert entity_predictions_on(config.replace(zero_inflation=True), data, 8000)


def test_exposure_keeps_stan_draws() -> None:
    frame = pd.DataFrame({"entity": ["a", "a", "b"], "count": [1, 2, 3],
                          "exposure": [1.0, 2.0, 1.0]})
    data = ratepool.load_counts(frame, exposure_col="exposure")
    config = ModelConfig(exposure_col="exposure", max_entity_prediction_values=0)
    assert entity_predictions_on(config, data, 8000)


# -- the derived quantities ------------------------------------------------------------------
def test_entity_log_lik_is_scipys_nb_total_density() -> None:
    data = _data(15)
    rng = np.random.default_rng(0)
    theta = rng.gamma(8.0, 0.5, (2, 5, data.n_entities))
    phi = rng.gamma(6.0, 0.5, (2, 5))
    n, total = data.n_windows, data.entity_total
    size = n * phi[..., None]
    expected = stats.nbinom.logpmf(total, size, size / (size + n * theta))
    np.testing.assert_allclose(entity_total_log_lik(theta, phi, data), expected, rtol=1e-10)


def test_replicates_follow_their_laws() -> None:
    """Moments of each replicate at one fixed (theta, phi) over 200,000 draws, within 5 standard
    errors of the exact NB2 / Binomial moments."""
    rng = np.random.default_rng(11)
    theta, phi, n = np.array([0.5, 4.0, 30.0]), 2.5, np.array([1, 6, 20])
    draws = entity_replicates(rng, np.broadcast_to(theta, (200_000, 3)), np.full(200_000, phi),
                              n)
    laws = {"y_pred": (theta, theta + theta**2 / phi),
            "y_rep_total": (n * theta, n * theta + (n * theta) ** 2 / (n * phi)),
            "y_rep_zeros": (n * (1 + theta / phi) ** -phi,
                            n * (1 + theta / phi) ** -phi * (1 - (1 + theta / phi) ** -phi))}
    for name, (mean, variance) in laws.items():
        values = draws[name]
        assert values.dtype == np.int64
        error = np.sqrt(variance / len(values))
        assert np.all(np.abs(values.mean(axis=0) - mean) < 5 * error), name


def test_prior_replicates_are_added() -> None:
    data = _data(6)
    rng = np.random.default_rng(1)
    prior = Draws(variables={"theta_prior": rng.gamma(2.0, 2.0, (1, 40, 6)),
                             "phi_prior": rng.gamma(2.0, 1.0, (1, 40, 1))},
                  sample_stats={}, engine="test")
    add_prior_replicates(prior, data, seed=0)
    assert {name: prior.variables[name].shape for name in
            ("y_pred", "y_rep_total", "y_rep_zeros")} == {
        "y_pred": (1, 40, 6), "y_rep_total": (1, 40, 6), "y_rep_zeros": (1, 40, 6)}
    assert np.all(prior.variables["y_rep_zeros"] <= data.n_windows)


def _posterior_only(data: ratepool.CountData, seed: int = 0) -> az.InferenceData:
    rng = np.random.default_rng(seed)
    return az.from_dict(
        posterior={"theta": rng.gamma(8.0, 0.5, (2, 30, data.n_entities)),
                   "phi": rng.gamma(6.0, 0.5, (2, 30)), "mu": rng.gamma(8.0, 0.5, (2, 30))},
        coords={"entity": np.asarray(data.labels)}, dims={"theta": ["entity"]})


def test_entity_predictive_derives_and_thins() -> None:
    data = _data(7)
    idata = _posterior_only(data)
    full = entity_predictive(idata, data, seed=2)
    assert set(full.data_vars) == {"y_pred", "y_rep_total", "y_rep_zeros", "log_lik_entity"}
    assert full["y_pred"].shape == (2, 30, 7)
    assert list(full["entity"].values) == list(data.labels)
    np.testing.assert_array_equal(full["y_pred"], entity_predictive(idata, data, seed=2)["y_pred"])
    thinned = entity_predictive(idata, data, seed=2, draws=10)
    assert thinned.sizes["draw"] == 5 and thinned["draw"].values[-1] == 29
    with pytest.raises(ratepool.RatepoolError, match="cannot be derived"):
        entity_predictive(idata, data, zero_inflation=True)


def test_ppc_figure_derives_totals_when_the_fit_skipped_them() -> None:
    data = _data(7)
    figure = ppc_figure(_posterior_only(data), data)
    assert len(figure.axes) == 1 and "Entity totals" in figure.axes[0].get_title()


# -- against the Stan program's own draws ----------------------------------------------------
@pytest.mark.slow
def test_derived_draws_match_stans_in_distribution() -> None:
    """One PyStan fit with the quantities drawn in Stan; the derived ones at the same theta and
    phi draws must follow the same laws.

    Given the theta/phi draws, Stan's replicate a_d and the derived b_d are independent with the
    same law, so (i) the number of draws with a_d > b_d among the non-ties is exactly
    Binomial(m, 1/2) (a sign test, valid whatever the autocorrelation of theta), and (ii) a
    two-sample KS test of the pooled draws is conservative (the samples share their theta
    sequence). Each at alpha = 1e-3 with Bonferroni over 8 entities x 3 variables: a false
    alarm has probability below 2 x 1e-3. log_lik_entity is deterministic: equal to 1e-8.
    """
    data = _data(8, seed=9)
    config = ModelConfig(n_samples=500, n_tune=300, n_chains=2, entity_predictions=True,
                         engine="pystan", random_seed=5)
    result = ratepool.fit(data, config)
    stan = result.entity_predictive()
    skipped = result.idata.copy()
    del skipped.posterior_predictive
    del skipped.log_likelihood
    derived = entity_predictive(skipped, data, seed=17)
    np.testing.assert_allclose(derived["log_lik_entity"], stan["log_lik_entity"], rtol=1e-8)
    alpha = 1e-3 / (8 * 3)
    for name in ("y_pred", "y_rep_total", "y_rep_zeros"):
        a = stan[name].values.reshape(-1, 8)
        b = derived[name].values.reshape(-1, 8)
        for i in range(8):
            greater, less = int(np.sum(a[:, i] > b[:, i])), int(np.sum(a[:, i] < b[:, i]))
            if greater + less:
                sign = stats.binomtest(greater, greater + less).pvalue
                assert sign > alpha, (name, i, greater, less)
            assert stats.ks_2samp(a[:, i], b[:, i], method="asymp").pvalue > alpha, (name, i)
