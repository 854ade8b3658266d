"""Counts together with bytes: the opt-in bytes factor of the joint model.

For each window with ``y_ij > 0`` events that moved ``b_ij`` bytes,

    log(b_ij / y_ij) ~ Normal(m_i, sigma_b)      (b_ij ~ LogNormal(log y_ij + m_i, sigma_b))
    m_i ~ Normal(m0, tau),  m0 ~ Normal(m0_prior_mean, m0_prior_sd),
    tau ~ HalfNormal(tau_sd),  sigma_b ~ HalfNormal(sigma_b_sd),

and a window without events carries exactly 0 bytes (a point mass, no density). The factor
shares no parameter with the count model, so the joint density is the product of the two and
each block's posterior is the one it would have alone; fitting them together gives one run, one
set of diagnostics and joint predictive draws (bytes of replicated windows).

``exp(m_i)`` is entity i's median bytes per event of a window, ``exp(m_i + sigma_b^2 / 2)`` its
mean. The window-level variance does not shrink with y_ij: see the README ("Counts together
with bytes") for why, and for what it assumes.

This module holds the per-entity sufficient statistics the Stan program takes (windows with
events W_i, mean and centred sum of squares of ``log(b / y)``, so a gradient costs O(J)) and the
Stan data fields; the column's validation is `ratepool.data.bytes`, the entity table
`ratepool.posterior.bytes_summary`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ratepool.data.counts import CountData
from ratepool.errors import DataError
from ratepool.model.config import ModelConfig

__all__ = [
    "BYTES_PARAMETERS",
    "bytes_statistics",
    "bytes_stan_fields",
    "bytes_fields_off",
    "warn_if_bytes_prior_clashes",
]

log = logging.getLogger(__name__)

#: The bytes factor's parameters, as named in Stan and in the InferenceData (``m`` per entity).
BYTES_PARAMETERS = ("m0", "tau", "sigma_b", "m")

#: Prior z-score beyond which the data's log bytes per event is called implausible under m0's.
_PRIOR_Z = 3.0


def bytes_statistics(data: CountData) -> dict[str, Any]:
    """Per-entity sufficient statistics of ``l = log(b / y)`` over the windows with events.

    Returns
    -------
    dict
        ``bytes_windows`` (W_i, int64), ``bytes_log_mean`` (mean of l, 0 where W_i = 0),
        ``bytes_log_ss`` (sum of (l - mean)^2: centred, so nothing cancels), and
        ``bytes_log_total`` (sum of log b over those windows: the Jacobian from l to b, so that
        the program's density is that of the bytes themselves).
    """
    if data.window_bytes is None:
        raise DataError("the data has no bytes; load it with load_counts(..., bytes_col=...)")
    events = data.y > 0
    entity = data.entity_index[events]
    log_b = np.log(data.window_bytes[events])
    per_event = log_b - np.log(data.y[events])
    windows = np.bincount(entity, minlength=data.n_entities)
    sums = np.bincount(entity, weights=per_event, minlength=data.n_entities)
    mean = np.divide(sums, windows, out=np.zeros(data.n_entities), where=windows > 0)
    ss = np.bincount(entity, weights=(per_event - mean[entity]) ** 2,
                     minlength=data.n_entities)
    return {"bytes_windows": windows.astype(np.int64), "bytes_log_mean": mean,
            "bytes_log_ss": ss, "bytes_log_total": float(log_b.sum())}


def bytes_fields_off(config: ModelConfig | None = None) -> dict[str, Any]:
    """The bytes fields of the Stan data with the option off (priors as configured)."""
    config = config or ModelConfig()
    return {"has_bytes": 0, "bytes": [], "bytes_windows": [], "bytes_log_mean": [],
            "bytes_log_ss": [], "bytes_log_total": 0.0,
            "m0_prior_mean": float(config.bytes_m0_prior_mean),
            "m0_prior_sd": float(config.bytes_m0_prior_sd),
            "tau_sd": float(config.bytes_tau_prior_sd),
            "sigma_b_sd": float(config.bytes_sigma_prior_sd)}


def bytes_stan_fields(data: CountData, config: ModelConfig, rows: bool) -> dict[str, Any]:
    """The Stan data fields of the bytes factor: off when the data carries no bytes; else the
    statistics, and the rows' bytes when the rows are sent (``rows``)."""
    fields = bytes_fields_off(config)
    if data.window_bytes is None:
        return fields
    statistics = bytes_statistics(data)
    fields.update({name: np.asarray(value).tolist() if name != "bytes_log_total" else value
                   for name, value in statistics.items()})
    fields["has_bytes"] = 1
    fields["bytes"] = data.window_bytes.tolist() if rows else []
    return fields


def warn_if_bytes_prior_clashes(data: CountData, config: ModelConfig) -> None:
    """Log a warning when the data's mean log bytes per event lies beyond 3 prior sd of m0's
    prior mean (e.g. bytes given in other units than the prior assumes)."""
    if data.window_bytes is None:
        return
    events = data.y > 0
    if not events.any():
        return
    observed = float(np.mean(np.log(data.window_bytes[events] / data.y[events])))
    z = (observed - config.bytes_m0_prior_mean) / config.bytes_m0_prior_sd
    if abs(z) > _PRIOR_Z:
        log.warning(
            "the mean log bytes per event in the data (%.3g, i.e. %.3g bytes) lies %.1f prior "
            "sd from m0's prior mean %g; set bytes_m0_prior_mean near %.3g (or check the "
            "bytes column's units)", observed, np.exp(observed), z,
            config.bytes_m0_prior_mean, observed)


