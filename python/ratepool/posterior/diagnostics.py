"""Convergence diagnostics, graded Good / Warning / Problem, with advice.

The design document's keys (``r_hat_max``, ``ess_bulk_min``, ``ess_tail_min``) cover mu, alpha
and phi. The entity rates are what users read, so the same R-hat and ESS checks run over every
parameter (theta included, naming the worst one), and two sampler checks are added: E-BFMI per
chain and draws that hit the maximum tree depth. ``converged`` means what a user reads: no
sampling check graded Problem (R-hat and ESS over every parameter, divergences as a share of the
post-warmup transitions, E-BFMI). All thresholds live here (`THRESHOLDS`); the report reads them
from this module. The table a user reads is `ratepool.posterior.diagnostic_table`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import arviz as az
import numpy as np

from ratepool.model.description import CHECKED_PARAMETERS
from ratepool.posterior.fast_diagnostics import ess_dataset, rhat_dataset
from ratepool.posterior.inference import PARAMETERS
from ratepool.posterior.prior_sensitivity import (
    CONFLICT_THRESHOLD,
    SENSITIVITY_THRESHOLD,
    conflict_advice,
    prior_sensitivity,
)

__all__ = [
    "get_model_diagnostics",
    "grade_r_hat",
    "grade_ess",
    "grade_divergences",
    "grade_ebfmi",
    "grade_treedepth",
    "THRESHOLDS",
    "CONVERGENCE_CHECKS",
    "CONVERGED_RULE",
    "MAX_TREEDEPTH",
    "GOOD",
    "WARNING",
    "PROBLEM",
]

GOOD, WARNING, PROBLEM = "Good", "Warning", "Problem"

#: R-hat: Good below 1.01, Warning up to 1.05, Problem above (the design document's table).
R_HAT_GOOD_BELOW, R_HAT_PROBLEM_ABOVE = 1.01, 1.05
#: Bulk and tail ESS: Good above 400, Warning down to 100, Problem below.
ESS_GOOD_ABOVE, ESS_PROBLEM_BELOW = 400, 100
#: Divergent transitions as a share of the post-warmup transitions: Good at none, Warning up
#: to 1 in 1000 (at most 4 of the default 4 x 1000 draws), Problem above. As Stan says, any
#: divergence is a warning: the sampler met curvature it could not follow, and the draws may be
#: biased there. A few isolated ones (at most 1 in 1000) are often the step-size adaptation
#: grazing a tail and are worth a look (where are they?); more than that means a region the
#: sampler cannot enter (Betancourt 2017), so the estimates are not to be trusted. A share, not
#: a count, so that the grade means the same at any number of draws.
DIVERGENCE_SHARE_WARNING_UP_TO = 0.001
#: E-BFMI: a chain below 0.3 explores the energy distribution poorly (Betancourt 2016).
EBFMI_PROBLEM_BELOW = 0.3
#: Neither engine is given a tree-depth limit, so both use Stan's default of 10.
MAX_TREEDEPTH = 10

#: The grades behind ``converged``: the sampling checks (not tree depth, an efficiency concern).
CONVERGENCE_CHECKS = ("r_hat", "ess_bulk", "ess_tail", "divergences", "r_hat_all",
                      "ess_bulk_all", "ess_tail_all", "ebfmi")
#: What ``converged`` means, as shown in the report and the docs.
CONVERGED_RULE = (f"no Problem grade: R-hat <= {R_HAT_PROBLEM_ABOVE} and bulk and tail ESS >= "
                  f"{ESS_PROBLEM_BELOW} for every parameter, divergences <= "
                  f"{DIVERGENCE_SHARE_WARNING_UP_TO:.1%} of the draws, E-BFMI >= "
                  f"{EBFMI_PROBLEM_BELOW} in every chain")

#: The thresholds of each graded check, as shown in the report.
THRESHOLDS = {
    "r_hat": f"Good < {R_HAT_GOOD_BELOW} <= Warning <= {R_HAT_PROBLEM_ABOVE} < Problem",
    "ess": f"Good > {ESS_GOOD_ABOVE} >= Warning >= {ESS_PROBLEM_BELOW} > Problem",
    "divergences": f"Good = 0, Warning <= {DIVERGENCE_SHARE_WARNING_UP_TO:.1%} of draws "
                   f"< Problem",
    "ebfmi": f"Good >= {EBFMI_PROBLEM_BELOW} > Problem (every chain)",
    "treedepth": "Good = 0, Warning > 0 (slow sampling, not wrong results)",
    "prior_conflict": f"Warning when a hyperparameter's power-scaling sensitivity is >= "
                      f"{CONFLICT_THRESHOLD} to its prior and >= {SENSITIVITY_THRESHOLD} to "
                      f"the data",
}

#: Troubleshooting advice (from the design document) for each diagnostic that is not Good.
ADVICE = {
    "r_hat": [
        "High R-hat: increase n_samples and n_tune",
        "High R-hat: check for a multimodal posterior (compare the chains' trace plots)",
        "High R-hat: check the data for mostly-zero counts or tiny phi (see README, SBC)",
    ],
    "ess": [
        "Low ESS: increase n_samples",
        "Low ESS: check for high autocorrelation (trace and autocorrelation plots)",
        "Low ESS: for entities with very little data, try parameterization='non_centered' "
        "(it mixed worse than the default in our tests, so compare)",
    ],
    "divergences": [
        "Divergences: increase target_accept to 0.95-0.99 (in simulation-based calibration "
        "0.99 cut divergent fits from 7.8% to 2.0% at no extra cost)",
        "Divergences: use stronger priors (e.g. a smaller overdispersion_prior_sd if phi "
        "runs toward 0, or mu_prior_rate near 1 / typical rate)",
        "Divergences: parameterization='non_centered' is the same model but mixed worse in "
        "our tests; try it only after the above",
    ],
    "ebfmi": [
        "Low E-BFMI: the sampler moves poorly between energy levels, as in a funnel (mostly "
        "zero windows, alpha or phi near 0); increase n_tune, set target_accept to 0.99, and "
        "consider stronger priors (overdispersion_prior_sd, alpha_prior_sd); results from "
        "such chains can be biased",
    ],
    "treedepth": [
        "Tree depth: draws that reach the maximum tree depth make sampling slow, not wrong; "
        "it usually means strongly correlated or very differently scaled parameters (e.g. "
        "rates far from mu's prior: set mu_prior_rate near 1 / typical rate); increase "
        "n_tune for better step-size adaptation",
    ],
}


# --------------------------------------------------------------------------------------------
# Grades


def grade_r_hat(r_hat: float) -> str:
    """Good below 1.01, Warning from 1.01 to 1.05 inclusive, Problem above 1.05 (or NaN)."""
    if not math.isfinite(r_hat) or r_hat > R_HAT_PROBLEM_ABOVE:
        return PROBLEM
    return GOOD if r_hat < R_HAT_GOOD_BELOW else WARNING


def grade_ess(ess: float) -> str:
    """Good above 400, Warning from 100 to 400 inclusive, Problem below 100 (or NaN)."""
    if not math.isfinite(ess) or ess < ESS_PROBLEM_BELOW:
        return PROBLEM
    return GOOD if ess > ESS_GOOD_ABOVE else WARNING


def grade_divergences(divergences: int, draws: int) -> str:
    """Good at 0 divergent transitions; Warning while they are at most 0.1% of the ``draws``
    post-warmup transitions (all chains); Problem above (see `DIVERGENCE_SHARE_WARNING_UP_TO`)."""
    if divergences == 0:
        return GOOD
    return WARNING if divergences <= DIVERGENCE_SHARE_WARNING_UP_TO * draws else PROBLEM


def grade_ebfmi(ebfmi: Sequence[float]) -> str:
    """Good when every chain's E-BFMI is at least 0.3; Problem otherwise (or NaN)."""
    values = np.asarray(ebfmi, dtype=float)
    return GOOD if np.all(values >= EBFMI_PROBLEM_BELOW) else PROBLEM


