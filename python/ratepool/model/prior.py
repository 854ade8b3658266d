"""Prior predictive check: are the counts the priors imply plausible?"""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np

from ratepool.data.counts import CountData

__all__ = ["prior_predictive_check", "PLAUSIBLE_RANGE", "QUANTILES"]

#: The design document's expectation: simulated counts mostly within 0..50.
PLAUSIBLE_RANGE = (0, 50)
#: Quantiles of the prior predictive counts that the check reports.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def prior_predictive_check(idata: az.InferenceData,
                           data: CountData | None = None) -> dict[str, Any]:
    """Summarise the prior predictive counts for one new window of each entity (``y_pred``).

    The design document's fixed range 0..50 says nothing about data on another scale, so with
    ``data`` the share within the data's own observed range (smallest to largest count) is
    reported as well.

    Parameters
    ----------
    idata : arviz.InferenceData
        Holds ``prior_predictive.y_pred``.
    data : CountData, optional
        The observed data (rows or pre-aggregated: the range comes from its count histogram).

    Returns
    -------
    dict
        ``n_draws``, ``share_0_50`` (share of simulated counts within 0..50), ``share_zero``,
        the quantiles ``q05``, ``q25``, ``q50``, ``q75``, ``q95``, ``q99``, the largest count
        ``max``; with ``data``: ``observed_min``, ``observed_max`` and
        ``share_observed_range`` (share of simulated counts within that range).
    """
    counts = np.asarray(idata.prior_predictive["y_pred"]).ravel()
    check = {
        "n_draws": int(idata.prior_predictive.sizes["chain"] * idata.prior_predictive.sizes["draw"]),
        "share_0_50": _share_within(counts, *PLAUSIBLE_RANGE),
        "share_zero": float(np.mean(counts == 0)),
        **{f"q{int(round(p * 100)):02d}": float(q) for p, q in
           zip(QUANTILES, np.quantile(counts, QUANTILES))},
        "max": float(counts.max()),
    }
    if data is not None:
        low, high = int(data.count_value.min()), int(data.count_value.max())
        check.update(observed_min=low, observed_max=high,
                     share_observed_range=_share_within(counts, low, high))
    return check


def _share_within(counts: np.ndarray, low: float, high: float) -> float:
    return float(np.mean((counts >= low) & (counts <= high)))
