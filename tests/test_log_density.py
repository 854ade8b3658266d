"""The Stan program's log density against an independent scipy computation.

Constant convention: the program's target is the exact, fully normalised joint log density
(half-normals include their factor 2, the NB2 pmf its binomial coefficient), so Stan's
log_prob without the Jacobian must equal the sum of scipy log densities, with no offset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ratepool
from ratepool.model.program import default_program
from ratepool.model.standata import stan_data

from .conftest import engine_params

CONFIG = ratepool.ModelConfig(mu_prior_rate=0.2, alpha_prior_sd=1.5, overdispersion_prior_sd=3.0)
SEEDS = {"zeros_and_unequal": 11, "large_counts": 12, "heterogeneous": 13}


def scipy_log_density(data: ratepool.CountData, mu: float, alpha: float, phi: float,
                      theta: np.ndarray, config: ratepool.ModelConfig = CONFIG) -> float:
    prior = (stats.expon.logpdf(mu, scale=1 / config.mu_prior_rate)
             + stats.halfnorm.logpdf(alpha, scale=config.alpha_prior_sd)
             + stats.halfnorm.logpdf(phi, scale=config.overdispersion_prior_sd)
             + stats.gamma.logpdf(theta, a=mu * alpha, scale=1 / alpha).sum())
    rate = theta[data.entity_index]
    likelihood = stats.nbinom.logpmf(data.y, n=phi, p=phi / (phi + rate)).sum()
    return float(prior + likelihood)


def _dataset(kind: str, rng: np.random.Generator) -> ratepool.CountData:
    if kind == "zeros_and_unequal":
        n = [1, 2, 25, 3]
        y = np.concatenate([np.zeros(1), rng.poisson(1, 2), rng.poisson(4, 25), np.zeros(3)])
    elif kind == "large_counts":
        n = [4, 5, 6]
        y = np.concatenate([rng.poisson(5e4, 4), rng.poisson(2e6, 5), rng.poisson(7, 6)])
    else:  # heterogeneous: many near-zero entities
        n = [3] * 8
        y = rng.negative_binomial(0.5, 0.5 / (0.5 + np.repeat(rng.gamma(0.2, 10, 8), 3)))
    labels = np.repeat([f"e{i}" for i in range(len(n))], n)
    return ratepool.from_dataframe(pd.DataFrame({"entity": labels, "count": y.astype(int)}))


def _points(data: ratepool.CountData, rng: np.random.Generator, n_points: int = 3):
    for _ in range(n_points):
        mu, alpha, phi = rng.gamma(2, 2), rng.gamma(2, 0.5), rng.gamma(2, 1)
        theta = np.maximum(data.raw_rate() * rng.uniform(0.5, 1.5, data.n_entities), 0.05)
        yield mu, alpha, phi, theta


@pytest.mark.parametrize("engine_name", engine_params())
@pytest.mark.parametrize("kind", ["zeros_and_unequal", "large_counts", "heterogeneous"])
def test_log_density_matches_scipy_on_both_paths(engine_name: str, kind: str) -> None:
    engine = ratepool.get_engine(engine_name)
    rng = np.random.default_rng(SEEDS[kind])
    data = _dataset(kind, rng)
    program = default_program()
    for mu, alpha, phi, theta in _points(data, rng):
        expected = scipy_log_density(data, mu, alpha, phi, theta)
        params = {"mu": mu, "alpha": alpha, "phi": phi, "theta": theta}
        for likelihood in ("sufficient", "observation"):
            config = CONFIG.replace(likelihood=likelihood)
            value = engine.log_density(program, stan_data(data, config, obs_predictions=False),
                                       params)
            assert value == pytest.approx(expected, rel=1e-8, abs=1e-8), (kind, likelihood)


@pytest.mark.parametrize("engine_name", engine_params())
def test_non_centered_density_is_the_same_model(engine_name: str) -> None:
    """theta_raw = alpha * theta: the density in theta_raw is the one in theta / alpha^J."""
    engine = ratepool.get_engine(engine_name)
    rng = np.random.default_rng(3)
    data = _dataset("zeros_and_unequal", rng)
    config = CONFIG.replace(parameterization="non_centered")
    for mu, alpha, phi, theta in _points(data, rng):
        expected = scipy_log_density(data, mu, alpha, phi, theta) - data.n_entities * np.log(alpha)
        params = {"mu": mu, "alpha": alpha, "phi": phi, "theta_raw": alpha * theta}
        value = engine.log_density(default_program(), stan_data(data, config,
                                                                 obs_predictions=False), params)
        assert value == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("engine_name", engine_params())
def test_prior_only_drops_the_likelihood(engine_name: str) -> None:
    engine = ratepool.get_engine(engine_name)
    rng = np.random.default_rng(5)
    data = _dataset("zeros_and_unequal", rng)
    mu, alpha, phi, theta = next(_points(data, rng))
    prior_only = engine.log_density(
        default_program(), stan_data(data, CONFIG, prior_only=True, obs_predictions=False),
        {"mu": mu, "alpha": alpha, "phi": phi, "theta": theta})
    expected = (stats.expon.logpdf(mu, scale=1 / CONFIG.mu_prior_rate)
                + stats.halfnorm.logpdf(alpha, scale=CONFIG.alpha_prior_sd)
                + stats.halfnorm.logpdf(phi, scale=CONFIG.overdispersion_prior_sd)
                + stats.gamma.logpdf(theta, a=mu * alpha, scale=1 / alpha).sum())
    assert prior_only == pytest.approx(expected, rel=1e-10)
