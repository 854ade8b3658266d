"""Turn an engine's `Draws` into an `arviz.InferenceData` with the package's names and dims.

Both engines go through this one function, so their results have identical groups, variable
names, dims and coordinates (entity labels as the ``entity`` coordinate).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import arviz as az
import numpy as np

from ratepool.data.counts import CountData
from ratepool.data.covariates import EntityCovariates
from ratepool.engines.base import Draws
from ratepool.model.description import MODEL_ATTR, ModelDescription, description_attr
from ratepool.model.standata import exposure_scale

log = logging.getLogger(__name__)

__all__ = ["build_inference_data", "build_prior_data", "PARAMETERS", "PREDICTIVE_COUNTS", "DIMS",
           "BYTES_OUTPUTS"]

#: Population-level parameters, as named in Stan and in the InferenceData.
PARAMETERS = ("mu", "alpha", "phi")
#: Predictive variables that hold integer counts (Stan returns them as reals; see the program).
PREDICTIVE_COUNTS = ("y_rep", "y_pred", "y_rep_total", "y_rep_zeros", "y_new")

#: Dims of every output variable, by its name in the InferenceData (same in every group).
DIMS: dict[str, list[str]] = {
    **{name: ["entity"] for name in ("theta", "y_pred", "y_rep_total", "y_rep_zeros",
                                     "entity_total", "entity_zeros", "n_windows",
                                     "entity_windows")},
    **{name: ["obs"] for name in ("y_rep", "y", "entity_index", "exposure")},
    "beta": ["covariate"],
    "covariate_scaled": ["entity", "covariate"],
    # Bytes (`ratepool.model.event_bytes`); "bytes" is the name of the bytes' log likelihood and of
    # the observed bytes per row.
    **{name: ["entity"] for name in ("m", "bytes_pred", "bytes_windows")},
    **{name: ["obs"] for name in ("bytes_rep", "bytes")},
}
#: Parameters that only some model options add (absent from the InferenceData otherwise):
#: beta with covariates, pi with zero-inflation.
OPTION_PARAMETERS = ("beta", "pi")
#: Parameters of the AR(1) temporal model (`ratepool.model.temporal`), absent otherwise.
#: Stan names of the exact prior draws (size-1 arrays for the scalars).
_PRIOR_NAMES = {"mu": "mu_prior", "alpha": "alpha_prior", "phi": "phi_prior",
                "beta": "beta_prior", "pi": "pi_prior", "theta": "theta_prior",
                "theta_new": "theta_new", "m0": "m0_prior", "tau": "tau_prior",
                "sigma_w": "sigma_w_prior", "sigma_e": "sigma_e_prior", "m": "m_prior",
                "m_new": "m_new"}
#: Stan scalars returned as size-1 arrays (size 0 when their option is off).
_SIZE_ONE = ("mu_prior", "alpha_prior", "phi_prior", "pi_prior", "pi", "m0", "tau", "sigma_w",
             "sigma_e", "m0_prior", "tau_prior", "sigma_w_prior", "sigma_e_prior", "m_new")
#: The bytes factor's outputs: posterior (parameters and m_new, the log mean bytes per event
#: of an unseen entity) and posterior predictive (bytes of replicated windows).
BYTES_OUTPUTS = {"posterior": ("m0", "tau", "sigma_w", "sigma_e", "m", "m_new"),
                 "posterior_predictive": ("bytes_rep", "bytes_pred")}


def _as_counts(values: np.ndarray, name: str) -> np.ndarray:
    """Integer-valued draws as int64; float64 if any exceeds int64 (only absurd prior rates do)."""
    if np.isfinite(values).all() and np.abs(values).max(initial=0.0) < 2.0**63:
        return np.rint(values).astype(np.int64)
    log.warning("%s has draws beyond the int64 range (or non-finite); kept as float64", name)
    return values


def _pick(variables: dict[str, np.ndarray], names: dict[str, str]) -> dict[str, np.ndarray]:
    """{output name: array} for the Stan names present in ``variables``."""
    picked = {}
    for out_name, stan_name in names.items():
        if stan_name in variables:
            values = variables[stan_name]
            if values.size == 0:  # a variable of a switched-off option or output
                continue
            if stan_name in _SIZE_ONE:
                if values.shape[-1] == 0:
                    continue
                values = values[..., 0]
            if stan_name in ("beta", "beta_prior") and values.shape[-1] == 0:
                continue
            picked[out_name] = (_as_counts(values, out_name) if out_name in PREDICTIVE_COUNTS
                                else values)
    return picked


def _observed(data: CountData) -> dict[str, np.ndarray]:
    observed: dict[str, np.ndarray] = {"entity_total": data.entity_total}
    if data.has_rows:
        observed["y"] = data.y
    zeros = data.entity_zeros  # from the rows, or from the windows grouped where they live
    if zeros is not None:
        observed["entity_zeros"] = zeros
    return observed


def _has(variables: dict[str, np.ndarray], name: str) -> bool:
    """Whether the draws (or the prior draws, ``<name>_prior``) hold a non-empty ``name``."""
    return any(np.size(variables.get(key, ())) > 0 for key in (name, f"{name}_prior"))


def _constant(data: CountData) -> dict[str, np.ndarray]:
    constant: dict[str, np.ndarray] = {"n_windows": data.n_windows}
    if data.has_rows:
        constant["entity_index"] = data.entity_index + 1
    if data.exposure is not None:
        constant["exposure"] = data.exposure
    if data.covariates is not None:
        constant["covariate_scaled"] = data.covariates.scaled
    return constant


def _observed_bytes(data: CountData) -> dict[str, np.ndarray]:
    return {} if data.window_bytes is None else {"bytes": data.window_bytes}


#: Draws per exposure unit: divided by the exposure scale to be per the user's unit
#: (posterior and prior names); alpha (units 1 / rate) is multiplied by it.
_PER_EXPOSURE = ("mu", "theta", "theta_from_raw", "theta_new", "mu_prior", "theta_prior",
                 "lambda")
#: Attribute of ``constant_data``: the exposure the programs saw as one unit, in the user's.
EXPOSURE_SCALE_ATTR = "ratepool_exposure_scale"
_PER_RATE = ("alpha", "alpha_prior")


def in_user_units(variables: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
    """Draws of a program that saw ``exposure / scale`` (`ratepool.model.standata.
    exposure_scale`), per the user's exposure unit: rates / scale, alpha x scale. E[theta] =
    mu and Var(theta) = mu / alpha hold in either unit; phi, beta, pi and the rest do not
    depend on it."""
    if scale == 1.0:
        return variables
    out = dict(variables)
    for name in _PER_EXPOSURE:
        if name in out:
            out[name] = np.asarray(out[name]) / scale
    for name in _PER_RATE:
        if name in out:
            out[name] = np.asarray(out[name]) * scale
    return out


def build_inference_data(
    draws: Draws, data: CountData, *, prior: Draws | None = None,
    scale: float | None = None,
) -> az.InferenceData:
    """Assemble the InferenceData of a fit (and optionally its prior draws).

    Groups: ``posterior`` (mu, alpha, phi, theta[entity], theta_new),
    ``posterior_predictive`` (y_rep[obs], y_pred / y_rep_total / y_rep_zeros [entity], y_new;
    integer dtype), ``log_likelihood`` (y[obs]; entity_windows[entity], the sum of y's over
    the entity's rows, for leave-one-entity-out LOO; entity_total[entity], the log density of
    the entity's total), ``sample_stats``,
    ``observed_data`` (y[obs], entity_total and entity_zeros [entity]), ``constant_data``
    (n_windows[entity], entity_index[obs], 1-based), ``log_prior`` (lprior, the
    hyperparameters' joint log prior density per draw); with ``prior``: ``prior`` and
    ``prior_predictive``.

    Rates are per the user's exposure unit: the draws of a program that saw
    ``exposure / scale`` (by default `ratepool.model.standata.exposure_scale` of ``data``) are
    converted with `in_user_units`.
    """
    scale = exposure_scale(data) if scale is None else float(scale)
    coords: dict[str, Any] = {"entity": np.asarray(data.labels)}
    if data.covariates is not None:
        coords["covariate"] = list(data.covariates.names)
    if data.has_rows:
        coords["obs"] = np.arange(len(data.y))
    predictive = {name: name for name in ("y_rep", "y_pred", "y_rep_total", "y_rep_zeros",
                                          "y_new", *BYTES_OUTPUTS["posterior_predictive"])}
    variables = in_user_units(dict(draws.variables), scale)
    if "theta_from_raw" in variables:  # the non-centred parameterisation's entity rates
        variables["theta"] = variables.pop("theta_from_raw")
    if "log_lik" in variables and data.has_rows:
        variables["log_lik_by_entity"] = _sum_by_entity(variables["log_lik"], data)
    groups: dict[str, Any] = {
        "posterior": _pick(variables, {name: name for name in
                                             (*PARAMETERS, *OPTION_PARAMETERS, "theta",
                                              "theta_new", *BYTES_OUTPUTS["posterior"])}),
        "posterior_predictive": _pick(variables, predictive),
        "log_likelihood": _pick(variables, {"y": "log_lik",
                                             "entity_total": "log_lik_entity",
                                             "entity_windows": "log_lik_by_entity",
                                             "bytes": "bytes_log_lik"}),
        "sample_stats": draws.sample_stats,
        "observed_data": {**_observed(data), **_observed_bytes(data)},
        "constant_data": _constant(data),
    }
    if prior is not None:
        prior_variables = in_user_units(dict(prior.variables), scale)
        groups["prior"] = _pick(prior_variables, _PRIOR_NAMES)
        groups["prior_predictive"] = _pick(prior_variables, predictive)
    idata = _from_dict(groups, coords)
    if "lprior" in variables:  # the hyperparameters' log prior (older CmdStan CSVs lack it)
        idata.add_groups(log_prior=az.dict_to_dataset({"lprior": variables["lprior"]}))
    if "constant_data" in idata.groups():  # the unit the programs saw, per the user's unit
        idata.constant_data.attrs[EXPOSURE_SCALE_ATTR] = scale
    if data.covariates is not None and "constant_data" in idata.groups():
        idata.constant_data.attrs[COVARIATES_ATTR] = json.dumps(data.covariates.encoding())
    if "constant_data" in idata.groups():
        found = {**(dict(prior.variables) if prior is not None else {}), **draws.variables}
        idata.constant_data.attrs[MODEL_ATTR] = description_attr(ModelDescription(
            exposure=data.has_exposure,
            covariates=tuple(data.covariates.names) if data.covariates is not None else (),
            zero_inflation=_has(found, "pi"), bytes=data.window_bytes is not None,
            temporal=_has(found, "rho")))
    return idata


def build_prior_data(prior: Draws, data: CountData,
                     scale: float | None = None) -> az.InferenceData:
    """InferenceData holding only ``prior`` and ``prior_predictive`` (and the data groups)."""
    empty = Draws(variables={}, sample_stats={}, engine=prior.engine)
    return build_inference_data(empty, data, prior=prior, scale=scale)


def _sum_by_entity(log_lik: np.ndarray, data: CountData) -> np.ndarray:
    """(chain, draw, obs) pointwise log likelihood summed over each entity's rows."""
    order = np.argsort(data.entity_index, kind="stable")
    starts = np.concatenate([[0], np.cumsum(data.n_windows)[:-1]])
    return np.add.reduceat(log_lik[..., order], starts, axis=-1)


#: Attribute of the ``constant_data`` group holding the covariate encoding (JSON), so that a
#: reloaded fit can place new entities (`ratepool.data.covariates.EntityCovariates.from_encoding`).
COVARIATES_ATTR = "ratepool_covariates"


def _from_dict(groups: dict[str, Any], coords: dict[str, Any]) -> az.InferenceData:
    present = {group: variables for group, variables in groups.items() if variables}
    return az.from_dict(**present, coords=coords, dims=DIMS)


def covariate_encoding(idata: az.InferenceData) -> "EntityCovariates | None":
    """The covariate encoding a fit was made with, or None without covariates."""
    from ratepool.data.covariates import EntityCovariates

    constant = getattr(idata, "constant_data", None)
    text = None if constant is None else constant.attrs.get(COVARIATES_ATTR)
    return None if text is None else EntityCovariates.from_encoding(json.loads(text))
