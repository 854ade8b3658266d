"""The zero-inflated program's coordinates for the entity rates (see the parameters block of
``stan/hierarchical_negbinom.stan``): entities without events through the pair
theta_i = exp(log_g_i - neg_log_u_i / a_i) / alpha, entities with events as log theta_i with
an offset and multiplier set from the hyperparameters (event_rate_moments): the same model as
theta_i ~ Gamma(a_i, alpha), checked against scipy, and the geometry that made 65% of the
all-options SBC fits diverge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import ratepool
from ratepool.engines.base import SamplerSettings
from ratepool.model.program import default_program
from ratepool.model.standata import exposure_scale, stan_data

from .conftest import engine_params
from .test_options import assert_both_paths_equal, scipy_log_density
from .zero_inflation_params import program_point

CONFIG = ratepool.ModelConfig(mu_prior_rate=0.2, alpha_prior_sd=1.5, overdispersion_prior_sd=3.0,
                              beta_prior_sd=0.7, zero_inflation=True)


def zero_heavy_panel(seed: int) -> pd.DataFrame:
    """7 entities, three of them without any event, exposures (median 1: the program sees
    them unscaled, as scipy_log_density assumes) and one covariate."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(7):
        for j in range(5):
            count = 0 if i in (1, 4, 5) or rng.random() < 0.5 else int(rng.poisson(3.0))
            rows.append((f"e{i}", j, count, float(rng.choice([0.5, 1.0, 1.5])), float(i)))
    return pd.DataFrame(rows, columns=["entity", "window", "count", "exposure", "x"])


@pytest.mark.parametrize("engine_name", engine_params())
def test_density_in_the_auxiliary_coordinates_matches_scipy(engine_name: str) -> None:
    """At random points: the program's log density (both likelihood paths) is scipy's joint
    density of the data and theta, with each zero entity's Gamma density replaced by scipy's
    log Gamma(a + 1) and Exponential(1) densities of its pair (tests/zero_inflation_params)."""
    engine = ratepool.get_engine(engine_name)
    data = ratepool.from_dataframe(zero_heavy_panel(1), exposure_col="exposure",
                                   covariates=["x"])
    assert int(np.sum(data.entity_total == 0)) == 3 and exposure_scale(data) == 1.0
    rng = np.random.default_rng(7)
    for _ in range(3):
        params = {"mu": rng.gamma(2, 2), "alpha": rng.gamma(2, 0.5), "phi": rng.gamma(2, 1),
                  "theta": rng.gamma(2.0, 1.0, data.n_entities), "beta": rng.normal(0, 0.5, 1),
                  "pi": [float(rng.uniform(0.1, 0.9))]}
        assert_both_paths_equal(engine, data, CONFIG, params,
                                scipy_log_density(data, params, CONFIG, True))


@pytest.mark.cmdstan
@pytest.mark.parametrize("engine_name", engine_params()[1:])
def test_zero_entities_rates_have_their_gamma_prior(engine_name: str) -> None:
    """NUTS on the prior (prior_only = 1): each draw's theta_i of an entity without events,
    reported as theta, has the Gamma(mu alpha, alpha) law given that draw's mu and alpha, i.e.
    its scipy CDF at the draw is uniform (Kolmogorov-Smirnov on draws thinned to about
    independent). The pair (log_g, neg_log_u) must map to it exactly: a wrong shape in the
    map or the density shifts these PIT values by far more than the test's 1e-3 level."""
    engine = ratepool.get_engine(engine_name)
    data = ratepool.from_dataframe(zero_heavy_panel(2))
    config = CONFIG.replace(beta_prior_sd=1.0)
    draws = engine.sample(default_program(), stan_data(data, config, prior_only=True,
                                                       obs_predictions=False),
                          SamplerSettings(chains=2, warmup=500, draws=1500, adapt_delta=0.9,
                                          seed=11))
    mu, alpha = draws.variables["mu"].reshape(-1), draws.variables["alpha"].reshape(-1)
    theta = draws.variables["theta_from_raw"].reshape(len(mu), -1)
    zero = np.flatnonzero(data.entity_total == 0)
    pit = stats.gamma.cdf(theta[:, zero], a=(mu * alpha)[:, None], scale=1 / alpha[:, None])
    for column in pit.T:
        assert stats.kstest(column[::10], "uniform").pvalue > 1e-3
    # theta_from_raw is the map of the pair, entity by entity
    shape = (mu * alpha)[:, None]
    mapped = np.exp(draws.variables["log_g"].reshape(len(mu), -1)
                    - draws.variables["neg_log_u"].reshape(len(mu), -1) / shape) / alpha[:, None]
    np.testing.assert_allclose(theta[:, zero], mapped, rtol=1e-5)


