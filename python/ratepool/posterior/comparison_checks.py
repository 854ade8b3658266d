"""Posterior predictive checks for comparing models: statistics of the observed windows against
the same statistics of each replicated data set (``y_rep``, one per posterior draw).

Statistics (`STATISTICS`): the share of zero windows ("zero-inflation needed?"), the mean over
entities of each entity's variance-to-mean ratio of its window counts ("overdispersion
captured?"), and the mean over entities of each entity's largest window ("tails captured?").
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

from ratepool.errors import DataError

__all__ = ["STATISTICS", "INTERVAL", "window_statistics", "predictive_checks"]

#: Statistic name -> what it measures.
STATISTICS = {
    "zero_share": "share of zero windows",
    "vmr": "mean over entities of the variance-to-mean ratio of the entity's windows",
    "max_window": "mean over entities of the entity's largest window",
}
#: Central probability of the replicated interval.
INTERVAL = 0.90


def window_statistics(y: np.ndarray, entity: np.ndarray) -> dict[str, np.ndarray]:
    """`STATISTICS` of counts ``y`` (..., obs) with entity codes ``entity`` (obs,).

    Entities with fewer than two windows, or zero mean, have no variance-to-mean ratio and are
    left out of its mean.
    """
    y = np.asarray(y, dtype=float)
    codes, entity = np.unique(entity, return_inverse=True)
    n = np.bincount(entity, minlength=codes.size).astype(float)
    total = np.zeros(y.shape[:-1] + (codes.size,))
    square = np.zeros_like(total)
    largest = np.zeros_like(total)
    np.add.at(total.T, entity, np.moveaxis(y, -1, 0))
    np.add.at(square.T, entity, np.moveaxis(y ** 2, -1, 0))
    np.maximum.at(largest.T, entity, np.moveaxis(y, -1, 0))
    mean = total / n
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = (square - n * mean ** 2) / (n - 1)
        vmr = variance / mean
    return {"zero_share": (y == 0).mean(axis=-1),
            "vmr": np.nanmean(np.where(n > 1, vmr, np.nan), axis=-1),
            "max_window": largest.mean(axis=-1)}


def replicated_statistics(idata: az.InferenceData) -> tuple[dict[str, float],
                                                               dict[str, np.ndarray]]:
    """Observed statistics and their replicated draws (flattened over chains) of one fit."""
    if "posterior_predictive" not in idata.groups() or "y_rep" not in idata.posterior_predictive:
        raise DataError("the fit has no per-window replicates (y_rep); fit with "
                        "obs_predictions=True and the raw rows")
    entity = idata.constant_data["entity_index"].to_numpy()
    observed = window_statistics(idata.observed_data["y"].to_numpy(), entity)
    y_rep = idata.posterior_predictive["y_rep"].to_numpy()
    replicated = window_statistics(y_rep.reshape(-1, y_rep.shape[-1]), entity)
    return {k: float(v) for k, v in observed.items()}, replicated


def predictive_checks(idatas: dict[str, az.InferenceData]) -> pd.DataFrame:
    """One row per (model, statistic): observed, replicated mean and `INTERVAL` interval, and
    ``p = P(replicated >= observed)`` (near 0 or 1: the model misses that feature)."""
    tail = (1 - INTERVAL) / 2
    rows = []
    for label, idata in idatas.items():
        observed, replicated = replicated_statistics(idata)
        for name in STATISTICS:
            draws = replicated[name][np.isfinite(replicated[name])]
            low, high = np.quantile(draws, [tail, 1 - tail])
            rows.append({"model": label, "statistic": name, "observed": observed[name],
                         "replicated_mean": float(draws.mean()), "low": float(low),
                         "high": float(high), "p": float((draws >= observed[name]).mean())})
    return pd.DataFrame(rows)
