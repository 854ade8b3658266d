"""Covariate effects: coefficients beta and rate ratios on the covariates' original scale, and
rates of unseen entities at given covariate values."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

from ratepool.data.covariates import EntityCovariates
from ratepool.posterior.summary import HDI_PROB

__all__ = ["coefficient_summary", "new_entity_rates"]


def coefficient_summary(idata: az.InferenceData, covariates: EntityCovariates) -> pd.DataFrame:
    """One row per model column (covariate, or level of a categorical covariate).

    Columns: ``beta_mean``, ``beta_sd``, ``beta_hdi_low`` / ``beta_hdi_high`` (the coefficient
    of the centred and scaled covariate, as sampled); ``per_unit`` (what one unit of the
    covariate is: ``1 <unit>`` for a number, ``level vs reference`` for a category);
    ``rate_ratio_mean``, ``rate_ratio_hdi_low`` / ``rate_ratio_hdi_high``: exp(beta / scale), the
    factor by which the entity mean rate mu_i changes per unit of the covariate on its
    original scale (for a level: against the reference level), with the 94% HDI.
    """
    beta = idata.posterior["beta"].to_numpy()  # (chain, draw, P)
    ratio = np.exp(beta / covariates.scale)
    beta_hdi = az.hdi(beta, hdi_prob=HDI_PROB)
    ratio_hdi = az.hdi(ratio, hdi_prob=HDI_PROB)
    per_unit = []
    for name in covariates.names:
        column = name.split("[", 1)[0]
        if column in covariates.reference_levels and name.endswith("]"):
            level = name[len(column) + 1:-1]
            per_unit.append(f"{level} vs {covariates.reference_levels[column]}")
        else:
            per_unit.append(f"+1 {name}")
    return pd.DataFrame(
        {
            "beta_mean": beta.mean(axis=(0, 1)),
            "beta_sd": beta.reshape(-1, beta.shape[-1]).std(axis=0, ddof=1),
            "beta_hdi_low": beta_hdi[:, 0],
            "beta_hdi_high": beta_hdi[:, 1],
            "per_unit": per_unit,
            "rate_ratio_mean": ratio.mean(axis=(0, 1)),
            "rate_ratio_hdi_low": ratio_hdi[:, 0],
            "rate_ratio_hdi_high": ratio_hdi[:, 1],
        },
        index=pd.Index(covariates.names, name="covariate"),
    )


def new_entity_rates(idata: az.InferenceData, covariates: EntityCovariates | None,
                     new: pd.DataFrame | None = None, *, seed: int = 0) -> np.ndarray:
    """Posterior predictive rates of unseen entities: theta_new ~ Gamma(mu_i alpha, alpha)
    with mu_i = mu exp(z' beta) at each draw, for each row of ``new`` (covariate values on the
    original scale); without covariates, one column at mu. Shape (chain, draw, rows)."""
    posterior = idata.posterior
    mu = posterior["mu"].to_numpy()[..., None]
    alpha = posterior["alpha"].to_numpy()[..., None]
    if covariates is None or new is None:
        mean = mu
    else:
        design = covariates.scale_new(new)  # (rows, P)
        mean = mu * np.exp(posterior["beta"].to_numpy() @ design.T)
    rng = np.random.default_rng(seed)
    return rng.gamma(mean * alpha, 1.0 / alpha)
