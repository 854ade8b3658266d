"""Simulation-based calibration: the building blocks against scipy, and a small, seeded SBC run
that must look calibrated while a deliberately wrong prior in the simulator must be flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ratepool.errors import ConfigError
from ratepool.posterior.sbc_checks import divergence_breakdown, rank_histograms, uniformity_tests
from ratepool.workflow.sbc import (
    SBCPrior,
    SBCSettings,
    draw_parameters,
    rank_of,
    ranked_parameters,
    run_sbc,
    simulate_data,
    thin_draws,
)

from .conftest import engine_params

# --------------------------------------------------------------------------------------------
# Building blocks (no sampling)


def test_rank_counts_draws_below_the_truth() -> None:
    rng = np.random.default_rng(0)
    draws = np.array([3.0, 1.0, 2.0])
    assert [rank_of(v, draws, rng) for v in (0.5, 1.5, 2.5, 3.5)] == [0, 1, 2, 3]


def test_rank_ties_are_broken_uniformly() -> None:
    rng = np.random.default_rng(1)
    ranks = [rank_of(1.0, np.array([0.0, 1.0, 1.0, 1.0, 2.0]), rng) for _ in range(4000)]
    counts = np.bincount(ranks, minlength=6)
    assert counts[0] == 0 and counts[5] == 0  # one draw is below, one above: ranks 1..4
    assert stats.chisquare(counts[1:5]).pvalue > 1e-3


def test_thinning_spreads_draws_over_all_chains() -> None:
    draws = np.arange(2000.0).reshape(2, 1000)  # chain 2 holds 1000..1999
    kept = thin_draws(draws, 99)
    assert kept.size == 99 and np.all(np.diff(kept) > 19) and kept.max() >= 1979
    assert np.sum(kept >= 1000) in (49, 50)
    with pytest.raises(ConfigError, match="cannot keep 11 draws out of 10"):
        thin_draws(np.zeros((2, 5)), 11)


def test_prior_draws_follow_the_prior() -> None:
    """Kolmogorov-Smirnov against scipy's distributions; theta through its conditional CDF."""
    rng = np.random.default_rng(2)
    prior = SBCPrior(mu_rate=0.1, alpha_sd=2.0, phi_sd=3.0)
    draws = [draw_parameters(rng, prior, 3) for _ in range(3000)]
    mu, alpha, phi = (np.array([d[k] for d in draws]) for k in ("mu", "alpha", "phi"))
    assert stats.kstest(mu, stats.expon(scale=10.0).cdf).pvalue > 1e-3
    assert stats.kstest(alpha, stats.halfnorm(scale=2.0).cdf).pvalue > 1e-3
    assert stats.kstest(phi, stats.halfnorm(scale=3.0).cdf).pvalue > 1e-3
    pit = np.concatenate([stats.gamma.cdf(d["theta"], a=d["mu"] * d["alpha"],
                                          scale=1 / d["alpha"]) for d in draws])
    assert stats.kstest(pit, "uniform").pvalue > 1e-3


def test_simulated_counts_follow_nb2() -> None:
    """Per entity, the empirical CDF at a few points equals scipy's NB2 CDF within 5 SE."""
    rng = np.random.default_rng(3)
    truth = {"mu": 1.0, "alpha": 1.0, "phi": 1.5, "theta": np.array([0.5, 4.0, 30.0])}
    data = simulate_data(rng, truth, 4000)
    assert list(data.labels) == ["e000", "e001", "e002"]
    for i, theta in enumerate(truth["theta"]):
        y = data.y[data.entity_index == i]
        reference = stats.nbinom(n=1.5, p=1.5 / (1.5 + theta))
        for point in reference.ppf([0.1, 0.5, 0.9]):
            expected = reference.cdf(point)
            se = np.sqrt(expected * (1 - expected) / y.size)
            assert abs(np.mean(y <= point) - expected) < 5 * se, (theta, point)


