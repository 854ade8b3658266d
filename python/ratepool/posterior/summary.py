"""Per-entity summary table: observed rate against the partially pooled posterior rate."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

from ratepool.data.counts import CountData

__all__ = ["entity_summary", "HDI_PROB"]

#: Probability mass of the highest-density interval reported for each theta.
HDI_PROB = 0.94


def entity_summary(idata: az.InferenceData, data: CountData) -> pd.DataFrame:
    """One row per entity label.

    Columns: ``n_windows``, ``total_count``, ``raw_rate`` (total / windows, or total / total
    exposure with exposure: theta is then a rate per unit of exposure), ``theta_mean``,
    ``theta_sd``, ``theta_hdi_low`` / ``theta_hdi_high`` (94% HDI) and ``shrinkage``, the weight
    of the population in the entity's estimate, between 0 (no pooling) and 1 (fully pooled).
    In the Gamma–Poisson model the posterior mean of theta_i is exactly
    ``w * mu + (1 - w) * raw_rate`` with ``w = alpha / (alpha + n_i)``. A Negative-Binomial window
    carries ``phi / (phi + theta)`` of a Poisson window's information about the rate (the ratio
    of their variances), so ``shrinkage = E[alpha / (alpha + n_i * phi / (phi + theta_i))]`` over
    the posterior draws; it is the exact weight as phi grows. (A "distance moved" ratio
    ``(raw - mean) / (raw - mu)`` was avoided: it is unstable where the raw rate is near mu.)
    """
    theta = idata.posterior["theta"].values
    mean, sd = np.empty(theta.shape[-1]), np.empty(theta.shape[-1])
    hdi = np.empty((theta.shape[-1], 2))
    for block in _entity_blocks(theta):
        mean[block] = np.nanmean(theta[..., block], axis=(0, 1))  # xarray's skipna
        sd[block] = np.nanstd(theta[..., block], axis=(0, 1), ddof=1)
        hdi[block] = az.hdi(theta[..., block], hdi_prob=HDI_PROB)
    raw = data.raw_rate()
    shrinkage = _population_weight(idata, data)
    return pd.DataFrame(
        {
            "n_windows": data.n_windows,
            "total_count": data.entity_total,
            "raw_rate": raw,
            "theta_mean": mean,
            "theta_sd": sd,
            "theta_hdi_low": hdi[:, 0],
            "theta_hdi_high": hdi[:, 1],
            "shrinkage": shrinkage,
        },
        index=pd.Index(data.labels, name="entity"),
    )


#: Values per block of entities in the summaries: their temporaries stay near 32 MB each
#: instead of the size of all theta draws (0.8 GB at J = 10^5 x 1,000 draws).
BLOCK_VALUES = 2**22


def _entity_blocks(theta: np.ndarray) -> list[slice]:
    """Slices of the last (entity) axis of ``theta`` of about `BLOCK_VALUES` draws each."""
    per_entity = max(int(np.prod(theta.shape[:-1])), 1)
    size = max(BLOCK_VALUES // per_entity, 1)
    return [slice(start, start + size) for start in range(0, theta.shape[-1], size)]


def _population_weight(idata: az.InferenceData, data: CountData) -> np.ndarray:
    """Posterior mean of alpha / (alpha + n_i * phi / (phi + theta_i)) per entity.

    With exposure a window of exposure E carries E * phi / (phi + E * theta) Poisson windows'
    worth of information, summed over the entity's (entity, exposure) groups; with covariates
    the population value the entity is shrunk toward is its own mu_i. (With zero-inflation the
    weight ignores that a zero window says less: it is then an upper bound.)
    """
    posterior = idata.posterior
    alpha = posterior["alpha"].values[..., None]
    phi = posterior["phi"].values[..., None]
    theta = posterior["theta"].values
    if not data.has_exposure:
        weight = np.empty(theta.shape[-1])
        for block in _entity_blocks(theta):
            effective_windows = data.n_windows[block] * phi / (phi + theta[..., block])
            weight[block] = (alpha / (alpha + effective_windows)).mean(axis=(0, 1))
        return weight
    else:
        from ratepool.model.standata import group_statistics

        groups = group_statistics(data)
        entity = groups["group_entity"] - 1
        exposure = groups["group_exposure"]
        per_group = (groups["group_windows"] * exposure * phi
                     / (phi + exposure * theta[..., entity]))
        by_entity = np.zeros((theta.shape[-1], *theta.shape[:-1]))
        np.add.at(by_entity, entity, np.moveaxis(per_group, -1, 0))
        effective_windows = np.moveaxis(by_entity, 0, -1)
    return (alpha / (alpha + effective_windows)).mean(axis=(0, 1))
