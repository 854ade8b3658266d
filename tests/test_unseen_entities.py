"""Unseen entities: theta ~ Gamma(mu_i alpha, alpha) integrated out exactly per draw (issue 17,
items 2 and 5), checked against mpmath quadrature of the Gamma–NB2 mixture."""

import mpmath as mp
import numpy as np
import pandas as pd
import pytest

from ratepool.posterior.predict import predict_totals
from ratepool.posterior.mixture_law import gamma_quadrature, tail_probabilities
from ratepool.posterior.predictive import PosteriorRates
from ratepool.posterior.score import score_rows


def _rates(mu, alpha, phi, zero_prob=None):
    mu, alpha, phi = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (mu, alpha, phi))
    return PosteriorRates(labels=np.array(["a"], dtype=object), theta=np.ones((len(phi), 1)),
                          theta_new=np.full(len(phi), 1e3), phi=phi,
                          zero_prob=None if zero_prob is None else np.full(len(phi), zero_prob),
                          population={"mu": mu, "alpha": alpha})


def _reference_upper(y, draws, exposure, zero_prob):
    """P(Y >= y) by mpmath: average over draws of the integral of the NB2 survival function
    against the Gamma(mu alpha, alpha) density."""
    mp.mp.dps = 30
    total = mp.mpf(0)
    for mu, alpha, phi in draws:
        a, b, f = mp.mpf(mu * alpha), mp.mpf(alpha), mp.mpf(phi)

        def integrand(u):  # t = alpha theta = u^(1/a): the t^(a-1) singularity is gone
            t = u ** (1 / a)
            p = f / (t / b + f)  # count mean t / alpha, alpha per window of the reference
            upper = mp.betainc(y, f, 0, 1 - p, regularized=True) if y > 0 else mp.mpf(1)
            return upper * mp.exp(-t - mp.loggamma(a + 1))

        cuts = [0] + [(mp.mpf(10) ** k) ** a for k in range(-3, 4)] + [mp.inf]
        value = mp.quad(integrand, cuts)
        total += (1 - zero_prob) * value + (zero_prob if y == 0 else 0)
    return float(total / len(draws))


@pytest.mark.parametrize("shape", [0.05, 0.5, 3.0])
@pytest.mark.parametrize("phi", [0.5, 5.0])
@pytest.mark.parametrize("zero_prob", [None, 0.3])
def test_unseen_tail_matches_mpmath(shape, phi, zero_prob):
    # Two draws; the rate per unit of exposure scales as 1/exposure, so the law in counts
    # is the same in both units and both must equal the reference.
    draws = [(shape / 2.0, 2.0, phi), (shape / 1.5 * 1.3, 1.5 / 1.3, phi * 1.4)]
    for exposure in (1.0, 1e4):
        rates = _rates([d[0] / exposure for d in draws], [d[1] * exposure for d in draws],
                       [d[2] for d in draws], zero_prob)
        law = rates.law(np.array([1]), np.array([exposure]))
        for y in (0, 5, 150):
            cdf, sf, pmf = tail_probabilities(np.array([y]), law)
            ref = _reference_upper(y, draws, exposure, zero_prob or 0.0)
            # 1e-6 relative: quadrature with 48 nodes agrees with mpmath to < 1e-7 over
            # shapes 0.05..3, phi 0.5..7 and tails down to 1e-29 (the worst, 9e-8, at y = 5
            # with phi = 0.5); today's single Gamma draw is off by orders of magnitude.
            assert sf[0] + pmf[0] == pytest.approx(ref, rel=1e-6, abs=1e-300)
            if y == 5:  # the CDF: 1 - P(Y >= y + 1)
                ref_cdf = 1.0 - _reference_upper(y + 1, draws, exposure, zero_prob or 0.0)
                assert cdf[0] == pytest.approx(ref_cdf, rel=1e-6)


def test_predict_and_score_share_the_unseen_law():
    """predict's quantiles are the quantiles of the law whose tails score reports, and neither
    uses theta_new (set far off here)."""
    rng = np.random.default_rng(3)
    n = 200
    mu, alpha, phi = rng.gamma(20, 0.1, n), rng.gamma(30, 0.1, n), rng.gamma(20, 0.25, n)
    rates = _rates(mu, alpha, phi)
    pred = predict_totals(rates, ["new"], interval=0.9)
    assert bool(pred["unseen"].iloc[0])
    lower, upper = int(pred["lower"].iloc[0]), int(pred["upper"].iloc[0])
    counts = np.arange(0, upper + 2)
    scored = score_rows(rates, pd.Series(["new"] * len(counts), dtype=object), counts).table
    p_lower = scored["p_lower"].to_numpy()
    p_upper = scored["p_upper"].to_numpy()
    assert p_lower[lower] >= 0.05 and (lower == 0 or p_lower[lower - 1] < 0.05)
    assert p_upper[upper] <= 0.05 + p_lower[upper] - p_lower[upper - 1] + 1e-12
    assert scored["pred_upper"].iloc[0] == upper and scored["pred_lower"].iloc[0] == lower
    # Brute force: theta from Gamma at each draw, then NB2; the mean and the 95% quantile.
    sims = 400_000
    s = rng.integers(0, n, sims)
    theta = rng.gamma(mu[s] * alpha[s], 1.0 / alpha[s])
    y = rng.negative_binomial(phi[s], phi[s] / (theta + phi[s]))
    se = y.std() / np.sqrt(sims)
    assert pred["mean"].iloc[0] == pytest.approx(y.mean(), abs=4 * se)
    share = np.mean(y <= upper)
    assert share == pytest.approx(p_lower[upper], abs=4 * np.sqrt(0.05 * 0.95 / sims))