def test_uniformity_tests_accept_uniform_and_flag_piled_ranks() -> None:
    rng = np.random.default_rng(4)
    uniform = pd.DataFrame({"rank_a": rng.integers(0, 100, 1000), "error": ""})
    table = uniformity_tests(uniform, 99, 20)
    counts = np.bincount(uniform["rank_a"] // 5, minlength=20)
    assert table.loc["a", "chi2"] == pytest.approx(((counts - 50.0) ** 2 / 50.0).sum())
    assert table.loc["a", "chi2_p"] > 1e-3 and table.loc["a", "tail_p"] > 1e-3
    piled = pd.DataFrame({"rank_a": rng.integers(85, 100, 40), "error": ""})
    flagged = uniformity_tests(piled, 99, 4)
    assert flagged.loc["a", "tail_p"] < 1e-6 and flagged.loc["a", "chi2_p"] < 1e-6
    assert flagged.loc["a", "mean_rank"] > 0.85


def test_rank_histograms_bin_edges_and_checks() -> None:
    table = pd.DataFrame({"rank_a": [0, 4, 5, 99, np.nan], "error": ["", "", "", "", "x"]})
    histogram = rank_histograms(table, 99, 20)["a"]
    assert histogram.sum() == 4 and histogram[0] == 2 and histogram[1] == 1 and histogram[-1] == 1
    with pytest.raises(ConfigError, match="divide the 100 possible ranks"):
        rank_histograms(table, 99, 30)
    with pytest.raises(ValueError, match="outside 0..99"):
        rank_histograms(pd.DataFrame({"rank_a": [100], "error": [""]}), 99, 20)


def test_divergence_breakdown_counts_by_region() -> None:
    table = pd.DataFrame({
        "true_mu": [5.0, 0.5, 5.0, 10.0], "true_alpha": [0.05, 1.0, 1.0, 1.0],
        "true_phi": [1.0, 0.05, 1.0, 1.0], "zero_share": [0.1, 0.9, 0.2, 0.8],
        "divergences": [3, 1, 0, np.nan], "ess_bulk_min": [50.0, 60.0, 900.0, np.nan],
        "error": ["", "", "", "SamplingError: x"]})
    breakdown = divergence_breakdown(table)
    assert breakdown.loc["all", "divergent_fits"] == 2
    assert breakdown.loc["all", "failed"] == 1
    assert breakdown.loc["all", "divergent_share"] == pytest.approx(2 / 3)
    assert breakdown.loc["alpha < 0.1", "simulations"] == 1
    assert breakdown.loc["alpha < 0.1", "share_of_divergent"] == pytest.approx(0.5)
    assert breakdown.loc["phi < 0.1 or mu < 1", "divergent_share"] == 1.0
    assert breakdown.loc["phi >= 0.1 and mu >= 1", "divergent_fits"] == 1
    assert breakdown.loc["data: >= 75% zero windows", "simulations"] == 2
    assert breakdown.loc["data: >= 75% zero windows", "failed"] == 1
    assert breakdown.loc["data: < 75% zero windows", "median_ess_bulk_min"] == pytest.approx(475)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_entities": 1}, "n_entities must be an integer >= 2"),
    ({"n_theta": 9}, "cannot exceed n_entities"),
    ({"n_samples": 40, "n_chains": 2}, "at least n_ranked_draws=99"),
    ({"target_accept": 1.0}, "target_accept must be strictly between 0.0 and 1.0"),
    ({"n_tune": -1}, "n_tune must be at least 0"),
    ({"parameterization": "funnel"}, "parameterization must be one of"),
])
def test_sbc_settings_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SBCSettings(**kwargs)


def test_sbc_prior_is_validated() -> None:
    with pytest.raises(ConfigError, match="alpha_prior_sd must be > 0.0, got 0.0"):
        SBCPrior(alpha_sd=0.0)


# --------------------------------------------------------------------------------------------
# A small SBC run (seeded)
#
# 20 simulations are far too few to detect subtle miscalibration, so the test asks what 20 can
# answer: are the ranks in range, and is there gross miscalibration? The statistic is the
# number of ranks in the outer 10% on either side, Binomial(20, 0.2) under calibration; a
# family-wise level of 1e-3 over the six ranked quantities flags a parameter only if
# P(Binomial >= count) < 1e-3 / 6 (12 or more of 20). A four-bin chi-square test (5 expected per
# bin) at the same level catches piling elsewhere. The positive control draws alpha from a
# HalfNormal(20) while the model assumes HalfNormal(2): with 8 entities the data barely inform
# alpha, so most true values (P(|N(0, 20)| > 3.3) = 0.87) lie above nearly all posterior draws,
# and the tail count has expectation about 17 of 20.

