"""Numerical edge cases: near-Poisson data (large phi), extreme heterogeneity (small alpha),
entities or whole datasets of zeros, huge counts, and predictive draws at huge rates. Each fit
either works (checked against the simulation truth) or says why not in its diagnostics."""

from __future__ import annotations

import gzip
import json
import logging
import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import ratepool
from ratepool.data.counts import MAX_STAN_INT
from ratepool.model.program import default_program
from ratepool.model.simulate import simulate_counts
from ratepool.model.standata import stan_data

from .conftest import CMDSTAN_RUNS, engine_params

SMALL = ratepool.ModelConfig(n_samples=300, n_tune=300, n_chains=2)


def _frame(counts: np.ndarray, n_windows: int) -> pd.DataFrame:
    n_entities = len(counts) // n_windows
    labels = np.repeat([f"e{i}" for i in range(n_entities)], n_windows)
    return pd.DataFrame({"entity": labels, "count": np.asarray(counts, dtype=np.int64)})


def _explains_itself(result: ratepool.FitResult) -> None:
    """A fit that did not converge must say so, with advice; one that did must be clean."""
    diagnostics = result.diagnostics()
    divergences = int(result.idata.sample_stats["diverging"].sum())
    assert diagnostics["divergences"] == divergences
    if not diagnostics["converged"]:
        assert diagnostics["advice"], diagnostics
    if divergences:
        assert any("target_accept" in line for line in diagnostics["advice"])


def _base_prior(config: ratepool.ModelConfig, mu: float, alpha: float, phi: float,
                theta: np.ndarray) -> float:
    """The base model's prior log density (hyperpriors and Gamma rates) with scipy."""
    return float(stats.expon.logpdf(mu, scale=1 / config.mu_prior_rate)
                 + stats.halfnorm.logpdf(alpha, scale=config.alpha_prior_sd)
                 + stats.halfnorm.logpdf(phi, scale=config.overdispersion_prior_sd)
                 + stats.gamma.logpdf(theta, a=mu * alpha, scale=1 / alpha).sum())


def _stable_nb2_logpmf(y: int, mean: float, phi: float) -> float:
    """log NB2(y | mean, phi) without cancellation at large phi: lgamma(y + phi) - lgamma(phi)
    = y log(phi) + sum_j log1p(j / phi), and the rest through log1p(mean / phi)."""
    terms = [math.log1p(j / phi) for j in range(y)]
    return (math.fsum(terms) - math.lgamma(y + 1) + y * math.log(mean)
            - (phi + y) * math.log1p(mean / phi))


@pytest.mark.parametrize("engine_name", engine_params())
@pytest.mark.parametrize("phi", [1e3, 1e5, 1e7])
def test_near_poisson_log_density_on_both_likelihood_paths(engine_name: str, phi: float) -> None:
    """At large phi the regrouped likelihood subtracts large lgamma terms; it must still agree
    with a cancellation-free reference. The measured error at phi = 1e7 is about 1e-8
    relative (round-off of terms of size phi log phi), hence the 1e-6 tolerance."""
    engine = ratepool.get_engine(engine_name)
    rng = np.random.default_rng(7)
    theta = np.array([0.5, 3.0, 20.0, 60.0])
    counts = rng.poisson(np.repeat(theta, 5))
    data = ratepool.from_dataframe(_frame(counts, 5))
    config = ratepool.ModelConfig(overdispersion_prior_sd=1e9)
    mu, alpha = 5.0, 1.0
    prior = _base_prior(config, mu, alpha, phi, theta)
    likelihood = math.fsum(_stable_nb2_logpmf(int(y), theta[i], phi)
                           for y, i in zip(data.y, data.entity_index))
    params = {"mu": mu, "alpha": alpha, "phi": phi, "theta": theta}
    for path in ("sufficient", "observation"):
        data_dict = stan_data(data, config.replace(likelihood=path), obs_predictions=False)
        value = engine.log_density(default_program(), data_dict, params)
        assert value == pytest.approx(prior + likelihood, rel=1e-6), path


