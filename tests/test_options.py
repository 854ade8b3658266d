"""Model options (exposure, entity covariates, zero-inflation): the Stan program's log density
on both likelihood paths against scipy, input validation, and the option-off program."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ratepool
from ratepool.program import default_program
from ratepool.standata import group_statistics, stan_data

from .conftest import engine_params

CONFIG = ratepool.ModelConfig(mu_prior_rate=0.2, alpha_prior_sd=1.5, overdispersion_prior_sd=3.0,
                              beta_prior_sd=0.7)


def panel(seed: int, n_entities: int = 7) -> pd.DataFrame:
    """Rows with unequal windows, repeated and distinct exposures, many zeros, a numeric and a
    categorical entity covariate."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_entities):
        size = rng.choice([1.0, 2.5, 40.0])
        region = ["north", "south", "west"][i % 3]
        baseline = float(rng.normal(3.0, 1.0))
        for j in range(int(rng.integers(1, 9))):
            exposure = size if j % 3 else float(rng.choice([0.5, size]))
            count = 0 if rng.random() < 0.4 else int(rng.poisson(exposure * rng.gamma(1.0, 2.0)))
            rows.append((f"e{i}", j, count, exposure, baseline, region))
    return pd.DataFrame(rows, columns=["entity", "window", "count", "exposure", "baseline",
                                       "region"])


def scipy_log_density(data: ratepool.CountData, params: dict, config: ratepool.ModelConfig,
                      zero_inflation: bool) -> float:
    mu, alpha, phi, theta = params["mu"], params["alpha"], params["phi"], params["theta"]
    lp = (stats.expon.logpdf(mu, scale=1 / config.mu_prior_rate)
          + stats.halfnorm.logpdf(alpha, scale=config.alpha_prior_sd)
          + stats.halfnorm.logpdf(phi, scale=config.overdispersion_prior_sd))
    mean_rate = np.full(data.n_entities, mu)
    if data.covariates is not None:
        beta = params["beta"]
        lp += stats.norm.logpdf(beta, scale=config.beta_prior_sd).sum()
        mean_rate = mu * np.exp(data.covariates.scaled @ beta)
    lp += stats.gamma.logpdf(theta, a=mean_rate * alpha, scale=1 / alpha).sum()
    exposure = data.exposure if data.exposure is not None else np.ones(len(data.y))
    mean = exposure * theta[data.entity_index]
    nb = stats.nbinom.logpmf(data.y, n=phi, p=phi / (phi + mean))
    if zero_inflation:
        pi = params["pi"][0]
        lp += stats.beta.logpdf(pi, 1, 1)
        nb = np.where(data.y == 0, np.log(pi + (1 - pi) * np.exp(nb)), np.log1p(-pi) + nb)
    return float(lp + nb.sum())


def _point(data: ratepool.CountData, rng: np.random.Generator, zero_inflation: bool) -> dict:
    params = {"mu": rng.gamma(2, 2), "alpha": rng.gamma(2, 0.5), "phi": rng.gamma(2, 1),
              "theta": np.maximum(data.raw_rate() * rng.uniform(0.5, 1.5, data.n_entities),
                                  0.05)}
    if data.covariates is not None:
        params["beta"] = rng.normal(0, 0.5, data.covariates.n_columns)
    if zero_inflation:
        params["pi"] = [float(rng.uniform(0.1, 0.6))]
    return params


OPTIONS = {
    "exposure": dict(exposure_col="exposure"),
    "covariates": dict(covariates=["baseline", "region"]),
    "zero_inflation": dict(),
    "all": dict(exposure_col="exposure", covariates=["baseline", "region"]),
}


@pytest.mark.parametrize("engine_name", engine_params())
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_log_density_with_options_matches_scipy_on_both_paths(engine_name: str,
                                                              option: str) -> None:
    engine = ratepool.get_engine(engine_name)
    zero_inflation = option in ("zero_inflation", "all")
    rng = np.random.default_rng(31)
    data = ratepool.from_dataframe(panel(8), **OPTIONS[option])
    config = CONFIG.replace(zero_inflation=zero_inflation)
    for _ in range(3):
        params = _point(data, rng, zero_inflation)
        expected = scipy_log_density(data, params, config, zero_inflation)
        values = []
        for likelihood in ("sufficient", "observation"):
            values.append(engine.log_density(
                default_program(),
                stan_data(data, config.replace(likelihood=likelihood), obs_predictions=False),
                params))
            assert values[-1] == pytest.approx(expected, rel=1e-8, abs=1e-8), likelihood
        assert values[0] == pytest.approx(values[1], rel=1e-8, abs=1e-8)


def test_groups_are_sufficient_statistics() -> None:
    data = ratepool.from_dataframe(panel(8), exposure_col="exposure")
    groups = group_statistics(data)
    assert groups["group_windows"].sum() == data.n_windows_total
    assert groups["group_total"].sum() == data.entity_total.sum()
    assert groups["group_zeros"].sum() == int((data.y == 0).sum())
    # Every (entity, exposure) pair appears once, and the rows it stands for are its windows.
    pairs = set(zip(groups["group_entity"].tolist(), groups["group_exposure"].tolist()))
    assert len(pairs) == len(groups["group_entity"])
    rows = set(zip((data.entity_index + 1).tolist(), data.exposure.tolist()))
    assert pairs == rows


BASE_PROGRAM = __import__("pathlib").Path(__file__).parent / "fixtures" / \
    "hierarchical_negbinom_base.stan"


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
@pytest.mark.parametrize("parameterization", ["centered", "non_centered"])
def test_options_off_gives_the_base_programs_draws_bit_for_bit(engine: str,
                                                               parameterization: str,
                                                               example_data) -> None:
    """With every option off the extended program is the base model draw for draw: the same
    seed gives identical posterior and predictive arrays (the base program is the one before
    the options were added, kept as a fixture). The base program reads the same data fields
    but the options', which CmdStan and PyStan ignore when present."""
    from ratepool.program import StanProgram

    config = ratepool.ModelConfig(n_samples=150, n_tune=150, n_chains=2,
                                  parameterization=parameterization)
    extended = ratepool.fit(example_data, config, engine=engine, prior_draws=20)
    base = ratepool.fit(example_data, config, engine=engine, prior_draws=20,
                        program=StanProgram.from_file(BASE_PROGRAM))
    for group in ("posterior", "posterior_predictive", "log_likelihood", "prior",
                  "prior_predictive", "sample_stats"):
        ours, theirs = extended.idata[group], base.idata[group]
        assert set(ours.data_vars) == set(theirs.data_vars), group
        for name in ours.data_vars:
            assert np.array_equal(ours[name].to_numpy(), theirs[name].to_numpy()), (group, name)
