"""The anomaly rule (Benjamini–Hochberg or a per-window level) and the scored table it
produces; `ratepool.posterior.score` computes the probabilities (its docstring lists the
columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ratepool.errors import RatepoolError
from ratepool.posterior.predictive import check_probability

#: Default false discovery rate of the anomaly flag.
DEFAULT_FDR = 0.01


#: Default probability of the predictive interval.
DEFAULT_INTERVAL = 0.9


def benjamini_hochberg(p_values: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg step-up procedure at false discovery rate ``q``.

    Parameters
    ----------
    p_values : numpy.ndarray
        (m,) p-values.
    q : float
        The false discovery rate, in (0, 1).

    Returns
    -------
    (reject, adjusted) : tuple of numpy.ndarray
        ``reject[i]`` is True for the hypotheses rejected (all p <= p_(k) for the largest k with
        p_(k) <= k q / m); ``adjusted`` the BH adjusted p-values min_{j >= rank} m p_(j) / j,
        capped at 1, so that ``reject == (adjusted <= q)``.
    """
    q = check_probability(q, "the false discovery rate q")
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted <= q, adjusted


@dataclass(frozen=True)
class AnomalyRule:
    """How ``anomaly`` is decided: BH at a false discovery rate, or a per-window threshold."""

    fdr: float | None = DEFAULT_FDR
    per_window_alpha: float | None = None

    def __post_init__(self) -> None:
        if (self.fdr is None) == (self.per_window_alpha is None):
            raise RatepoolError("give exactly one anomaly rule: an FDR (--fdr) or a per-window "
                                "threshold (--per-window-alpha)")
        if self.fdr is not None:
            check_probability(self.fdr, "the false discovery rate", flag="--fdr")
        else:
            check_probability(self.per_window_alpha, "the per-window threshold",
                              flag="--per-window-alpha")

    @classmethod
    def from_options(cls, fdr: float | None = None,
                     per_window_alpha: float | None = None) -> "AnomalyRule":
        """The rule from optional settings: BH at ``fdr`` (0.01 if neither is given), or a
        per-window threshold; giving both is an error."""
        if fdr is not None and per_window_alpha is not None:
            raise RatepoolError("give either fdr or per_window_alpha, not both")
        if per_window_alpha is not None:
            return cls(fdr=None, per_window_alpha=per_window_alpha)
        return cls(fdr=DEFAULT_FDR if fdr is None else fdr)

    def describe(self) -> str:
        """One sentence saying how ``anomaly`` was decided."""
        if self.fdr is not None:
            return (f"Benjamini-Hochberg at false discovery rate q = {self.fdr:g} over all "
                    "scored rows, on the two-sided p_value")
        return (f"per-window threshold: p_value <= {self.per_window_alpha:g}, no correction "
                "for the number of windows")

    def apply(self, p_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(anomaly flags, BH adjusted p-values or None)."""
        if self.fdr is not None:
            return benjamini_hochberg(p_values, self.fdr)
        return p_values <= self.per_window_alpha, None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        method = "benjamini_hochberg" if self.fdr is not None else "per_window_threshold"
        return {"method": method, "fdr": self.fdr, "per_window_alpha": self.per_window_alpha,
                "p_value": "two-sided: min(1, 2 min(p_upper, p_lower))",
                "description": self.describe()}


@dataclass
class ScoreResult:
    """Scored rows and how they were scored.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per input row, in input order (columns: see the module docstring).
    rule : AnomalyRule
        How ``anomaly`` was decided.
    interval : float
        Probability of the predictive interval.
    n_draws : int
        Posterior draws averaged over.
    """

    table: pd.DataFrame
    rule: AnomalyRule
    interval: float
    n_draws: int
    info: dict[str, Any] = field(default_factory=dict)

    def anomalies(self) -> pd.DataFrame:
        """The flagged rows, most surprising first."""
        flagged = self.table[self.table["anomaly"]]
        return flagged.sort_values("p_value", kind="stable")

    def summary(self) -> dict[str, Any]:
        """Counts, the rule and the settings (JSON-ready)."""
        table = self.table
        return {
            "rows": len(table),
            "anomalies": int(table["anomaly"].sum()),
            "anomalies_high": int((table["anomaly"] & (table["direction"] == "high")).sum()),
            "anomalies_low": int((table["anomaly"] & (table["direction"] == "low")).sum()),
            "unseen_rows": int(table["unseen"].sum()),
            "unseen_entities": int(table.loc[table["unseen"], "entity"].nunique()),
            "rule": self.rule.to_dict(),
            "interval": self.interval,
            "interval_method": "exact quantiles of the posterior predictive mixture (bisection "
                               "on its CDF); equal-tailed, coverage >= the stated probability",
            "tail_probabilities": "exact: average over posterior draws of the NB2 CDF and "
                                  "survival function at each draw's (theta, phi)",
            "posterior_draws": self.n_draws,
            **self.info,
        }