def _large_aggregated_panel(theta: np.ndarray, windows_each: int, seed: int
                            ) -> ratepool.CountData:
    """Sufficient statistics of ``windows_each`` Poisson(theta_i) windows per entity, drawn
    as multinomial counts of each value (no rows are materialised)."""
    rng = np.random.default_rng(seed)
    values = np.arange(0, int(theta.max() * 3 + 30))
    per_entity = [rng.multinomial(windows_each, stats.poisson.pmf(values, t) /
                                  stats.poisson.pmf(values, t).sum()) for t in theta]
    freq = np.sum(per_entity, axis=0)
    entities = pd.DataFrame({"entity": [f"e{i}" for i in range(len(theta))],
                             "n_windows": windows_each,
                             "total_count": [int(values @ c) for c in per_entity]})
    return ratepool.from_aggregates(entities, pd.DataFrame({"value": values,
                                                            "frequency": freq}))


def _mpmath_loglik(data: ratepool.CountData, theta: np.ndarray, phi: float) -> float:
    """sum over windows of log NB2(y | theta_i, phi) at 50 significant digits, from the
    sufficient statistics: the algebra is exact, so only the arithmetic differs from Stan."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(50):
        phi_mp = mpmath.mpf(phi)
        total = mpmath.mpf(0)
        for value, freq in zip(data.count_value.tolist(), data.count_freq.tolist()):
            total += freq * (mpmath.loggamma(value + phi_mp) - mpmath.loggamma(phi_mp)
                             - mpmath.loggamma(value + 1))
        for n_i, s_i, t in zip(data.n_windows.tolist(), data.entity_total.tolist(),
                               theta.tolist()):
            t = mpmath.mpf(t)
            total += (n_i * phi_mp * (mpmath.log(phi_mp) - mpmath.log(t + phi_mp))
                      + s_i * (mpmath.log(t) - mpmath.log(t + phi_mp)))
        return float(total)


@pytest.mark.parametrize("engine_name", engine_params())
def test_sufficient_likelihood_at_large_phi_and_n_against_mpmath(engine_name: str) -> None:
    """phi = 1e4 and N = 1e7 windows: the regrouped likelihood's terms of size N phi log phi
    (~1e12) must not cancel. Written with log1p it keeps the absolute error to the round-off
    of O(J + K) terms of size ~1e4..1e8 (< 1e-6); the cancelling form lost ~1e-4."""
    engine = ratepool.get_engine(engine_name)
    theta = np.array([0.3, 2.0, 7.5, 40.0])
    phi = 1e4
    data = _large_aggregated_panel(theta, windows_each=2_500_000, seed=21)
    assert data.n_windows_total == 10_000_000
    config = ratepool.ModelConfig(overdispersion_prior_sd=1e9)
    mu, alpha = 5.0, 1.0
    prior = _base_prior(config, mu, alpha, phi, theta)
    expected = _mpmath_loglik(data, theta, phi)
    value = engine.log_density(default_program(), stan_data(data, config),
                               {"mu": mu, "alpha": alpha, "phi": phi, "theta": theta})
    assert abs((value - prior) - expected) < 1e-6, (value - prior - expected, expected)


#: Floor of the log_lik comparison: double-precision arithmetic of two different formulas
#: (Stan's lbeta/log1p and scipy's), far below any error in the formula itself.
_DOUBLE_TOL = 1e-9


def _nb2_total_loglik(s_i, n_i, theta, phi):
    """log NB2(S_i | n_i theta_i, n_i phi) with scipy."""
    return stats.nbinom.logpmf(s_i, n=n_i * phi, p=phi / (phi + theta))


def _log_lik_gradient(s_i, n_i, theta, phi):
    """(dl/dtheta, dl/dphi) of l = log NB2(S | n theta, n phi):

        dl/dtheta = S / theta - (S + n phi) / (phi + theta)
        dl/dphi = n (psi(S + n phi) - psi(n phi) + log(phi / (phi + theta)))
                  + (n theta - S) / (phi + theta)
    """
    d_theta = s_i / theta - (s_i + n_i * phi) / (phi + theta)
    d_phi = (n_i * (special.digamma(s_i + n_i * phi) - special.digamma(n_i * phi)
                    + np.log(phi / (phi + theta))) + (n_i * theta - s_i) / (phi + theta))
    return d_theta, d_phi


def _rounding_bound(s_i, n_i, theta, phi, log_lik, rel):
    """How far l = log NB2(S | n theta, n phi) can move when theta, phi and the value itself
    each carry a relative rounding error up to ``rel``: rel (|theta dl/dtheta| +
    |phi dl/dphi| + |l|) per element, and 1% on top for the second-order terms (rel^2 times
    the curvature: negligible at 5e-9)."""
    d_theta, d_phi = _log_lik_gradient(s_i, n_i, theta, phi)
    return 1.01 * rel * (np.abs(theta * d_theta) + np.abs(phi * d_phi) + np.abs(log_lik))


def test_rounding_bound_follows_the_log_lik_gradient() -> None:
    """The derivatives are those of scipy's logpmf (central differences), and rounding theta
    and phi to 9 significant digits (what CmdStan writes) moves the value by no more than the
    bound, which stays far below a wrong formula's error."""
    rng = np.random.default_rng(8)
    theta = rng.gamma(1.0, 5.0, 200) + 1e-3
    phi = rng.gamma(1.0, 3.0, 200) + 1e-2
    n_i = rng.integers(1, 50, 200).astype(float)
    s_i = rng.negative_binomial(n_i * phi, phi / (phi + theta)).astype(float)
    value = _nb2_total_loglik(s_i, n_i, theta, phi)
    d_theta, d_phi = _log_lik_gradient(s_i, n_i, theta, phi)
    h = 1e-5
    for name, derivative in (("theta", d_theta), ("phi", d_phi)):
        step = {"theta": theta, "phi": phi}[name] * h
        up = {"theta": theta, "phi": phi, name: {"theta": theta, "phi": phi}[name] + step}
        down = {"theta": theta, "phi": phi, name: {"theta": theta, "phi": phi}[name] - step}
        numeric = (_nb2_total_loglik(s_i, n_i, **up)
                   - _nb2_total_loglik(s_i, n_i, **down)) / (2 * step)
        # Central differences: O(h^2) truncation, and cancellation of about 1e-15 |l| / step
        # (1e-13 leaves room for scipy's own rounding).
        slack = 1e-4 * np.abs(derivative) + 1e-13 * (1 + np.abs(value)) / step
        assert np.all(np.abs(numeric - derivative) <= slack), name
    rounded = (np.array([float(f"{v:.8e}") for v in theta]),
               np.array([float(f"{v:.8e}") for v in phi]))
    moved = np.abs(_nb2_total_loglik(s_i, n_i, *rounded) - value)
    bound = _rounding_bound(s_i, n_i, theta, phi, 0.0, 5e-9)
    assert np.all(moved <= bound + _DOUBLE_TOL)
    assert np.all(bound < 1e-6 * (1 + np.abs(value)))


