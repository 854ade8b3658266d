"""Bytes per event per entity from a fit with the bytes factor (`bytes_summary`), and the check
of the window-level variance against the number of events (`residual_variance_by_events`).
The model is described in `ratepool.model.event_bytes`.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd

from ratepool.data.counts import CountData
from ratepool.model.event_bytes import bytes_statistics
from ratepool.posterior.summary import HDI_PROB


def bytes_summary(idata: az.InferenceData, data: CountData) -> pd.DataFrame:
    """Bytes per event, one row per entity label.

    Columns: ``windows_with_events`` (W_i); ``observed_mean`` (the entity's bytes / events
    over those windows); ``observed_median`` (exp of the mean of log(b / y) over them: its
    geometric-mean bytes per event; both empty where W_i = 0); ``mean_mean``,
    ``mean_hdi_low`` / ``mean_hdi_high``: the posterior of ``exp(m_i)``, the mean bytes per
    event at any count (the headline; multiply by expected events for expected bytes);
    ``median_mean``, ``median_hdi_low`` / ``median_hdi_high``: the posterior of
    ``exp(m_i - (sigma_w^2 + sigma_e^2) / 2)``, the median size of one event (of a window of
    one event; the median of b / y rises towards exp(m_i - sigma_w^2 / 2) as the events
    grow); ``m_mean``, ``m_sd``: m_i itself. HDIs are 94%.
    """
    posterior = idata.posterior
    m = posterior["m"].to_numpy()  # (chain, draw, J)
    spread = (posterior["sigma_w"].to_numpy()[..., None] ** 2
              + posterior["sigma_e"].to_numpy()[..., None] ** 2)
    mean = np.exp(m)
    median = np.exp(m - spread / 2)
    median_hdi = az.hdi(median, hdi_prob=HDI_PROB)
    mean_hdi = az.hdi(mean, hdi_prob=HDI_PROB)
    statistics = bytes_statistics(data)
    windows = statistics["bytes_windows"]
    observed = np.where(windows > 0, np.exp(statistics["bytes_log_mean"]), np.nan)
    events = data.y > 0
    entity_bytes = np.bincount(data.entity_index[events], data.window_bytes[events],
                               minlength=data.n_entities)
    entity_events = np.bincount(data.entity_index[events], data.y[events],
                                minlength=data.n_entities)
    observed_mean = np.divide(entity_bytes, entity_events, out=np.full(data.n_entities, np.nan),
                              where=entity_events > 0)
    return pd.DataFrame(
        {
            "windows_with_events": windows,
            "observed_mean": observed_mean,
            "observed_median": observed,
            "mean_mean": mean.mean(axis=(0, 1)),
            "mean_hdi_low": mean_hdi[:, 0],
            "mean_hdi_high": mean_hdi[:, 1],
            "median_mean": median.mean(axis=(0, 1)),
            "median_hdi_low": median_hdi[:, 0],
            "median_hdi_high": median_hdi[:, 1],
            "m_mean": m.mean(axis=(0, 1)),
            "m_sd": m.reshape(-1, m.shape[-1]).std(axis=0, ddof=1),
        },
        index=pd.Index(data.labels, name="entity"),
    )


def residual_variance_by_events(data: CountData) -> pd.DataFrame:
    """How the spread of log bytes per event falls with the number of events, on the data.

    For each window with events, the residual ``r = l_ij - mean_i`` of its log bytes per event
    from its entity's mean has ``E[r^2] ~ s^2 (1 - 1 / W_i)`` for a spread s common to the
    entity's windows. Grouping windows by their count y in bins 1, 2-3, 4-7, 8-15, ...
    (entities with W_i >= 2), ``residual_sd`` = sqrt(sum r^2 / sum (1 - 1 / W_i)) estimates
    the spread in each bin (roughly: the windows of an entity mix counts). Under the model it
    falls with y, like sqrt(sigma_w^2 + log1p(expm1(sigma_e^2) / y)): flat when the window
    factor dominates (sigma_w), like 1 / sqrt(y) when the events' own sizes do (sigma_e).

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
