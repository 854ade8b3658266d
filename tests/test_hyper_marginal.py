"""The hyperparameters given every entity, rates integrated out (issue 18, item 3).

References: mpmath's confluent hypergeometric U (the entity's marginal likelihood in closed
form), scipy's NB2 pmf and Gamma pdf integrated by ``scipy.integrate.quad`` (the log posterior
of a small dataset, window by window), and a NUTS fit of the same data (hyperparameter
posterior and every entity's posterior mean).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from scipy import integrate, stats

import ratepool
from ratepool.model.simulate import simulate_counts
from ratepool.posterior.entity_conditional import entity_log_marginal
from ratepool.posterior.hyper_marginal import (
    EntityStatistics,
    log_posterior,
    sample_hyperparameters,
)
from ratepool.workflow.scale_out import fit_scaled


def _closed_form(n, total, mu, alpha, phi) -> float:
    """a log alpha - lgamma(a) - S log phi + log of
    integral theta^(a+S-1) e^(-alpha theta) (1 + theta/phi)^-(S + n phi) d theta
    = Gamma(a+S) phi^(a+S) U(a+S, a+S+1-S-n phi, alpha phi)."""
    mpmath.mp.dps = 40
    a, s = mpmath.mpf(mu) * alpha, mpmath.mpf(total)
    integral = (mpmath.gamma(a + s) * mpmath.power(phi, a + s)
                * mpmath.hyperu(a + s, a + 1 - n * mpmath.mpf(phi), mpmath.mpf(alpha) * phi))
    return float(a * mpmath.log(alpha) - mpmath.loggamma(a) - s * mpmath.log(phi)
                 + mpmath.log(integral))


@pytest.mark.parametrize("n, total, mu, alpha, phi", [
    (1, 0, 0.05, 0.5, 1.0),        # mu alpha = 0.025, one empty window
    (200, 0, 0.2, 0.5, 1.0),       # many empty windows
    (5, 3, 4.0, 1.5, 3.0),
    (100, 39, 0.3, 0.2, 0.3),      # just below the switch to Gauss–Hermite
    (5, 45, 2.0, 1.0, 50.0),       # just above it, near-Poisson windows
    (500, 30, 0.05, 2.0, 0.3),
    (1000, 5000, 5.0, 1.0, 0.1),   # heavy overdispersion, many events
    (3, 200, 40.0, 0.1, 50.0),
])
def test_entity_marginal_matches_the_closed_form(n, total, mu, alpha, phi):
    assert entity_log_marginal(n, total, mu, alpha, phi) == pytest.approx(
        _closed_form(n, total, mu, alpha, phi), rel=1e-10, abs=1e-10)


def _brute_log_posterior(counts: list[np.ndarray], point: np.ndarray,
                         config: ratepool.ModelConfig) -> float:
    """Window by window with scipy's NB2 pmf and Gamma pdf, theta integrated by quad."""
    mu, alpha, phi = np.exp(point)
    value = (stats.expon.logpdf(mu, scale=1 / config.mu_prior_rate)
             + stats.halfnorm.logpdf(alpha, scale=config.alpha_prior_sd)
             + stats.halfnorm.logpdf(phi, scale=config.overdispersion_prior_sd)
             + point.sum())
    for y in counts:
        def integrand(theta, y=y):
            p = phi / (phi + theta)
            return (np.exp(stats.nbinom.logpmf(y, phi, p).sum())
                    * stats.gamma.pdf(theta, mu * alpha, scale=1 / alpha))
        edges = [0.0, 1e-8, 1e-4, 0.1, 1, 5, 20, 100, np.inf]
        value += np.log(sum(integrate.quad(integrand, lo, hi, limit=200, epsabs=0,
                                           epsrel=1e-10)[0]
                            for lo, hi in zip(edges[:-1], edges[1:])))
    return float(value)


