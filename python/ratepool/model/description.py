"""One description of a model: which options are on, which Stan program runs, which variables
it writes (with their sizes), and which tables apply.

Every consumer (inference, summaries, diagnostics, results folder, plots, export, reading a
CmdStan run back, SBC, scale-out, compare) asks a `ModelDescription` instead of testing the
option flags of `ModelConfig` or the fields of `CountData` itself. The options are interpreted
here, in the Stan programs, in the data readers and in the CLI flags.

A description is built from what is at hand: the data and config of a fit (`describe`), a
config alone before the data are read (`describe_config`), a data JSON written for CmdStan
(`describe_stan_data`), or a fit's InferenceData (`describe_inference_data`). The four agree
on the same model.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ratepool.model.event_bytes import BYTES_PARAMETERS
from ratepool.model.program import PROGRAM_FILE, TEMPORAL_PROGRAM_FILE
from ratepool.model.temporal import TEMPORAL_PARAMETERS

if TYPE_CHECKING:
    from ratepool.data.counts import CountData
    from ratepool.model.config import ModelConfig

__all__ = ["ModelDescription", "OPTIONS", "BASE_PARAMETERS", "POPULATION_PARAMETERS",
           "CHECKED_PARAMETERS",
           "describe", "describe_config", "describe_stan_data", "describe_inference_data",
           "MODEL_ATTR", "description_attr"]

#: The model options, by the names the CLI (``compare --candidates``) and the docs use.
OPTIONS = ("exposure", "covariates", "zero-inflation", "bytes", "temporal")
#: The population-level parameters of every model.
BASE_PARAMETERS = ("mu", "alpha", "phi")
#: Parameters each option adds (the bytes factor's include the per-entity m).
_OPTION_PARAMETERS = {"covariates": ("beta",), "zero-inflation": ("pi",),
                      "bytes": BYTES_PARAMETERS, "temporal": TEMPORAL_PARAMETERS}
#: The per-entity parameters among them (not population-level).
_ENTITY_PARAMETERS = ("m",)


def _parameters(options: tuple[str, ...], *, entity: bool) -> tuple[str, ...]:
    """mu, alpha, phi and the parameters ``options`` add, in report order (with the
    per-entity ones and theta when ``entity``)."""
    added = tuple(name for option in options for name in _OPTION_PARAMETERS.get(option, ())
                  if entity or name not in _ENTITY_PARAMETERS)
    return BASE_PARAMETERS + added + (("theta",) if entity else ())


#: Every population-level parameter any model has, in report order.
POPULATION_PARAMETERS = _parameters(OPTIONS, entity=False)
#: Every parameter the convergence checks of any model cover, in report order.
CHECKED_PARAMETERS = _parameters(OPTIONS, entity=True)
#: Tables of a results folder that only some options give (option -> table name).
_OPTION_TABLES = {"covariates": "coefficients", "bytes": "bytes", "temporal": "temporal"}
#: Entity predictive outputs of the static program (y_pred, replicated totals and zeros).
_ENTITY_OUTPUTS = ("y_pred", "y_rep_total", "y_rep_zeros", "log_lik_entity")


@dataclass(frozen=True)
class ModelDescription:
    """Which model a fit is: its options and what follows from them.

    Attributes
    ----------
    exposure : bool
        Windows have an exposure (mean count = exposure x theta_i).
    covariates : tuple of str
        Names of the encoded covariate columns (the program's ``P`` columns; empty without).
    zero_inflation : bool
        The zero-inflated likelihood (parameter pi).
    bytes : bool
        The bytes factor (`ratepool.model.event_bytes`).
    temporal : bool
        The AR(1) temporal program (`ratepool.model.temporal`).
    """

    exposure: bool = False
    covariates: tuple[str, ...] = ()
    zero_inflation: bool = False
    bytes: bool = False
    temporal: bool = False

    # ---- the options ------------------------------------------------------------------------
    @property
    def options(self) -> tuple[str, ...]:
        """The options that are on, in `OPTIONS` order (empty for the base model)."""
        on = {"exposure": self.exposure, "covariates": bool(self.covariates),
              "zero-inflation": self.zero_inflation, "bytes": self.bytes,
              "temporal": self.temporal}
        return tuple(option for option in OPTIONS if on[option])

    @property
    def is_base(self) -> bool:
        """True for the base model (every option off)."""
        return not self.options

    @property
    def program_file(self) -> str:
        """File name of the Stan program that fits this model."""
        return TEMPORAL_PROGRAM_FILE if self.temporal else PROGRAM_FILE

    # ---- what the program writes ------------------------------------------------------------
    @property
    def population_parameters(self) -> tuple[str, ...]:
        """Population-level parameters: mu, alpha, phi and what the options add."""
        return _parameters(self.options, entity=False)

    @property
    def checked_parameters(self) -> tuple[str, ...]:
        """Every parameter the convergence checks cover: the population-level ones, the
        bytes factor's per-entity m, and theta."""
        return _parameters(self.options, entity=True)

    @property
    def tables(self) -> tuple[str, ...]:
        """The option tables a results folder gets: ``coefficients``, ``bytes``,
        ``temporal``."""
        return tuple(_OPTION_TABLES[option] for option in self.options
                     if option in _OPTION_TABLES)

    @property
    def entity_law_closed_form(self) -> bool:
        """Whether an entity's total over its windows has a closed-form law given theta and
        phi (a sum of iid NB2 windows): then the per-entity predictive draws and
        ``log_lik_entity`` can be derived from theta and phi after the fit. Not with exposure
        (windows differ) or zero-inflation (structural zeros)."""
        return not (self.exposure or self.zero_inflation or self.temporal)

    @property
    def export_keeps_rows(self) -> bool:
        """Whether an exported data JSON must hold the rows so that a CmdStan run can be read
        back (per-window exposures, zeros and bytes)."""
        return self.exposure or self.zero_inflation or self.bytes

    @property
    def rows_reason(self) -> str | None:
        """The option that needs the rows in memory (not only DuckDB's aggregates), or None."""
        if self.bytes:
            return "bytes_col (the bytes factor's per-window statistics)"
        if self.temporal:
            return "the temporal model (windows in time order)"
        return None

    @property
    def entity_marginal_likelihood(self) -> bool:
        """Whether ratepool integrates an entity's rate out of its likelihood (for
        leave-one-entity-out LOO, `ratepool.posterior.entity_marginal`): not for the temporal
        model, whose latent AR(1) path would have to be integrated out too."""
        return not self.temporal

    @property
    def warm_startable(self) -> bool:
        """Whether `ratepool.model.warm_start` can start the sampler (base model only)."""
        return self.is_base

    def outputs(self, stan_data: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        """The non-empty outputs (name -> dims) of a posterior run of the program on
        ``stan_data`` (the sizes and output switches come from it)."""
        n_entities, n_rows = int(stan_data["J"]), int(stan_data["N"])
        obs, entity = int(stan_data["obs_predictions"]), int(stan_data["entity_predictions"])
        outputs: dict[str, tuple[int, ...]] = {name: () for name in BASE_PARAMETERS}
        outputs.update(theta_new=(), y_new=())
        if obs:
            outputs.update(y_rep=(n_rows,), log_lik=(n_rows,))
        if self.temporal:
            outputs.update(theta=(n_entities,), rho=(), s=(), sigma=(), z=(n_rows,))
            if int(stan_data["path_output"]):
                outputs["lambda"] = (n_rows,)
            if entity:
                outputs.update({name: (n_entities,) for name in
                                ("y_next", "y_pred", "y_rep_total", "y_rep_zeros")})
            return outputs
        outputs.update(_rate_outputs(self, stan_data, n_entities))
        if entity:
            outputs.update({name: (n_entities,) for name in _ENTITY_OUTPUTS})
            if not self.entity_law_closed_form:
                del outputs["log_lik_entity"]
        if self.covariates:
            outputs["beta"] = (len(self.covariates),)
        if self.zero_inflation:
            outputs["pi"] = (1,)
        if self.bytes:
            outputs.update({name: (1,) for name in BYTES_PARAMETERS[:-1]}, m=(n_entities,),
                           m_new=(1,))
            if obs:
                outputs.update(bytes_rep=(n_rows,), bytes_log_lik=(n_rows,))
            if entity:
                outputs["bytes_pred"] = (n_entities,)
        return outputs


def _rate_outputs(model: ModelDescription, stan_data: Mapping[str, Any],
                  n_entities: int) -> dict[str, tuple[int, ...]]:
    """The static program's entity-rate outputs: theta, or the coordinates it is sampled in
    (non-centred: theta_raw; zero-inflation: log_theta_events and, for entities without events,
    log_g and neg_log_u) with the rates as theta_from_raw."""
    if int(stan_data["non_centered"]):
        return {"theta_raw": (n_entities,), "theta_from_raw": (n_entities,)}
    if not model.zero_inflation:
        return {"theta": (n_entities,)}
    totals = np.asarray(stan_data.get("entity_total", ()), dtype=float)
    n_zero = int(np.sum(totals == 0))
    sizes = (("log_theta_events", n_entities - n_zero), ("log_g", n_zero), ("neg_log_u", n_zero))
    return {**{name: (size,) for name, size in sizes if size},
            "theta_from_raw": (n_entities,)}


def describe(data: CountData, config: ModelConfig) -> ModelDescription:
    """The model a fit of ``data`` under ``config`` is: exposure, covariates and bytes as the
    data hold them, zero-inflation and temporal as the config asks."""
    return ModelDescription(
        exposure=data.has_exposure,
        covariates=tuple(data.covariates.names) if data.covariates is not None else (),
        zero_inflation=config.zero_inflation, bytes=data.window_bytes is not None,
        temporal=config.temporal is not None)


def describe_config(config: ModelConfig) -> ModelDescription:
    """The model ``config`` asks for before its data are read (covariates by their source
    columns, not yet encoded)."""
    return ModelDescription(
        exposure=config.exposure_col is not None, covariates=tuple(config.covariates),
        zero_inflation=config.zero_inflation, bytes=config.bytes_col is not None,
        temporal=config.temporal is not None)


#: Fields only the temporal program's data block has.
TEMPORAL_FIELDS = frozenset({"gap", "s_sd", "path_output"})


def describe_stan_data(values: Mapping[str, Any]) -> ModelDescription:
    """The model a data JSON written for CmdStan (`ratepool.write_stan_data`) describes."""
    if TEMPORAL_FIELDS & set(values):
        return ModelDescription(exposure=bool(int(values.get("has_exposure", 0))),
                                temporal=True)
    n_covariates = int(values.get("P", 0) or 0)
    return ModelDescription(
        exposure=bool(int(values.get("has_exposure", 0) or 0)),
        covariates=tuple(f"x{p + 1}" for p in range(n_covariates)),
        zero_inflation=bool(int(values.get("zero_inflation", 0) or 0)),
        bytes=bool(int(values.get("has_bytes", 0) or 0)))


#: Attribute of an InferenceData's ``constant_data``: its model description (JSON).
MODEL_ATTR = "ratepool_model"


def description_attr(model: ModelDescription) -> str:
    """``model`` as the JSON text kept in `MODEL_ATTR`."""
    return json.dumps(dataclasses.asdict(model))


def describe_inference_data(idata: Any) -> ModelDescription:
    """The model a fit's InferenceData holds: the description recorded when it was built
    (`MODEL_ATTR`), or for a file written before that, what its variables show."""
    constant = idata.get("constant_data")
    if constant is not None and MODEL_ATTR in constant.attrs:
        fields = json.loads(constant.attrs[MODEL_ATTR])
        return ModelDescription(**{**fields, "covariates": tuple(fields["covariates"])})
    posterior = idata.get("posterior")
    if posterior is None:
        posterior = {}
    covariates: tuple[str, ...] = ()
    if "beta" in posterior:
        beta = posterior["beta"]
        covariates = (tuple(str(c) for c in beta.coords["covariate"].values)
                      if "covariate" in beta.coords else
                      tuple(f"x{p + 1}" for p in range(beta.shape[-1])))
    return ModelDescription(
        exposure=constant is not None and "exposure" in constant,
        covariates=covariates, zero_inflation="pi" in posterior, bytes="m0" in posterior,
        temporal="rho" in posterior)