def grade_treedepth(hits: int) -> str:
    """Good when no draw reached the maximum tree depth; Warning otherwise (an efficiency
    concern, as in Stan's own diagnostics: the ESS checks grade what it costs)."""
    return GOOD if hits == 0 else WARNING


# --------------------------------------------------------------------------------------------
# Computation


def get_model_diagnostics(idata: az.InferenceData,
                          max_treedepth: int = MAX_TREEDEPTH) -> dict[str, Any]:
    """Graded convergence diagnostics of a fit.

    Parameters
    ----------
    idata : arviz.InferenceData
        The fit (``posterior``; ``sample_stats`` with ``diverging``, ``energy``,
        ``tree_depth`` where available).
    max_treedepth : int
        The sampler's tree-depth limit (Stan's default, which both engines use).

    Returns
    -------
    dict
        As in the design document, over mu, alpha and phi: ``r_hat_max``, ``ess_bulk_min``,
        ``ess_tail_min``. ``divergences``: divergent post-warmup transitions (all chains), and
        ``divergence_share`` their share of the post-warmup transitions, graded Good at 0,
        Warning up to 0.1% (any divergence is a warning, as in Stan; a few isolated ones are
        often benign), Problem above (systematic: the draws miss a region and are biased).
        ``converged``: what a user can rely on, True when none of `CONVERGENCE_CHECKS` is
        graded Problem: R-hat at most 1.05 and ESS at least 100 over every parameter (not only
        mu, alpha and phi), divergences at most 0.1%, E-BFMI at least 0.3 in every chain.
        ``all_parameters``: the same R-hat and ESS checks over mu, alpha, phi, beta and pi (when
        fitted) and every theta,
        as ``r_hat_max`` / ``ess_bulk_min`` / ``ess_tail_min`` and where each is worst
        (``r_hat_where`` etc., e.g. ``"theta[host-07]"``). ``ebfmi``: E-BFMI per chain (when
        the energy was recorded). ``treedepth_hits``: draws whose tree depth reached
        ``max_treedepth`` (when recorded). ``grades``: Good / Warning / Problem of ``r_hat``,
        ``ess_bulk``, ``ess_tail``, ``divergences`` (the design document's), and
        ``r_hat_all``, ``ess_bulk_all``, ``ess_tail_all``, ``ebfmi``, ``treedepth``.
        ``prior_sensitivity`` (fits with a ``log_prior`` group): the power-scaling
        sensitivity of each hyperparameter to its prior and to the data
        (`ratepool.posterior.prior_sensitivity`), graded ``prior_conflict``: Warning when the data
        fight a prior (it does not affect ``converged``: sampling went right, the model's
        prior is in question). ``advice``: what to try for whatever is not Good.
    """
    checks = _checks(idata.posterior)  # once over mu, alpha, phi and theta
    hyper = {key: values[list(PARAMETERS)] for key, (values, _) in checks.items()}
    r_hat = _worst(hyper["r_hat"], largest=True)[0]
    ess_bulk = _worst(hyper["ess_bulk"], largest=False)[0]
    ess_tail = _worst(hyper["ess_tail"], largest=False)[0]
    stats = idata.get("sample_stats")
    diverging = stats["diverging"] if stats is not None and "diverging" in stats else None
    divergences = int(diverging.sum()) if diverging is not None else 0
    transitions = int(diverging.size) if diverging is not None else 0
    every = _all_parameters(checks)
    grades = {
        "r_hat": grade_r_hat(r_hat),
        "ess_bulk": grade_ess(ess_bulk),
        "ess_tail": grade_ess(ess_tail),
        "divergences": grade_divergences(divergences, transitions),
        "r_hat_all": grade_r_hat(every["r_hat_max"]),
        "ess_bulk_all": grade_ess(every["ess_bulk_min"]),
        "ess_tail_all": grade_ess(every["ess_tail_min"]),
    }
    result: dict[str, Any] = {
        "r_hat_max": r_hat,
        "ess_bulk_min": ess_bulk,
        "ess_tail_min": ess_tail,
        "divergences": divergences,
        "divergence_share": divergences / transitions if transitions else 0.0,
        "all_parameters": every,
    }
    if stats is not None and "energy" in stats:
        result["ebfmi"] = [float(v) for v in az.bfmi(idata)]
        grades["ebfmi"] = grade_ebfmi(result["ebfmi"])
    if stats is not None and "tree_depth" in stats:
        result["treedepth_hits"] = int((stats["tree_depth"] >= max_treedepth).sum())
        result["max_treedepth"] = int(max_treedepth)
        grades["treedepth"] = grade_treedepth(result["treedepth_hits"])
    sensitivity = prior_sensitivity(idata)
    if sensitivity is not None:
        result["prior_sensitivity"] = sensitivity
        grades["prior_conflict"] = WARNING if sensitivity["conflict"] else GOOD
    result["converged"] = all(grades[key] != PROBLEM for key in CONVERGENCE_CHECKS
                              if key in grades)
    result["grades"] = grades
    result["advice"] = _advice(result)
    return result