def test_rounding_bound_holds_on_cmdstan_output_at_six_digits() -> None:
    """Real CmdStan output written at its default 6 significant digits (the base run in
    fixtures/cmdstan-2.35-50abbe5): log_lik_entity agrees with scipy from the printed theta and
    phi within the bound for a relative rounding of 5e-6, not within the double-precision
    floor alone."""
    folder = CMDSTAN_RUNS / "base"
    values = json.loads((folder / "data.json").read_text())
    with gzip.open(folder / "out_1.csv.gz", "rt") as handle:
        frame = pd.read_csv(handle, comment="#")
    n_entities = int(values["J"])
    theta = frame[[f"theta.{i}" for i in range(1, n_entities + 1)]].to_numpy()
    phi = frame[["phi"]].to_numpy()
    log_lik = frame[[f"log_lik_entity.{i}" for i in range(1, n_entities + 1)]].to_numpy()
    n_i = np.asarray(values["n_windows"], dtype=float)
    s_i = np.asarray(values["entity_total"], dtype=float)
    expected = _nb2_total_loglik(s_i, n_i, theta, phi)
    error = np.abs(log_lik - expected)
    assert np.all(error <= _rounding_bound(s_i, n_i, theta, phi, expected, 5e-6)
                  + _DOUBLE_TOL * (1 + np.abs(expected)))
    assert np.any(error > _DOUBLE_TOL * (1 + np.abs(expected)))


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_entity_log_lik_matches_scipy_per_draw(engine: str) -> None:
    """log_lik_entity is log NB2(S_i | n_i theta_i, n_i phi) at every draw (the program's
    nb2_total_loglik, written with lbeta and log1p), here against scipy's pmf.

    PyStan hands over full doubles: the two agree to double-precision arithmetic. CmdStan
    writes its outputs with `output_sig_figs` significant digits, so theta, phi and log_lik
    each carry a relative rounding error up to half a unit in the last digit; the tolerance is
    that error carried through the derivatives of the log likelihood, per entity and draw
    (`_rounding_bound`)."""
    from ratepool.engines.cmdstan import output_sig_figs

    rng = np.random.default_rng(4)
    counts = rng.negative_binomial(2.0, 2.0 / (2.0 + np.repeat([0.2, 3.0, 40.0], 6)))
    result = ratepool.fit(_frame(counts, 6), SMALL.replace(n_samples=100, n_tune=200),
                          engine=engine)
    posterior = result.idata.posterior
    theta = posterior["theta"].to_numpy()
    phi = posterior["phi"].to_numpy()[..., None]
    n_i = result.data.n_windows[None, None, :]
    s_i = result.data.entity_total[None, None, :]
    expected = _nb2_total_loglik(s_i, n_i, theta, phi)
    log_lik = result.idata.log_likelihood["entity_total"].to_numpy()
    rel = (0.5 * 10.0 ** (1 - output_sig_figs(stan_data(result.data, result.config)))
           if engine == "cmdstan" else 0.0)
    bound = _rounding_bound(s_i, n_i, theta, phi, expected, rel)
    error = np.abs(log_lik - expected)
    allowed = bound + _DOUBLE_TOL * (1 + np.abs(expected))
    assert np.all(error <= allowed), (error - allowed).max()


