"""Ranking fitted candidate models by PSIS-LOO (`loo_table`), grading the Pareto k of each,
choosing the simplest model within 2 standard errors of the best (`recommend`), and the
`ComparisonResult` that `ratepool.compare` returns.

The LOO numbers are ArviZ's own: ``az.compare(..., ic="loo", method="stacking")`` for the
ranking, the elpd differences, their standard errors and the stacking weights, and ``az.loo``
for the pointwise Pareto k.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import arviz as az
import numpy as np
import pandas as pd

from ratepool.errors import ConfigError

if TYPE_CHECKING:
    from ratepool.posterior.fit_result import FitResult

__all__ = ["LOO_UNITS", "K_THRESHOLD", "SIMPLICITY", "ComparisonResult", "loo_table",
           "recommend", "pareto_grade"]

log = logging.getLogger(__name__)

#: LOO unit -> the log_likelihood variable it leaves out. "entity" (the default of
#: `ratepool.compare`): all windows of one entity, by their marginal likelihood, the rate
#: integrated out (`ratepool.posterior.entity_marginal`): a new entity; "window": one window
#: of a known entity, given its rate.
LOO_UNITS = {"entity": "entity_marginal", "window": "y"}
#: Pareto k above which PSIS-LOO is unreliable for that point (Vehtari et al. 2017; ArviZ).
K_THRESHOLD = 0.7
#: Options in increasing order of complexity; a candidate's simplicity is (number of options
#: on, then the position of its most complex option).
SIMPLICITY = ("exposure", "covariates", "zero-inflation", "temporal")
#: Models whose elpd is within this many standard errors of the best tie with it.
TIE_SE = 2.0


def pareto_grade(k: np.ndarray, unit: str) -> str:
    """One sentence on the Pareto k of one model: reliable, or what to do."""
    bad = int((k > K_THRESHOLD).sum())
    if bad == 0:
        return f"reliable (all k <= {K_THRESHOLD}, max {k.max():.2f})"
    advice = ("refit leaving out each entity in turn (K-fold by entity, e.g. 10 folds) for "
              "this model" if unit == "entity" else
              "check those windows (outliers?), or refit without them (exact LOO) for this "
              "model")
    return (f"UNRELIABLE: {bad} of {k.size} k > {K_THRESHOLD} (max {k.max():.2f}); its elpd "
            f"is optimistic; {advice}")


def loo_table(idatas: Mapping[str, az.InferenceData], unit: str = "window") -> pd.DataFrame:
    """Rank ``idatas`` by PSIS-LOO on the log likelihood of ``unit``.

    Returns
    -------
    pandas.DataFrame
        Indexed by model label, best first: ``rank``, ``elpd_loo``, ``se``, ``elpd_diff``
        (to the best), ``dse`` (its standard error), ``p_loo``, ``weight`` (stacking) as
        ``az.compare`` gives them, and ``max_pareto_k``, ``n_k_high`` (k > 0.7) and
        ``pareto_k`` (the grade, `pareto_grade`).
    """
    if unit not in LOO_UNITS:
        raise ConfigError(f"LOO unit must be one of {sorted(LOO_UNITS)}, got {unit!r}")
    var_name = LOO_UNITS[unit]
    with warnings.catch_warnings():  # the k grade below says what the warnings would say
        warnings.filterwarnings("ignore", message=".*Pareto.*", category=UserWarning)
        compared = az.compare(dict(idatas), var_name=var_name, ic="loo", method="stacking")
        table = compared[["rank", "elpd_loo", "se", "elpd_diff", "dse", "p_loo",
                          "weight"]].copy()
        for label, idata in idatas.items():
            k = np.asarray(az.loo(idata, var_name=var_name, pointwise=True).pareto_k)
            table.loc[label, "max_pareto_k"] = float(k.max())
            table.loc[label, "n_k_high"] = int((k > K_THRESHOLD).sum())
            table.loc[label, "pareto_k"] = pareto_grade(k, unit)
    table["n_k_high"] = table["n_k_high"].astype(int)
    table.index.name = "model"
    return table


def simplicity(options: tuple[str, ...]) -> tuple[int, int]:
    """Sort key: fewer options first, then the least complex most complex option."""
    return len(options), max((SIMPLICITY.index(o) + 1 for o in options), default=0)


def recommend(table: pd.DataFrame, options: Mapping[str, tuple[str, ...]],
              unit: str = "window") -> tuple[str, str]:
    """The recommended model and a one-line statement of its evidence.

    The best model by elpd, unless a simpler one (`simplicity`) is within `TIE_SE` standard
    errors of it (``elpd_diff < 2 dse``): then the simplest such model.
    """
    best = str(table.index[0])
    tied = [str(label) for label, row in table.iterrows()
            if label == best or row["elpd_diff"] < TIE_SE * row["dse"]]
    chosen = min(tied, key=lambda label: (simplicity(options[label]), tied.index(label)))
    row = table.loc[chosen]
    others = [str(label) for label in tied if label != chosen]
    if chosen == best:
        runner_up = table.iloc[1] if len(table) > 1 else None
        evidence = ("the only model ranked" if runner_up is None else
                    f"elpd {runner_up['elpd_diff']:.1f} ± {runner_up['dse']:.1f} above the "
                    f"next ({table.index[1]}), {runner_up['elpd_diff'] / max(runner_up['dse'], 1e-12):.1f} "
                    f"standard errors")
        text = f"{chosen}: best by {unit} LOO, {evidence}; stacking weight {row['weight']:.2f}"
    else:
        text = (f"{chosen}: the simplest model within {TIE_SE:g} standard errors of the best "
                f"by elpd ({best}, ahead by {row['elpd_diff']:.1f} ± {row['dse']:.1f}, "
                f"{row['elpd_diff'] / max(row['dse'], 1e-12):.1f} se; stacking weights "
                f"{row['weight']:.2f} here, {table.loc[best, 'weight']:.2f} for {best}): the "
                "gain of the more complex model is within its uncertainty")
    if others:
        text += f". Tied within {TIE_SE:g} se: {', '.join(others)}"
    if row["n_k_high"] > 0 or table.loc[best, "n_k_high"] > 0:
        text += ". Caution: PSIS-LOO is unreliable for at least one of these (Pareto k)"
    return chosen, text


@dataclass(frozen=True)
class ComparisonResult:
    """Candidate models ranked by PSIS-LOO, with their predictive checks.

    Attributes
    ----------
    table : pandas.DataFrame
        The ranking (`loo_table`), best first.
    checks : pandas.DataFrame
        Observed against replicated statistics per candidate
        (`ratepool.posterior.comparison_checks.predictive_checks`).
    recommended : str
        Label of the recommended model (`recommend`).
    recommendation : str
        One line: the model, its evidence (elpd difference ± se, weight) and its uncertainty.
    unit : {"entity", "window"}
        What LOO leaves out in ``table`` (and the recommendation).
    skipped : dict
        Candidate label -> why it was not fitted or not ranked.
    fits : dict
        Candidate label -> its `FitResult`.
    options : dict
        Candidate label -> the options it has on.
    tables : dict
        LOO unit -> its ranking: ``unit``'s (``table``), and the window ranking for reference
        (with the temporal candidates, which the entity ranking skips).
    """

    table: pd.DataFrame
    checks: pd.DataFrame
    recommended: str
    recommendation: str
    unit: str
    skipped: dict[str, str] = field(default_factory=dict)
    fits: dict[str, "FitResult"] = field(default_factory=dict)
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def summary(self) -> str:
        """The ranking, the skipped candidates and the recommendation as plain text (and the
        other unit's ranking, for reference)."""
        columns = ["elpd_loo", "se", "elpd_diff", "dse", "weight", "max_pareto_k"]
        lines = [f"PSIS-LOO by {self.unit} (best first):",
                 self.table[columns].to_string(float_format="%.2f")]
        for unit, table in self.tables.items():
            if unit != self.unit:
                lines += [f"For reference, PSIS-LOO by {unit} (not used for the "
                          "recommendation):", table[columns].to_string(float_format="%.2f")]
        lines += [f"skipped {label}: {why}" for label, why in self.skipped.items()]
        lines.append(f"Recommended: {self.recommendation}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no fits)."""
        return {"unit": self.unit, "recommended": self.recommended,
                "recommendation": self.recommendation, "skipped": self.skipped,
                "options": {k: list(v) for k, v in self.options.items()}}