def _checks(posterior: Any) -> dict[str, tuple[Any, bool]]:
    """R-hat, bulk and tail ESS (whether larger is worse) of mu, alpha, phi, the options' beta
    and pi, the bytes factor's m0, tau, sigma_w, sigma_e and m, the temporal model's rho, s and
    sigma, and theta: computed once, for the design document's keys and the checks over every parameter.

    The numbers are ArviZ's ``rhat`` (rank-normalised split R-hat) and ``ess`` (bulk, tail) up to
    floating-point rounding, vectorised over the elements (`ratepool.posterior.fast_diagnostics`):
    ArviZ loops over them in Python, about 2.5 minutes over theta at J = 100,000."""
    names = [name for name in CHECKED_PARAMETERS if name in posterior]
    draws = posterior[names]
    return {"r_hat": (rhat_dataset(draws), True),
            "ess_bulk": (ess_dataset(draws, "bulk"), False),
            "ess_tail": (ess_dataset(draws, "tail"), False)}


def _all_parameters(checks: dict[str, tuple[Any, bool]]) -> dict[str, Any]:
    """Worst R-hat and ESS over every parameter `_checks` covers, with where each is worst."""
    every: dict[str, Any] = {}
    for key, (values, largest) in checks.items():
        value, where = _worst(values, largest=largest)
        every[f"{key}_{'max' if largest else 'min'}"] = value
        every[f"{key}_where"] = where
    return every