# quad may warn of roundoff on a segment where the integrand is negligible; the 1e-7
# agreement of the differences is the check
@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_log_posterior_differences_match_scipy_window_by_window():
    rng = np.random.default_rng(5)
    counts = [rng.negative_binomial(2.0, 2.0 / (2.0 + rate), size=size)
              for rate, size in ((0.0, 4), (0.3, 6), (2.5, 3), (6.0, 8), (0.0, 1), (0.3, 6))]
    n = [len(y) for y in counts]
    totals = [int(y.sum()) for y in counts]
    values, freq = np.unique(np.concatenate(counts), return_counts=True)
    statistics = EntityStatistics.from_entities(np.array(n), np.array(totals), values, freq)
    assert statistics.n_entities == 6 and len(statistics.entities) < 6  # one pair repeated
    config = ratepool.ModelConfig(mu_prior_rate=0.3, alpha_prior_sd=1.5)
    points = np.log([[1.5, 0.4, 2.0], [0.2, 2.0, 0.5], [4.0, 0.05, 10.0]])
    ours = log_posterior(points, statistics, config)
    brute = np.array([_brute_log_posterior(counts, p, config) for p in points])
    np.testing.assert_allclose(ours - ours[0], brute - brute[0], rtol=0, atol=1e-7)


def _sparse_rows(n_entities: int, seed: int):
    """Real panels' regime: mu alpha well below 1, most windows empty, unequal windows."""
    return simulate_counts(n_entities=n_entities, windows=(3, 40), mu=0.4, alpha=0.6,
                           phi=1.5, seed=seed).frame[["entity", "count"]]


@pytest.mark.slow
def test_every_entity_agrees_with_the_nuts_fit_of_all_entities():
    """The importance sampler's hyperparameter posterior and the entity means it gives
    against a NUTS fit of all 300 entities (subsample >= J): each hyperparameter's mean within
    4 combined Monte Carlo standard errors and so are its 5% / 95% quantiles; the entity means
    within 3 MCSE of the fit's theta means (the scale-out criterion; the importance sampler's
    own error is ~1/3 of the fit's) for all but at most 6 of the 300 entities and none beyond 5
    MCSE (the issue's ">= 99%" is a criterion for many entities; with 300 it allows 3 outside
    while 0.8 are expected, P(>= 4) ~ 1% for normal errors; P(>= 7) < 1e-4, and < 2e-3 with
    twice their tail); the 5% / 95% quantiles within 4 combined Monte Carlo standard errors."""
    import arviz as az

    rows = _sparse_rows(300, seed=4)
    assert (rows["count"] == 0).mean() > 0.5
    config = ratepool.ModelConfig(n_samples=1000, n_tune=1000, n_chains=4)
    nuts = fit_scaled(rows, config, hyperparameters="subsample", subsample=10_000,
                      draws=4000)
    ours = fit_scaled(rows, config, draws=4000)
    assert ours.method == "all" and ours.hyper is None and ours.marginal.reliable
    assert ours.n_subsample == 300 and ours.entities["in_subsample"].all()
    posterior = nuts.hyper.idata.posterior
    for name in ("mu", "alpha", "phi"):
        reference = posterior[name].values.reshape(-1)
        draws = getattr(ours.draws, name)
        sd = reference.std()
        mcse = float(az.mcse(posterior, var_names=[name])[name])
        combined = np.hypot(mcse, sd / np.sqrt(ours.marginal.ess))
        assert abs(draws.mean() - reference.mean()) <= 4 * combined, name
        for q in (0.05, 0.95):
            # a 5% quantile's Monte Carlo sd is ~ sqrt(q (1 - q)) / (density there) / sqrt(ESS)
            # = 2.1 sd / sqrt(ESS) for a near-normal posterior: the importance sampler's
            mcse_q = float(az.mcse(posterior, var_names=[name], method="quantile", prob=q)[name])
            combined_q = np.hypot(mcse_q, 2.1 * sd / np.sqrt(ours.marginal.ess))
            assert abs(np.quantile(draws, q) - np.quantile(reference, q)) <= 4 * combined_q, (
                name, q)
    theta = posterior["theta"]
    assert list(posterior["entity"].values) == list(ours.entities["entity"])
    mcse = az.mcse(posterior, var_names=["theta"])["theta"].values
    z = np.abs(ours.entities["mean"].to_numpy() - theta.mean(("chain", "draw")).values) / mcse
    assert (z > 3.0).sum() <= 6 and z.max() <= 5.0, np.sort(z)[-5:]


