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