SMALL_SBC = SBCSettings(n_tune=300, n_samples=500)
N_SMALL = 20
FAMILY_LEVEL = 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_small_sbc_run_is_calibrated(engine: str) -> None:
    table = run_sbc(N_SMALL, seed=20180101, settings=SMALL_SBC, engine=engine)
    ran = table["error"] == ""
    assert ran.sum() >= N_SMALL - 1, table.loc[~ran, "error"].tolist()
    level = FAMILY_LEVEL / len(ranked_parameters(SMALL_SBC))
    for name in ranked_parameters(SMALL_SBC):
        ranks = table.loc[ran, f"rank_{name}"]
        assert ranks.between(0, SMALL_SBC.n_ranked_draws).all() and (ranks % 1 == 0).all()
    tests = uniformity_tests(table, SMALL_SBC.n_ranked_draws, n_bins=4)
    assert (tests["tail_p"] > level).all(), tests
    assert (tests["chi2_p"] > level).all(), tests
    assert table.loc[ran, "ess_bulk_min"].median() > SMALL_SBC.n_ranked_draws


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_small_sbc_run_flags_a_wrong_prior(engine: str) -> None:
    table = run_sbc(N_SMALL, seed=20180101, settings=SMALL_SBC, engine=engine,
                    simulator_prior=SBCPrior(alpha_sd=20.0), model_prior=SBCPrior())
    tests = uniformity_tests(table, SMALL_SBC.n_ranked_draws, n_bins=4)
    level = FAMILY_LEVEL / len(ranked_parameters(SMALL_SBC))
    assert tests.loc["alpha", "tail_p"] < level, tests
    assert tests.loc["alpha", "mean_rank"] > 0.75  # truths above the posterior: prior too low


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_simulations_depend_only_on_seed_and_index(engine: str) -> None:
    settings = SBCSettings(n_tune=150, n_samples=100, n_ranked_draws=49)
    both = run_sbc(2, seed=7, settings=settings, engine=engine)
    second = run_sbc(1, seed=7, settings=settings, engine=engine, first_simulation=1)
    columns = [c for c in both.columns if c.startswith(("true_", "rank_"))] + ["stan_seed",
                                                                                 "divergences"]
    pd.testing.assert_series_equal(both.iloc[1][columns], second.iloc[0][columns],
                                   check_names=False)
    assert both.loc[0, "true_mu"] != both.loc[1, "true_mu"]


@pytest.mark.slow
@pytest.mark.parametrize("parameterization", ["centered", "non_centered"])
def test_tiny_sbc_run_in_either_parameterization(parameterization: str) -> None:
    """Both parameterisations rank every quantity (the non-centred rates reach the ranking as
    ``theta``, whatever the engine calls them); the truths do not depend on the setting."""
    settings = SBCSettings(n_tune=150, n_samples=100, n_ranked_draws=49,
                           parameterization=parameterization)
    table = run_sbc(2, seed=11, settings=settings, engine="pystan")
    assert (table["error"] == "").all(), table["error"].tolist()
    for name in ranked_parameters(settings):
        ranks = table[f"rank_{name}"]
        assert ranks.between(0, settings.n_ranked_draws).all() and (ranks % 1 == 0).all()
    rng = np.random.default_rng(np.random.SeedSequence(11, spawn_key=(0,)))
    assert table.loc[0, "true_theta[1]"] == draw_parameters(rng, SBCPrior(), 8)["theta"][0]
    assert (table["r_hat_max"] > 0).all() and (table["ess_bulk_min"] > 0).all()


@pytest.mark.slow
def test_tiny_sbc_run_with_every_model_option() -> None:
    """With exposure, two covariates and zero-inflation the truths include beta and pi, drawn
    from their priors, and every one of them is ranked; the simulated data carry the design."""
    settings = SBCSettings(n_tune=150, n_samples=100, n_ranked_draws=49, exposure=True,
                           n_covariates=2, zero_inflation=True)
    names = ranked_parameters(settings)
    assert {"beta[1]", "beta[2]", "pi"} <= set(names)
    table = run_sbc(2, seed=5, settings=settings, engine="pystan")
    assert (table["error"] == "").all(), table["error"].tolist()
    for name in names:
        ranks = table[f"rank_{name}"]
        assert ranks.between(0, settings.n_ranked_draws).all() and (ranks % 1 == 0).all()
    rng = np.random.default_rng(3)
    truth = draw_parameters(rng, SBCPrior(), 8, settings)
    data = simulate_data(rng, truth, 6, settings)
    assert data.exposure is not None and data.covariates.names == ("x1", "x2")
    assert 0 < truth["pi"] < 1 and truth["beta"].shape == (2,)


