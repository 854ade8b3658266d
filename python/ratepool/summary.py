"""Per-entity summary table: observed rate against the partially pooled posterior rate."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

from .data import CountData

__all__ = ["entity_summary", "HDI_PROB"]

#: Probability mass of the highest-density interval reported for each theta.
HDI_PROB = 0.94


def entity_summary(idata: az.InferenceData, data: CountData) -> pd.DataFrame:
    """One row per entity label.

    Columns: ``n_windows``, ``total_count``, ``raw_rate`` (total / windows), ``theta_mean``,
    ``theta_sd``, ``theta_hdi_low`` / ``theta_hdi_high`` (94% HDI) and ``shrinkage``: the share
    of the distance from the raw rate to the posterior mean of mu that the entity's estimate
    moved, ``(raw_rate - theta_mean) / (raw_rate - mu_mean)`` (0: no pooling, 1: fully pooled;
    NaN where the raw rate equals mu's mean).
    """
    theta = idata.posterior["theta"]
    mean = theta.mean(("chain", "draw")).values
    sd = theta.std(("chain", "draw"), ddof=1).values
    hdi = az.hdi(theta, hdi_prob=HDI_PROB)["theta"].values
    mu_mean = float(idata.posterior["mu"].mean())
    raw = data.raw_rate()
    distance = raw - mu_mean
    with np.errstate(divide="ignore", invalid="ignore"):
        shrinkage = np.where(np.abs(distance) > 1e-12, (raw - mean) / distance, np.nan)
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