def _all_zero_panel(seed: int) -> pd.DataFrame:
    """Simulation 31 of the all-options SBC's kind: 10 entities x 8 windows, every count 0."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"entity": np.repeat([f"e{i}" for i in range(10)], 8),
                         "count": 0, "exposure": np.exp(rng.uniform(-1.4, 1.4, 80))})


@pytest.mark.cmdstan
@pytest.mark.parametrize("engine_name", engine_params()[1:])
def test_zero_inflated_fit_of_all_zero_windows_has_no_divergences(engine_name: str) -> None:
    """Where the centred program diverged most: every window zero, so every entity's rate
    is its prior and pi is free. The centred program (commit 884d49d) had 9 divergent
    transitions of 1000 in this seeded fit; now it must have at most 1."""
    data = ratepool.from_dataframe(_all_zero_panel(3), exposure_col="exposure")
    config = ratepool.ModelConfig(zero_inflation=True, n_chains=2, n_tune=500, n_samples=500,
                                  random_seed=31, obs_predictions=False,
                                  entity_predictions=False)
    fit = ratepool.fit(data, config, engine=engine_name)
    divergences = int(fit.idata.sample_stats["diverging"].values.sum())
    assert divergences <= 1


def event_rate_moments(data: ratepool.CountData, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """The offset and multiplier of log_theta_events (the Stan file's event_rate_moments,
    written again from its comment): per entity with events, the mode of the approximate
    conditional log density of u = log theta after six damped Newton steps from the Poisson
    guess, and 1 / sqrt of its (non-negative part of the) curvature there."""
    mu, alpha, phi = (float(params[name]) for name in ("mu", "alpha", "phi"))
    pi = float(params["pi"][0])
    shape = np.full(data.n_entities, mu * alpha)
    if data.covariates is not None:
        shape = shape * np.exp(data.covariates.scaled @ np.asarray(params["beta"]))
    exposure = data.exposure if data.exposure is not None else np.ones(len(data.y))
    entity, zero = data.entity_index, data.y == 0

    def per_entity(values: np.ndarray) -> np.ndarray:
        return np.bincount(entity, weights=values, minlength=data.n_entities)

    nonzero_count, zero_count = per_entity(~zero * 1.0), per_entity(zero * 1.0)
    exposure_nonzero = per_entity(exposure * ~zero) / np.maximum(nonzero_count, 1)
    exposure_zero = per_entity(exposure * zero) / np.maximum(zero_count, 1)
    total = np.asarray(data.entity_total, dtype=float)
    weight = total + phi * nonzero_count
    u = np.log((shape + total) / (alpha + exposure_nonzero * nonzero_count
                                   + (1 - pi) * exposure_zero * zero_count))
    for step in range(7):
        theta = np.exp(u)
        m_nonzero, m_zero = exposure_nonzero * theta, exposure_zero * theta
        p0 = (phi / (phi + m_zero)) ** phi
        not_structural = (1 - pi) * p0 / (pi + (1 - pi) * p0)
        # d/du and -d2/du2 (its non-negative terms) of a u - alpha e^u + sum_y>0 [y u -
        # (y + phi) log(m + phi)] + sum_y=0 log(pi + (1 - pi) p0(m))
        slope = (shape - alpha * theta + total - weight * m_nonzero / (m_nonzero + phi)
                 - phi * zero_count * not_structural * m_zero / (m_zero + phi))
        curvature = (alpha * theta + weight * phi * m_nonzero / (m_nonzero + phi) ** 2
                     + zero_count * not_structural * phi ** 2 * m_zero / (m_zero + phi) ** 2)
        if step < 6:
            u = u + 3 * np.tanh(slope / curvature / 3)
    events = total > 0
    return u[events], 1 / np.sqrt(curvature[events])


@pytest.mark.parametrize("engine_name", engine_params())
def test_rates_of_entities_with_events_have_the_documented_coordinates(engine_name: str) -> None:
    """log_theta_events is log theta_i itself (the density tests above set it so) with the
    documented offset and multiplier: the log density with the constraints' Jacobians exceeds
    the one without by the standard transforms' log Jacobians plus, per entity with events,
    log of its multiplier (computed here independently) and, per entity without events, that
    of log_g. The offset and multiplier are the same from the groups (both likelihood paths)
    and from the rows (hand-written data with G = 0 on the reference path)."""
    engine = ratepool.get_engine(engine_name)
    data = ratepool.from_dataframe(zero_heavy_panel(1), exposure_col="exposure",
                                   covariates=["x"])
    rng = np.random.default_rng(5)
    for _ in range(3):
        params = {"mu": rng.gamma(2, 2), "alpha": rng.gamma(2, 0.5), "phi": rng.gamma(2, 1),
                  "theta": rng.gamma(2.0, 1.0, data.n_entities), "beta": rng.normal(0, 0.5, 1),
                  "pi": [float(rng.uniform(0.1, 0.9))]}
        point, _ = program_point(data, params, CONFIG)
        shape = params["mu"] * params["alpha"] * np.exp(data.covariates.scaled @ params["beta"])
        zero = np.asarray(data.entity_total) == 0
        _, multiplier = event_rate_moments(data, params)
        pi = params["pi"][0]
        expected = (np.log(params["mu"] * params["alpha"] * params["phi"] * pi * (1 - pi))
                    + np.sum(np.log(point["neg_log_u"]))
                    + np.sum(0.5 * np.log(special.polygamma(1, shape[zero] + 1)))
                    + np.sum(np.log(multiplier)))
        inputs = [stan_data(data, CONFIG.replace(likelihood=likelihood), obs_predictions=False)
                  for likelihood in ("sufficient", "observation")]
        rows = dict(inputs[1], G=0)
        rows.update({name: [] for name in ("group_entity", "group_exposure", "group_windows",
                                           "group_zeros", "group_total")})
        for stan_input in [*inputs, rows]:
            with_jacobian = engine.log_density(default_program(), stan_input, point,
                                               jacobian=True)
            without = engine.log_density(default_program(), stan_input, point)
            assert with_jacobian - without == pytest.approx(expected, rel=1e-8, abs=1e-8)
        # the reference path from the rows has the same density as from the groups
        assert engine.log_density(default_program(), rows, point) == pytest.approx(
            engine.log_density(default_program(), inputs[1], point), rel=1e-10)