# --------------------------------------------------------------------------------------------
# The temporal program's SBC (ratepool.workflow.sbc_temporal)


def _innovation_sd_cdf(x: float, s_sd: float) -> float:
    """P(sigma <= x) for sigma = s sqrt(1 - rho^2), s ~ HalfNormal(s_sd) independent of
    (rho + 1) / 2 ~ Beta(2, 2), by quadrature over rho (symmetric: rho in (0, 1))."""
    from scipy import integrate

    value, _ = integrate.quad(
        lambda r: 2 * stats.beta.pdf(r, 2, 2, loc=-1, scale=2)
        * stats.halfnorm.cdf(x / np.sqrt(1 - r * r), scale=s_sd), 0.0, 1.0)
    return value


def test_temporal_prior_draws_follow_the_prior() -> None:
    """Kolmogorov-Smirnov against scipy: rho with (rho + 1) / 2 ~ Beta(2, 2), the stationary sd
    s half-normal, and the innovation sd sigma = s sqrt(1 - rho^2) against its CDF integrated
    over rho by quadrature. (The prior was rho ~ Uniform(-1, 1) and sigma ~ HalfNormal, which
    gave s an infinite prior mean; now s's prior is the half-normal and bounded in mean.)"""
    from ratepool.workflow.sbc_temporal import TemporalPrior, draw_temporal_parameters

    rng = np.random.default_rng(21)
    draws = [draw_temporal_parameters(rng, TemporalPrior(s_sd=0.5), 2) for _ in range(3000)]
    rho, sigma, s = (np.array([d[k] for d in draws]) for k in ("rho", "sigma", "s"))
    assert stats.kstest(rho, stats.beta(2, 2, loc=-1, scale=2).cdf).pvalue > 1e-3
    assert stats.kstest(s, stats.halfnorm(scale=0.5).cdf).pvalue > 1e-3
    grid = np.concatenate([[0.0], np.geomspace(1e-3, sigma.max() * 1.01, 400)])
    cdf = np.array([_innovation_sd_cdf(x, 0.5) for x in grid])  # smooth: interpolated
    assert stats.kstest(sigma, lambda x: np.interp(x, grid, cdf)).pvalue > 1e-3
    np.testing.assert_allclose(sigma, s * np.sqrt(1 - rho**2), rtol=1e-12)


@pytest.mark.cmdstan
def test_tiny_temporal_sbc_run() -> None:
    """Two simulations of the temporal program rank mu, alpha, phi, rho, s, sigma and thetas
    within 0..L; the truths are the prior draws of (seed, simulation)."""
    from ratepool.engines.cmdstan import find_cmdstan
    from ratepool.workflow.sbc_temporal import (
        TemporalPrior,
        draw_temporal_parameters,
        run_temporal_sbc,
        temporal_ranked_parameters,
    )

    if find_cmdstan() is None:
        pytest.skip("CmdStan not found")
    settings = SBCSettings(n_entities=3, n_windows=6, n_tune=150, n_samples=100,
                           n_ranked_draws=49)
    table = run_temporal_sbc(2, seed=11, settings=settings, engine="cmdstan")
    assert (table["error"] == "").all(), table["error"].tolist()
    for name in temporal_ranked_parameters(settings):
        ranks = table[f"rank_{name}"]
        assert ranks.between(0, settings.n_ranked_draws).all() and (ranks % 1 == 0).all()
    rng = np.random.default_rng(np.random.SeedSequence(11, spawn_key=(1,)))
    truth = draw_temporal_parameters(rng, TemporalPrior(), 3)
    assert table.loc[1, "true_rho"] == truth["rho"] and table.loc[1, "true_s"] == truth["s"]