def test_many_entities_recover_the_truth_and_the_weights_are_reliable():
    """J = 20,000 sparse entities: the 90% intervals hold the simulated truth (each misses
    with probability 0.1; the three together with ~0.27, so this seed is checked, not
    chosen: the test fails if the sampler is biased by more than its interval); Pareto k is
    below 0.5 and the weights' ESS above half the proposals."""
    frame = simulate_counts(n_entities=20_000, windows=(1, 30), mu=0.3, alpha=0.5, phi=2.0,
                            seed=11).frame
    per_entity = frame.groupby("entity")["count"].agg(["size", "sum"])
    values, freq = np.unique(frame["count"], return_counts=True)
    statistics = EntityStatistics.from_entities(per_entity["size"], per_entity["sum"],
                                                values, freq)
    fit = sample_hyperparameters(statistics, ratepool.ModelConfig(), draws=1000)
    assert fit.pareto_k < 0.5 and fit.ess > 0.5 * fit.n_proposals
    for name, truth in (("mu", 0.3), ("alpha", 0.5), ("phi", 2.0)):
        lo, hi = np.quantile(getattr(fit.draws, name), [0.05, 0.95])
        assert lo <= truth <= hi, (name, lo, hi)


@pytest.mark.parametrize("failure", ["pareto_k", "error"])
def test_unreliable_weights_or_a_failed_sampler_fall_back_to_nuts(caplog, monkeypatch, failure):
    """When the importance weights cannot be trusted (Pareto k above the limit: e.g. 30
    entities with one window each, where between-entity spread and overdispersion are barely
    told apart) or the sampler fails, fit_scaled says so and fits the hyperparameters by NUTS.
    The sampler's answer is replaced here so that the fallback is tested whatever k a given
    seed and library version give."""
    from ratepool.errors import RatepoolError
    from ratepool.posterior.hyper_marginal import MarginalHyperFit
    from ratepool.workflow import scale_out

    def unreliable(statistics, config, draws):
        if failure == "error":
            raise RatepoolError("the hyperparameters' log posterior is not concave")
        one = np.ones(draws)
        return MarginalHyperFit(draws=scale_out.HyperDraws(one, one, one), mode=np.ones(3),
                                pareto_k=1.0, ess=3.0, n_proposals=2 * draws)

    monkeypatch.setattr(scale_out, "sample_hyperparameters", unreliable)
    rows = simulate_counts(n_entities=30, windows=1, mu=2.0, alpha=0.5, phi=1.0,
                           seed=3).frame[["entity", "count"]]
    config = ratepool.ModelConfig(n_samples=200, n_tune=200, n_chains=2)
    with caplog.at_level("WARNING", logger="ratepool.workflow.scale_out"):
        scaled = fit_scaled(rows, config, draws=200)
    assert scaled.method == "subsample" and scaled.hyper is not None
    assert scaled.marginal is None and scaled.n_subsample == 30
    assert "falling back to NUTS" in caplog.text
    assert ("Pareto k 1.00" if failure == "pareto_k" else "not concave") in caplog.text


def test_counts_beyond_two_to_the_31_keep_their_precision():
    """Counts ~1e12: the per-window terms are taken as -log y - lbeta(phi, y) and the entity's
    log density without S u - S log theta cancelling, so the log posterior stays a sum of
    log probabilities and its curvature is found (before: 'not concave', from rounding of a
    log posterior of 5e15); phi, which the within-entity spread sets, is recovered."""
    rng = np.random.default_rng(0)
    theta = rng.gamma(2.0, 1e12 / 2.0, 40)
    y = rng.negative_binomial(3.0, 3.0 / (3.0 + np.repeat(theta, 5)))
    values, freq = np.unique(y, return_counts=True)
    statistics = EntityStatistics.from_entities(np.full(40, 5), y.reshape(40, 5).sum(axis=1),
                                                values, freq)
    fit = sample_hyperparameters(statistics, ratepool.ModelConfig(), draws=1000)
    assert fit.reliable
    lo, hi = np.quantile(fit.draws.phi, [0.05, 0.95])
    assert lo <= 3.0 <= hi, (lo, hi)
