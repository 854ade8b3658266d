"""Counts together with bytes: the opt-in bytes factor of the joint model.

A window of ``y_ij > 0`` events moves ``b_ij`` bytes, the sum of its events' sizes: each
event's size is LogNormal(m_i - sigma_e^2 / 2 + w_ij, sigma_e) (mean ``exp(m_i + w_ij)``), with
a window factor ``w_ij ~ Normal(-sigma_w^2 / 2, sigma_w)`` shared by the window's events. The
law of ``l_ij = log(b_ij / y_ij)`` is matched (Fenton–Wilkinson: same mean and variance of
``b / y``) by

    l_ij ~ Normal(m_i - v_ij / 2, sqrt(v_ij)),  v_ij = sigma_w^2 + log1p(expm1(sigma_e^2) / y_ij)
    m_i ~ Normal(m0, tau),  m0 ~ Normal(m0_prior_mean, m0_prior_sd),
    tau ~ HalfNormal(tau_sd),  sigma_w ~ HalfNormal(sigma_w_sd),  sigma_e ~ HalfNormal(sigma_e_sd),

(``v_ij ~ sigma_w^2 + sigma_e^2 / y_ij`` for small sigma_e; exact at y = 1 and as y grows), and
a window without events carries exactly 0 bytes (a point mass, no density). ``exp(m_i)`` is
entity i's mean bytes per event, ``E[b / y]`` at every count, so m_i means the same for entities
with few and with many events; ``exp(m_i - (sigma_w^2 + sigma_e^2) / 2)`` is the median size of
one event. (Before, one pooled ``sigma_b`` was the spread at every count: intervals too narrow
for windows of few events and too wide for windows of many, and m_i biased with the count
level.) The factor shares no parameter with the count model, so the joint density is the
product of the two and each block's posterior is the one it would have alone; fitting them
together gives one run, one set of diagnostics and joint predictive draws.

This module holds the sufficient statistics the Stan program takes, per group of windows
sharing (entity, count) — windows n_g, mean and centred sum of squares of ``log(b / y)``, so a
gradient costs O(groups) — the per-entity statistics of the summary table, the law's moments
(`bytes_log_moments`) and the Stan data fields; the column's validation is
`ratepool.data.bytes`, the entity table `ratepool.posterior.bytes_summary`.
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
    "bytes_group_statistics",
    "bytes_log_moments",
    "bytes_stan_fields",
    "bytes_fields_off",
    "warn_if_bytes_prior_clashes",
]

log = logging.getLogger(__name__)

#: The bytes factor's parameters, as named in Stan and in the InferenceData (``m`` per entity).
BYTES_PARAMETERS = ("m0", "tau", "sigma_w", "sigma_e", "m")

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


def bytes_log_moments(events: np.ndarray, m: np.ndarray, sigma_w: np.ndarray,
                      sigma_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``log(b / y)`` in a window of ``events`` > 0 events under the model
    (broadcasting): ``(m - v / 2, v)`` with ``v = sigma_w^2 + log1p(expm1(sigma_e^2) / y)``."""
    variance = np.square(sigma_w) + np.log1p(np.expm1(np.square(sigma_e)) / events)
    return m - variance / 2, variance


def bytes_group_statistics(data: CountData) -> dict[str, Any]:
    """Sufficient statistics of ``l = log(b / y)`` per group of windows with events sharing
    (entity, count y): the windows of a group have one law under the model.

    Returns
    -------
    dict
        ``BG`` (groups), ``bytes_group_entity`` (1-based entity index), ``bytes_group_events``
        (y), ``bytes_group_windows`` (n_g), ``bytes_group_log_mean`` (mean of l),
        ``bytes_group_log_ss`` (sum of (l - mean)^2: centred, so nothing cancels) and
        ``bytes_log_total`` (sum of log b over the windows with events: the Jacobian from l to
        b, so that the program's density is that of the bytes themselves).
    """
    if data.window_bytes is None:
        raise DataError("the data has no bytes; load it with load_counts(..., bytes_col=...)")
    events = data.y > 0
    log_b = np.log(data.window_bytes[events])
    y = data.y[events].astype(np.int64)
    per_event = log_b - np.log(y)
    keys = np.stack([data.entity_index[events].astype(np.int64), y])
    unique, group = np.unique(keys, axis=1, return_inverse=True)
    group = group.ravel()
    windows = np.bincount(group, minlength=unique.shape[1])
    mean = np.bincount(group, weights=per_event, minlength=unique.shape[1]) / np.maximum(windows, 1)
    ss = np.bincount(group, weights=(per_event - mean[group]) ** 2, minlength=unique.shape[1])
    return {"BG": int(unique.shape[1]), "bytes_group_entity": unique[0] + 1,
            "bytes_group_events": unique[1], "bytes_group_windows": windows.astype(np.int64),
            "bytes_group_log_mean": mean, "bytes_group_log_ss": ss,
            "bytes_log_total": float(log_b.sum())}


def bytes_fields_off(config: ModelConfig | None = None) -> dict[str, Any]:
    """The bytes fields of the Stan data with the option off (priors as configured)."""
    config = config or ModelConfig()
    return {"has_bytes": 0, "bytes": [], "BG": 0, "bytes_group_entity": [],
            "bytes_group_events": [], "bytes_group_windows": [], "bytes_group_log_mean": [],
            "bytes_group_log_ss": [], "bytes_log_total": 0.0,
            "m0_prior_mean": float(config.bytes_m0_prior_mean),
            "m0_prior_sd": float(config.bytes_m0_prior_sd),
            "tau_sd": float(config.bytes_tau_prior_sd),
            "sigma_w_sd": float(config.bytes_sigma_w_prior_sd),
            "sigma_e_sd": float(config.bytes_sigma_e_prior_sd)}


def bytes_stan_fields(data: CountData, config: ModelConfig, rows: bool) -> dict[str, Any]:
    """The Stan data fields of the bytes factor: off when the data carries no bytes; else the
    statistics, and the rows' bytes when the rows are sent (``rows``)."""
    fields = bytes_fields_off(config)
    if data.window_bytes is None:
        return fields
    statistics = bytes_group_statistics(data)
    fields.update({name: value if np.isscalar(value) else np.asarray(value).tolist()
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


