"""Prior–data conflict: power-scaling sensitivity of the hyperparameters (ArviZ's ``psens``).

The Stan programs write ``lprior``, the joint log prior density of the hyperparameters at each
draw (as brms does), and ratepool puts it in the ``log_prior`` group. Power-scaling a component
of the posterior by a factor near 1 and importance-weighting the draws shows how much each
hyperparameter's posterior moves (Kallioinen et al. 2023, the method of the priorsense package,
implemented by `arviz.psens`). Two components are scaled:

- the **prior**: ``lprior``;
- the **data level**: the per-row log likelihood (``log_likelihood.y``, and ``bytes`` with
  bytes) plus the population model of the entities, log Gamma(theta_i | mu_i alpha, alpha) (and
  log Normal(m_i | m0, tau) with bytes), computed here with scipy. The population term is how
  the data reach the hyperparameters: alpha appears in no likelihood term, so the likelihood
  alone would call every hierarchical hyperparameter "weakly informed" (on simulated data with
  mean rate 0.05 its sensitivity was 0.03 while the prior's was 0.46).

A hyperparameter is in **prior–data conflict** when both sensitivities are high: its prior's at
least `CONFLICT_THRESHOLD` (0.1) and the data level's at least `SENSITIVITY_THRESHOLD` (0.05,
priorsense's threshold). The prior's threshold is twice priorsense's 0.05 because 0.05 flags any
informative prior: the bundled example data give phi a prior sensitivity of 0.045-0.049 over
seeds (phi near 3 against HalfNormal(2), a mild pull), while the fights this check is for give
0.19-0.67 (alpha with mean rate 0.05, phi with near-Poisson windows). Graded Warning with the
setting to change; priors between 0.05 and 0.1, or sensitive to the prior alone, are reported
as ``informative`` (Good). Without a per-row log likelihood (per-row outputs off on large data)
only the prior is measured, and a prior sensitivity of at least 0.1 is graded as a conflict.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import arviz as az
import numpy as np
import xarray as xr
from scipy import stats

__all__ = ["prior_sensitivity", "conflict_advice", "SENSITIVITY_THRESHOLD",
           "CONFLICT_THRESHOLD", "PRIOR_SETTINGS"]

#: priorsense's threshold: a power-scaling sensitivity of at least this counts.
SENSITIVITY_THRESHOLD = 0.05
#: A prior sensitivity of at least this (with a data-level one of at least 0.05) is a conflict.
CONFLICT_THRESHOLD = 0.1

#: The hyperparameters whose priors ``lprior`` holds, with the setting of each prior.
PRIOR_SETTINGS = {
    "mu": "mu_prior_rate (Exponential): set it near 1 / typical rate",
    "alpha": "alpha_prior_sd (HalfNormal): widen it, e.g. to 10 or more; alpha sets the spread "
             "of the entity rates, CV(theta) = 1 / sqrt(mu * alpha), so a narrow prior forces "
             "a wide spread when the mean rate is small",
    "phi": "overdispersion_prior_sd (HalfNormal): widen it, e.g. to 20 or more; near-Poisson "
           "windows need a large phi",
    "beta": "beta_prior_sd (Normal): widen it",
    "pi": "pi has a uniform prior; the conflict comes through the other parameters",
    "m0": "bytes_m0_prior_mean / bytes_m0_prior_sd (Normal): centre it on the data's log bytes "
          "per event or widen it",
    "tau": "bytes_tau_prior_sd (HalfNormal): widen it",
    "sigma_w": "bytes_sigma_w_prior_sd (HalfNormal): widen it",
    "sigma_e": "bytes_sigma_e_prior_sd (HalfNormal): widen it",
    "rho": "rho has a fixed scaled Beta(2, 2) prior on (-1, 1); the conflict comes through the "
           "other parameters",
    "s": "stationary_sd_prior_sd (HalfNormal): widen it",
    "sigma": "sigma = s sqrt(1 - rho^2) has no prior of its own: see s and rho "
             "(stationary_sd_prior_sd)",
}

#: Log likelihood variables of the data (not entity_windows or entity_total: sums of ``y``).
_LIKELIHOOD_VARIABLES = ("y", "bytes")


def prior_sensitivity(idata: az.InferenceData) -> dict[str, Any] | None:
    """Power-scaling sensitivity of each hyperparameter to its prior and to the data level.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fit with a ``log_prior`` group (``lprior``; fits and CmdStan runs of programs before
        lprior have none).

    Returns
    -------
    dict or None
        None without ``log_prior``. Otherwise ``prior`` and ``data``: {parameter:
        sensitivity}, elements of vectors named like ``beta[x1]`` (``data`` None when the fit
        has no per-row log likelihood); ``conflict``: the parameters in prior–data conflict
        (see the module); ``informative``: the other parameters whose prior sensitivity is at
        least 0.05; ``thresholds``.
    """
    if "log_prior" not in idata.groups():
        return None
    names = [name for name in PRIOR_SETTINGS if name in idata.posterior]
    prior = _sensitivity(idata, "prior", names)
    data_level = _data_log_density(idata)
    data = None
    if data_level is not None:
        scaled = az.InferenceData(posterior=idata.posterior, log_prior=idata.log_prior,
                                  log_likelihood=data_level.to_dataset(name="data"))
        data = _sensitivity(scaled, "likelihood", names)
    conflict = [name for name, value in prior.items() if value >= CONFLICT_THRESHOLD
                and (data is None or data[name] >= SENSITIVITY_THRESHOLD)]
    informative = [name for name, value in prior.items()
                   if value >= SENSITIVITY_THRESHOLD and name not in conflict]
    return {"prior": prior, "data": data, "conflict": conflict, "informative": informative,
            "thresholds": {"sensitive": SENSITIVITY_THRESHOLD, "conflict": CONFLICT_THRESHOLD}}


def _data_log_density(idata: az.InferenceData) -> Any:
    """(chain, draw) log density of the data level: the per-row log likelihood plus the
    entities' population model (theta, and m with bytes); None without a per-row one."""
    likelihood = idata.get("log_likelihood")
    if likelihood is None or "y" not in likelihood:
        return None
    total = sum(likelihood[name].sum([d for d in likelihood[name].dims
                                      if d not in ("chain", "draw")])
                for name in _LIKELIHOOD_VARIABLES if name in likelihood)
    post = idata.posterior
    shape = post["mu"] * post["alpha"]
    constant = idata.get("constant_data")
    if "beta" in post and constant is not None and "covariate_scaled" in constant:
        shape = shape * np.exp(xr_dot(constant["covariate_scaled"], post["beta"]))
    total = total + xr_logpdf(stats.gamma.logpdf, post["theta"], shape,
                              scale=1 / post["alpha"])
    if "m" in post:
        total = total + xr_logpdf(stats.norm.logpdf, post["m"], post["m0"], scale=post["tau"])
    return total