@pytest.mark.parametrize("shape", [0.003, 0.05, 1.0, 7.3, 120.0])
def test_gamma_quadrature_matches_scipy_rules(shape):
    """Our batched rule against scipy's Newton-refined generalised Gauss–Laguerre rule (which
    overflows above shape ~171): nodes and every weight, the smallest ~1e-78, to 1e-11."""
    from scipy import special

    nodes, weights = gamma_quadrature(np.array([shape, shape, 2.0]))
    t, w = special.roots_genlaguerre(48, shape - 1.0)
    np.testing.assert_allclose(nodes[0], t, rtol=1e-11)
    np.testing.assert_allclose(weights[1], w / w.sum(), rtol=1e-11)


@pytest.mark.parametrize("shape", [0.05, 250.0, 4e4])
def test_gamma_quadrature_moments_at_any_shape(shape):
    """E T^k = shape (shape+1)...(shape+k-1) for T ~ Gamma(shape, 1), exact for k < 96: checked
    for k = 1..4, including shapes where scipy's rule is NaN (mu alpha > 171 is ordinary for
    high-rate panels)."""
    nodes, weights = gamma_quadrature(np.array([shape]))
    assert np.isfinite(nodes).all() and np.isfinite(weights).all()
    for k in range(1, 5):
        exact = np.prod(shape + np.arange(k))
        assert (weights[0] * nodes[0] ** k).sum() == pytest.approx(exact, rel=1e-12)


def test_unseen_tail_at_a_large_shape_matches_scipy_quad():
    """mu alpha = 400: P(Y >= y) of an unseen entity against scipy.integrate.quad of the NB2
    survival function times the Gamma density (the old path gave NaN here)."""
    from scipy import integrate, stats

    mu, alpha, phi = 40.0, 10.0, 4.0
    law = _rates(mu, alpha, phi).law(np.array([1]), np.array([1.0]))
    for y in (10, 40, 200):
        _, sf, pmf = tail_probabilities(np.array([y]), law)
        gamma = stats.gamma(mu * alpha, scale=1 / alpha)
        ref, _ = integrate.quad(lambda t: stats.nbinom.sf(y - 1, phi, phi / (phi + t))
                                * gamma.pdf(t), *gamma.ppf([1e-15, 1 - 1e-15]), epsabs=0,
                                epsrel=1e-11, limit=200)
        assert sf[0] + pmf[0] == pytest.approx(ref, rel=1e-8)


def test_unseen_entity_of_a_categorical_level_gets_that_levels_mean():
    """A categorical covariate: an unseen entity of level "south" with the baseline of fitted
    entity e1 (also "south") has per-draw mean mu exp(z_e1' beta), the row the program saw for
    e1 (not a mix of levels, which is what Stan's theta_new at the centred covariates is)."""
    import ratepool
    from tests.test_options import panel

    data = ratepool.from_dataframe(panel(4, n_entities=9), window_col="window",
                                   covariates=["baseline", "region"])
    encoding = data.covariates
    rng = np.random.default_rng(11)
    n = 300
    mu, alpha, phi = rng.gamma(20, 0.1, n), rng.gamma(30, 0.1, n), rng.gamma(20, 0.25, n)
    beta = rng.normal(0.0, 0.5, (n, encoding.n_columns))
    rates = PosteriorRates(labels=np.asarray(data.labels, dtype=object),
                           theta=np.ones((n, data.n_entities)), theta_new=np.full(n, 1e3),
                           phi=phi, zero_prob=None,
                           population={"mu": mu, "alpha": alpha, "beta": beta,
                                       "covariates": encoding})
    index = list(data.labels).index("e1")
    frame = panel(4, n_entities=9)
    first = frame.loc[frame["entity"] == "e1"].iloc[0]
    assert first["region"] == "south"
    new = pd.DataFrame({"entity": ["new"], "baseline": [first["baseline"]],
                        "region": ["south"]})
    pred = predict_totals(rates, ["new"], covariates=new)
    expected = (mu * np.exp(beta @ encoding.scaled[index])).mean()
    assert pred["mean"].iloc[0] == pytest.approx(expected, rel=1e-9)
    # another level gives another mean
    other = predict_totals(rates, ["new"], covariates=new.assign(region="west"))
    assert abs(other["mean"].iloc[0] / expected - 1) > 1e-3