# --------------------------------------------------------------------------------------------
# Fits at the edges (small sampler settings; each is checked against the simulation truth)


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_near_poisson_data_fit(engine: str) -> None:
    rng = np.random.default_rng(11)
    theta = rng.gamma(4.0, 1.0, 8)
    counts = rng.poisson(np.repeat(theta, 10))
    result = ratepool.fit(_frame(counts, 10), SMALL, engine=engine)
    _explains_itself(result)
    posterior = result.idata.posterior
    mean = posterior["theta"].mean(("chain", "draw")).to_numpy()
    sd = posterior["theta"].std(("chain", "draw")).to_numpy()
    # Each truth within 4 posterior sd (8 entities: a false failure has probability < 1e-3).
    assert np.all(np.abs(mean - theta) < 4 * sd), (mean, theta, sd)
    # Poisson data push phi above its prior (HalfNormal(2) median 1.35) by a wide margin.
    assert float(posterior["phi"].median()) > 2.5


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_extreme_heterogeneity_small_alpha(engine: str) -> None:
    simulated = simulate_counts(n_entities=12, windows=8, mu=5.0, alpha=0.05, phi=2.0, seed=3)
    result = ratepool.fit(simulated.frame, SMALL, engine=engine)
    _explains_itself(result)
    alpha = result.idata.posterior["alpha"].to_numpy().ravel()
    # True alpha is 0.05; the prior's 94% interval is (0.05, 3.8). Rates spread from 1e-10 to
    # 17 put the posterior well below 1.
    assert np.quantile(alpha, 0.97) < 1.0
    theta = result.idata.posterior["theta"].median(("chain", "draw")).to_numpy()
    order = np.argsort(simulated.theta.to_numpy())
    assert np.all(theta[order[:3]] < theta[order[-3:]].min())


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_entities_with_only_zeros_shrink_toward_the_others(engine: str) -> None:
    rng = np.random.default_rng(5)
    counts = rng.poisson(3.0, 30)
    counts[:10] = 0  # entities e0 and e1: five zero windows each
    result = ratepool.fit(_frame(counts, 5), SMALL, engine=engine)
    _explains_itself(result)
    theta = result.idata.posterior["theta"]
    assert float(theta.min()) > 0
    zero_means = theta.sel(entity=["e0", "e1"]).mean(("chain", "draw")).to_numpy()
    other_means = theta.sel(entity=["e2", "e3", "e4", "e5"]).mean(("chain", "draw")).to_numpy()
    assert np.all(zero_means > 0) and zero_means.max() < other_means.min()
    assert result.entity_summary().loc[["e0", "e1"], "shrinkage"].notna().all()


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_all_zero_data_fit_runs_and_reports_its_problems(
        engine: str, caplog: pytest.LogCaptureFixture) -> None:
    """All zeros leave mu and phi to their priors and put a funnel at theta = 0: the fit must
    run, warn at load time, keep rates near 0, and either converge or say it did not."""
    with caplog.at_level(logging.WARNING, logger="ratepool.data"):
        result = ratepool.fit(_frame(np.zeros(30, dtype=np.int64), 5), SMALL, engine=engine)
    assert "every count is zero" in caplog.text
    _explains_itself(result)
    theta = result.idata.posterior["theta"].to_numpy()
    assert np.all(np.isfinite(theta)) and np.all(theta >= 0)
    # Five zero windows per entity: a rate of 1 or more would make that unlikely for every
    # entity at any phi the prior allows, so the posterior median stays well below 1.
    assert float(np.median(theta)) < 1.0
    y_rep = result.idata.posterior_predictive["y_rep"].to_numpy()
    assert y_rep.dtype == np.int64 and y_rep.min() >= 0


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_huge_counts_fit_and_predict_beyond_the_int_range(engine: str) -> None:
    rng = np.random.default_rng(9)
    theta = np.array([1.0e9, 1.5e9, 2.0e8, 5.0e8])
    counts = np.minimum(rng.poisson(np.repeat(theta, 6)), MAX_STAN_INT)
    data = ratepool.from_dataframe(_frame(counts, 6))
    assert data.entity_total.max() > MAX_STAN_INT  # totals pass through Stan as reals
    result = ratepool.fit(data, SMALL, engine=engine)
    _explains_itself(result)
    median = result.idata.posterior["theta"].median(("chain", "draw")).to_numpy()
    np.testing.assert_allclose(median, data.raw_rate(), rtol=0.5)
    predictive = result.idata.posterior_predictive
    y_rep = predictive["y_rep"].to_numpy()
    assert y_rep.dtype == np.int64 and y_rep.min() >= 0
    assert y_rep.max() > MAX_STAN_INT  # draws above Stan's int range come through intact
    # Each entity's replicated counts average its posterior mean rate (Monte Carlo error of
    # the mean of 600 draws is under 5% here: sd(y_rep)/rate is about 1/sqrt(phi) < 1).
    rep_mean = np.array([y_rep[..., data.entity_index == i].mean() for i in range(4)])
    theta_mean = result.idata.posterior["theta"].mean(("chain", "draw")).to_numpy()
    np.testing.assert_allclose(rep_mean, theta_mean, rtol=0.2)
    totals = predictive["y_rep_total"].to_numpy()
    assert totals.min() >= 0 and totals.max() > MAX_STAN_INT
    assert int(predictive["y_rep_zeros"].max()) == 0


@pytest.mark.parametrize("engine", engine_params())
@pytest.mark.parametrize("mu_prior_rate", [1e-12, 1e-20])
def test_prior_predictive_draws_at_huge_rates(engine: str, mu_prior_rate: float) -> None:
    """mu ~ Exponential(1e-12) puts rates near 1e12 and Exponential(1e-20) near 1e20:
    predictive counts must stay non-negative integers: int64 where they fit, float64 (with a
    logged warning) for a variable with draws beyond 2^63."""
    frame = _frame(np.array([1, 2, 3, 4]), 2)
    idata = ratepool.sample_prior(frame, ratepool.ModelConfig(mu_prior_rate=mu_prior_rate),
                                  draws=200, engine=engine)
    for name in ("y_rep", "y_pred", "y_rep_total", "y_new"):
        values = idata.prior_predictive[name].to_numpy()
        assert values.min() >= 0 and np.all(values == np.floor(values)), name
        expected = np.int64 if values.max() < 2.0**63 else np.float64
        assert values.dtype == expected, name
    assert idata.prior_predictive["y_pred"].to_numpy().max() > 0.01 / mu_prior_rate