def _worst(dataset: Any, *, largest: bool) -> tuple[float, str]:
    """The largest (or smallest) value over every variable and element, and its name such as
    ``theta[host-07]``; a NaN counts as worst (a NaN diagnostic must not pass as good)."""
    worst_value, worst_where = (-math.inf if largest else math.inf), ""
    for name in dataset.data_vars:
        array = dataset[name]
        values = np.atleast_1d(array.values).ravel()
        if np.isnan(values).any():
            index = int(np.flatnonzero(np.isnan(values))[0])
        else:
            index = int(values.argmax() if largest else values.argmin())
        value = float(values[index])
        if math.isnan(value) or (value > worst_value if largest else value < worst_value):
            worst_value, worst_where = value, _element_name(array, index)
            if math.isnan(value):
                break
    return worst_value, worst_where


def _element_name(array: Any, flat_index: int) -> str:
    """``name`` for a scalar, ``name[label]`` for an element of a variable with dims."""
    if not array.dims:
        return str(array.name)
    position = np.unravel_index(flat_index, array.shape)
    labels = [str(array[dim].values[i]) for dim, i in zip(array.dims, position)]
    return f"{array.name}[{', '.join(labels)}]"


def _advice(result: Mapping[str, Any]) -> list[str]:
    grades = result["grades"]
    every = result["all_parameters"]
    advice: list[str] = []
    if grades["r_hat"] != GOOD or grades["r_hat_all"] != GOOD:
        advice += ADVICE["r_hat"]
    if grades["r_hat_all"] != GOOD:
        where = every["r_hat_where"]
        plot = (f"var_names=['theta'], coords={{'entity': ['{where[len('theta['):-1]}']}}"
                if where.startswith("theta[") else f"var_names=['{where}']")
        advice.append(f"Worst R-hat is {where}: compare its chains with "
                      f"arviz.plot_trace(idata, {plot})")
    ess_grades = [grades[key] for key in ("ess_bulk", "ess_tail", "ess_bulk_all",
                                          "ess_tail_all")]
    if any(grade != GOOD for grade in ess_grades):
        advice += ADVICE["ess"]
    for key in ("ess_bulk", "ess_tail"):
        if grades[f"{key}_all"] != GOOD:
            advice.append(f"Lowest {key.split('_')[1]} ESS is {every[f'{key}_where']}: its "
                          "estimate and interval are the least precise; raise n_samples")
    if grades["divergences"] != GOOD:
        advice.append(f"{result['divergences']} divergent transitions "
                      f"({result['divergence_share']:.2%} of the draws): see where with "
                      "arviz.plot_pair(idata, var_names=['mu', 'alpha', 'phi'], "
                      "divergences=True)")
        advice += ADVICE["divergences"]
    if grades.get("ebfmi", GOOD) != GOOD:
        low = [f"chain {i + 1}" for i, v in enumerate(result["ebfmi"])
               if not v >= EBFMI_PROBLEM_BELOW]
        advice.append(f"E-BFMI below {EBFMI_PROBLEM_BELOW} in {', '.join(low)}")
        advice += ADVICE["ebfmi"]
    if grades.get("prior_conflict", GOOD) != GOOD:
        advice += conflict_advice(result["prior_sensitivity"])
    if grades.get("treedepth", GOOD) != GOOD:
        advice.append(f"{result['treedepth_hits']} draws reached the maximum tree depth "
                      f"({result['max_treedepth']})")
        advice += ADVICE["treedepth"]
    return advice
