"""Prior predictive check: are the counts the priors imply plausible?"""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np

__all__ = ["prior_predictive_check", "PLAUSIBLE_RANGE"]

#: The design document's expectation: simulated counts mostly within 0..50.
PLAUSIBLE_RANGE = (0, 50)


def prior_predictive_check(idata: az.InferenceData) -> dict[str, Any]:
    """Summarise the prior predictive counts for one new window of each entity (``y_pred``).

    Returns
    -------
    dict
        ``n_draws``, ``share_0_50`` (share of simulated counts within 0..50), the quantiles
        ``q05``, ``q25``, ``q50``, ``q75``, ``q95``, ``q99``, the largest count ``max``, and
        ``share_zero``.
    """
    counts = np.asarray(idata.prior_predictive["y_pred"]).ravel()
    low, high = PLAUSIBLE_RANGE
    quantiles = np.quantile(counts, [0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    return {
        "n_draws": int(idata.prior_predictive.sizes["chain"] * idata.prior_predictive.sizes["draw"]),
        "share_0_50": float(np.mean((counts >= low) & (counts <= high))),
        "share_zero": float(np.mean(counts == 0)),
        **{f"q{int(round(p * 100)):02d}": float(q) for p, q in
           zip([0.05, 0.25, 0.5, 0.75, 0.95, 0.99], quantiles)},
        "max": float(counts.max()),
    }