def xr_dot(matrix: Any, vector: Any) -> Any:
    """(entity, covariate) x (..., covariate) -> (..., entity)."""
    return (matrix * vector).sum("covariate")


def xr_logpdf(logpdf: Any, values: Any, *args: Any, scale: Any) -> Any:
    """scipy ``logpdf`` on aligned DataArrays, summed over every dim but chain and draw."""
    density = xr.apply_ufunc(lambda v, s, *a: logpdf(v, *a, scale=s), values, scale, *args)
    return density.sum([d for d in density.dims if d not in ("chain", "draw")])


def _sensitivity(idata: az.InferenceData, component: str, names: list[str]) -> dict[str, float]:
    """{parameter or element: sensitivity} of ``az.psens`` for one component."""
    with warnings.catch_warnings():
        # psens warns when Pareto-smoothing finds heavy-tailed weights; the value is still
        # the diagnostic priorsense reports
        warnings.simplefilter("ignore")
        result = az.psens(idata, component=component, var_names=names)
    values: dict[str, float] = {}
    for name in names:
        array = result[name]
        flat = np.atleast_1d(array.values).ravel()
        if not array.dims:
            values[name] = float(flat[0])
            continue
        labels = [str(label) for label in array[array.dims[0]].values]
        values.update({f"{name}[{label}]": float(v) for label, v in zip(labels, flat)})
    return values


def parameter_of(element: str) -> str:
    """``beta`` for ``beta[x1]``; the name itself for a scalar."""
    return element.split("[", 1)[0]


def conflict_advice(sensitivity: Mapping[str, Any]) -> list[str]:
    """One line per hyperparameter in conflict with its prior: the sensitivities and what to
    change."""
    data = sensitivity["data"]
    lines, seen = [], set()
    for element in sensitivity["conflict"]:
        name = parameter_of(element)
        pull = (f"data level {data[element]:.2f}" if data is not None
                else "data level not measured: no per-row log likelihood")
        measured = f"(prior sensitivity {sensitivity['prior'][element]:.2f}, {pull})"
        if name in seen:
            lines.append(f"Prior-data conflict also on {element} {measured}")
            continue
        seen.add(name)
        lines.append(f"Prior-data conflict on {element} {measured}: the data pull against the "
                     f"{name} prior; {PRIOR_SETTINGS[name]}")
    return lines
