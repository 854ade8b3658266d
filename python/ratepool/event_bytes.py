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

This module holds the data side: validation of the bytes column, the per-entity sufficient
statistics the Stan program takes (windows with events W_i, mean and centred sum of squares
of ``log(b / y)``, so a gradient costs O(J)), the Stan data fields, and the entity table.
"""

from __future__ import annotations

import logging
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from .config import ModelConfig
from .data import CountData, Location, _raise_rows, index_location
from .errors import DataError
from .summary import HDI_PROB

__all__ = [
    "BYTES_PARAMETERS",
    "validate_bytes",
    "bytes_statistics",
    "bytes_stan_fields",
    "bytes_fields_off",
    "bytes_summary",
    "warn_if_bytes_prior_clashes",
    "residual_variance_by_events",
]

log = logging.getLogger(__name__)

#: The bytes factor's parameters, as named in Stan and in the InferenceData (``m`` per entity).
BYTES_PARAMETERS = ("m0", "tau", "sigma_b", "m")

#: Prior z-score beyond which the data's log bytes per event is called implausible under m0's.
_PRIOR_Z = 3.0


def validate_bytes(column: pd.Series, y: np.ndarray, name: str, *,
                   where: Location = index_location) -> np.ndarray:
    """The bytes of each row as float64, or `DataError` naming the first offending rows.

    Refused: text, booleans, missing, infinite or negative values; a window without events
    carrying bytes (bytes move with events); a window with events carrying 0 bytes (its bytes
    per event would be 0, whose log the model cannot take).
    """
    if pd.api.types.is_bool_dtype(column.dtype):
        raise DataError(f"bytes column {name!r} holds true/false values; give the bytes each "
                        "window moved (non-negative numbers)")
    _raise_rows(column, column.isna(), name, "has missing bytes",
                fix="give every window the bytes it moved (0 for a window without events), "
                    "or drop those rows", where=where)
    numeric = pd.to_numeric(column, errors="coerce")
    _raise_rows(column, numeric.isna(), name, "has bytes that are not numbers",
                fix="give non-negative numbers", where=where)
    values = numeric.to_numpy(dtype=float)
    _raise_rows(column, ~np.isfinite(values), name, "has infinite bytes",
                fix="give finite numbers", where=where)
    _raise_rows(column, values < 0, name, "has negative bytes",
                fix="bytes moved in a window cannot be negative", where=where)
    _raise_rows(column, (y == 0) & (values != 0), name,
                "has bytes in windows with no events (count 0)",
                fix="a window without events moves 0 bytes: check that the bytes and count "
                    "columns describe the same windows", where=where)
    _raise_rows(column, (y > 0) & (values == 0), name,
                "has 0 bytes in windows with events",
                fix="the model needs positive bytes per event where there are events (log "
                    "bytes per event); drop those windows or correct their bytes", where=where)
    return values


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


def bytes_summary(idata: az.InferenceData, data: CountData) -> pd.DataFrame:
    """Bytes per event, one row per entity label.

    Columns: ``windows_with_events`` (W_i); ``observed_median`` (exp of the mean of
    log(b / y) over those windows: the entity's own geometric-mean bytes per event, empty
    where W_i = 0); ``median_mean``, ``median_hdi_low`` / ``median_hdi_high``: the posterior
    of ``exp(m_i)``, the median bytes per event of a window (the headline: it does not depend
    on the tail parameter sigma_b); ``mean_mean``, ``mean_hdi_low`` / ``mean_hdi_high``: the
    posterior of ``exp(m_i + sigma_b^2 / 2)``, the mean bytes per event of a window (multiply
    by expected events for expected bytes); ``m_mean``, ``m_sd``: m_i itself. HDIs are 94%.
    """
    posterior = idata.posterior
    m = posterior["m"].to_numpy()  # (chain, draw, J)
    sigma = posterior["sigma_b"].to_numpy()[..., None]
    median = np.exp(m)
    mean = np.exp(m + sigma**2 / 2)
    median_hdi = az.hdi(median, hdi_prob=HDI_PROB)
    mean_hdi = az.hdi(mean, hdi_prob=HDI_PROB)
    statistics = bytes_statistics(data)
    windows = statistics["bytes_windows"]
    observed = np.where(windows > 0, np.exp(statistics["bytes_log_mean"]), np.nan)
    return pd.DataFrame(
        {
            "windows_with_events": windows,
            "observed_median": observed,
            "median_mean": median.mean(axis=(0, 1)),
            "median_hdi_low": median_hdi[:, 0],
            "median_hdi_high": median_hdi[:, 1],
            "mean_mean": mean.mean(axis=(0, 1)),
            "mean_hdi_low": mean_hdi[:, 0],
            "mean_hdi_high": mean_hdi[:, 1],
            "m_mean": m.mean(axis=(0, 1)),
            "m_sd": m.reshape(-1, m.shape[-1]).std(axis=0, ddof=1),
        },
        index=pd.Index(data.labels, name="entity"),
    )


def residual_variance_by_events(data: CountData) -> pd.DataFrame:
    """The model's constant-variance assumption, checked on the data.

    For each window with events, the residual ``r = l_ij - mean_i`` of its log bytes per event
    from its entity's mean has ``E[r^2] = sigma_b^2 (1 - 1 / W_i)`` when the variance does not
    depend on the number of events (the model). Grouping windows by their count y in bins
    1, 2-3, 4-7, 8-15, ... (entities with W_i >= 2), ``residual_sd`` =
    sqrt(sum r^2 / sum (1 - 1 / W_i)) estimates sigma_b in each bin: about the same in every
    bin under the model; falling like 1 / sqrt(y) if the events' sizes were independent.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``events_low``, ``events_high``, ``windows``,
        ``residual_sd``.
    """
    statistics = bytes_statistics(data)
    events = data.y > 0
    entity = data.entity_index[events]
    y = data.y[events]
    residual = (np.log(data.window_bytes[events] / y) - statistics["bytes_log_mean"][entity])
    windows = statistics["bytes_windows"][entity]
    keep = windows >= 2
    bin_index = np.floor(np.log2(y[keep])).astype(np.int64)
    squares = np.bincount(bin_index, weights=residual[keep] ** 2)
    degrees = np.bincount(bin_index, weights=1 - 1 / windows[keep])
    counts = np.bincount(bin_index)
    present = np.flatnonzero(counts)
    return pd.DataFrame({
        "events_low": 2 ** present,
        "events_high": 2 ** (present + 1) - 1,
        "windows": counts[present],
        "residual_sd": np.sqrt(squares[present] / degrees[present]),
    })
