"""lprior in both Stan programs (checked against scipy at the posterior draws) and the graded
prior–data conflict check built on it (ArviZ's power-scaling sensitivity)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import ratepool
from ratepool.posterior.diagnostic_table import format_diagnostics
from ratepool.posterior.diagnostics import GOOD, WARNING
from ratepool.model.simulate import simulate_counts
from ratepool.model.standata import exposure_scale
from ratepool.posterior.inference import EXPOSURE_SCALE_ATTR

from .conftest import EXAMPLE_CSV, ROOT, engine_params

#: Small runs: lprior is a deterministic function of each draw, so few draws suffice.
SMALL = ratepool.ModelConfig(n_samples=100, n_tune=200, n_chains=2, random_seed=5)


def _scipy_lprior(posterior, config: ratepool.ModelConfig, scale: float = 1.0) -> np.ndarray:
    """The hyperparameters' joint log prior density with every normalising constant (the
    half-normals' factor 2 included, as the programs' target), from scipy, at the values the
    program saw: with exposure, mu per typical window (x ``scale``) and alpha / ``scale``
    (`ratepool.model.standata.exposure_scale`)."""
    def draws(name: str) -> np.ndarray:
        values = posterior[name].to_numpy()
        return values * scale if name == "mu" else values / scale if name == "alpha" else values

    total = (stats.expon.logpdf(draws("mu"), scale=1 / config.mu_prior_rate)
             + stats.halfnorm.logpdf(draws("alpha"), scale=config.alpha_prior_sd)
             + stats.halfnorm.logpdf(draws("phi"), scale=config.overdispersion_prior_sd))
    if "beta" in posterior:
        total += stats.norm.logpdf(draws("beta"), scale=config.beta_prior_sd).sum(axis=-1)
    if "pi" in posterior:
        total += stats.beta.logpdf(draws("pi"), 1, 1)
    if "m0" in posterior:
        total += (stats.norm.logpdf(draws("m0"), config.bytes_m0_prior_mean,
                                    config.bytes_m0_prior_sd)
                  + stats.halfnorm.logpdf(draws("tau"), scale=config.bytes_tau_prior_sd)
                  + stats.halfnorm.logpdf(draws("sigma_w"), scale=config.bytes_sigma_w_prior_sd)
                  + stats.halfnorm.logpdf(draws("sigma_e"), scale=config.bytes_sigma_e_prior_sd))
    if "rho" in posterior:
        total += (stats.beta.logpdf(draws("rho"), 2, 2, loc=-1, scale=2)
                  + stats.halfnorm.logpdf(draws("s"), scale=config.stationary_sd_prior_sd))
    return total


def _check_lprior(result: ratepool.FitResult) -> None:
    lprior = result.idata.log_prior["lprior"].to_numpy()
    scale = float(result.idata.constant_data.attrs.get(EXPOSURE_SCALE_ATTR, 1.0))
    assert scale == exposure_scale(result.data)
    expected = _scipy_lprior(result.idata.posterior, result.config, scale)
    assert lprior.shape == expected.shape == (SMALL.n_chains, SMALL.n_samples)
    # PyStan returns full doubles; CmdStan writes draws rounded to a relative 5e-9
    # (`output_sig_figs`), lprior and the parameters alike, and lprior's derivative in each
    # log-parameter is O(1-10) here: 1e-7 covers the rounding, a wrong term or constant
    # (log 2 = 0.69) is far outside it
    np.testing.assert_allclose(lprior, expected, rtol=1e-7, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", engine_params())
def test_lprior_of_the_base_program_matches_scipy(engine_name: str, example_data) -> None:
    _check_lprior(ratepool.fit(example_data, SMALL, engine=engine_name))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["options", "bytes", "temporal"])
def test_lprior_with_every_option_and_the_temporal_program_matches_scipy(case: str) -> None:
    if case == "options":
        data = ratepool.load_counts(ROOT / "data" / "options_example.csv", window_col="window",
                                    exposure_col="exposure", covariates=["x1", "x2"])
        config = SMALL.replace(zero_inflation=True, beta_prior_sd=1.5)
    elif case == "bytes":
        data = ratepool.load_counts(ROOT / "data" / "bytes_example.csv", window_col="window",
                                    bytes_col="bytes")
        config = SMALL.replace(bytes_tau_prior_sd=1.2, bytes_m0_prior_mean=6.0)
    else:
        data = ratepool.load_counts(ROOT / "data" / "temporal_example.csv", window_col="window")
        config = SMALL.replace(temporal="ar1", stationary_sd_prior_sd=0.7)
    result = ratepool.fit(data, config.replace(alpha_prior_sd=3.0, mu_prior_rate=0.3))
    expected_names = {"options": {"beta", "pi"}, "bytes": {"m0", "tau", "sigma_w", "sigma_e"},
                      "temporal": {"rho", "s", "sigma"}}[case]
    assert expected_names <= set(result.idata.posterior.data_vars)
    _check_lprior(result)


# ------------------------------------------------------------------------------------------
# The graded check on data where a default prior fights the data, and where it does not

#: Enough draws for stable importance weights; per-row log likelihood for the data level.
CHECK = ratepool.ModelConfig(n_samples=250, n_tune=500, n_chains=4, random_seed=1,
                             obs_predictions=True, entity_predictions=False)


def _sensitivity(data, engine_name: str) -> tuple[dict, dict]:
    diagnostics = ratepool.fit(data, CHECK, engine=engine_name).diagnostics()
    return diagnostics, diagnostics["prior_sensitivity"]


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", engine_params())
def test_alpha_prior_fights_a_low_mean_rate(engine_name: str) -> None:
    """Mean rate 0.05 with nearly equal entities (true alpha 400, CV(theta) 0.22):
    alpha ~ HalfNormal(2) forces CV(theta) >= 2.3, so the data pull alpha into the prior's
    tail."""
    truth = simulate_counts(n_entities=30, windows=120, mu=0.05, alpha=400.0, phi=2.0, seed=3)
    data = ratepool.from_dataframe(truth.frame)
    result = ratepool.fit(data, CHECK, engine=engine_name)
    diagnostics = result.diagnostics()
    sensitivity = diagnostics["prior_sensitivity"]
    assert "alpha" in sensitivity["conflict"]
    # independent of the importance weights: refitting with the advice followed moves alpha
    # several-fold (the prior held it far below the truth)
    wider = ratepool.fit(data, CHECK.replace(alpha_prior_sd=50.0), engine=engine_name)
    alpha, alpha_wider = (float(r.idata.posterior["alpha"].mean()) for r in (result, wider))
    assert alpha < 20 and alpha_wider > 3 * alpha
    assert diagnostics["grades"]["prior_conflict"] == WARNING
    assert diagnostics["converged"]  # sampling went right; the prior is in question
    assert any("alpha prior" in line and "alpha_prior_sd" in line
               for line in diagnostics["advice"])
    assert "prior sensitivity" in format_diagnostics(diagnostics)


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", engine_params())
def test_phi_prior_fights_near_poisson_windows(engine_name: str) -> None:
    """phi = 50 (windows close to Poisson): HalfNormal(2) puts P(phi > 5) near 1.2%."""
    truth = simulate_counts(n_entities=20, windows=60, mu=5.0, alpha=2.0, phi=50.0, seed=4)
    diagnostics, sensitivity = _sensitivity(ratepool.from_dataframe(truth.frame), engine_name)
    assert "phi" in sensitivity["conflict"]
    assert diagnostics["grades"]["prior_conflict"] == WARNING
    assert any("phi prior" in line and "overdispersion_prior_sd" in line
               for line in diagnostics["advice"])


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", engine_params())
def test_no_conflict_on_the_bundled_example_data(engine_name: str) -> None:
    diagnostics, sensitivity = _sensitivity(
        ratepool.load_counts(EXAMPLE_CSV, window_col="window"), engine_name)
    assert sensitivity["conflict"] == []
    assert diagnostics["grades"]["prior_conflict"] == GOOD
    assert not any("conflict" in line for line in diagnostics["advice"])
    assert set(sensitivity["prior"]) == {"mu", "alpha", "phi"}
    assert set(sensitivity["data"]) == {"mu", "alpha", "phi"}


def test_older_cmdstan_runs_without_lprior_read_back_without_the_check(runs_50abbe5) -> None:
    """CSVs of the programs before lprior: no log_prior group, no prior_sensitivity entry."""
    from ratepool.engines.cmdstan_csv import read_cmdstan_csv
    from ratepool.workflow.cmdstan_run import fit_result_from_run

    result = fit_result_from_run(read_cmdstan_csv(["base/out_1.csv"]), "base/data.json")
    assert "log_prior" not in result.idata.groups()
    diagnostics = result.diagnostics()
    assert "prior_sensitivity" not in diagnostics and "prior_conflict" not in diagnostics["grades"]
