"""CmdStan run by hand, read back: `fit_result_from_run` checks that CmdStan's CSVs are a
posterior run of one of ratepool's programs on the exported data (`ratepool.workflow.cmdstan_files`)
and returns the same `FitResult` as `ratepool.fit` of that program.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ratepool.engines.cmdstan_csv import CmdStanRun
from ratepool.errors import ConfigError, DataError
from ratepool.model.config import ModelConfig
from ratepool.posterior.fit_result import FitResult
from ratepool.posterior.inference import build_inference_data
from ratepool.model.standata import recorded_exposure_scale
from ratepool.workflow.cmdstan_files import STATIC_PROGRAM, model_config, read_stan_data
from ratepool.workflow.cmdstan_temporal import (
    TEMPORAL_PROGRAM,
    is_temporal_data,
    temporal_inference_data,
    temporal_outputs,
)
from ratepool.workflow.fit import _with_data_columns


def _expected_outputs(stan_data: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The non-empty outputs (name -> dims) of a posterior run of the program on ``stan_data``
    (the temporal program's for its data JSON)."""
    if is_temporal_data(stan_data):
        return temporal_outputs(stan_data)
    n_entities, n_rows = int(stan_data["J"]), int(stan_data["N"])
    outputs: dict[str, tuple[int, ...]] = {"mu": (), "alpha": (), "phi": (), "theta_new": (),
                                           "y_new": ()}
    if int(stan_data["non_centered"]):
        outputs.update(theta_raw=(n_entities,), theta_from_raw=(n_entities,))
    elif int(stan_data.get("zero_inflation", 0)):
        # The rates through log_theta_events and, for entities without events, log_g and
        # neg_log_u (see the Stan file's parameters block).
        n_zero = int(np.sum(np.asarray(stan_data.get("entity_total", ()), dtype=float) == 0))
        outputs.update({name: (size,) for name, size in
                        (("log_theta_events", n_entities - n_zero), ("log_g", n_zero),
                         ("neg_log_u", n_zero)) if size},
                       theta_from_raw=(n_entities,))
    else:
        outputs.update(theta=(n_entities,))
    obs, entity = int(stan_data["obs_predictions"]), int(stan_data["entity_predictions"])
    if obs:
        outputs.update(y_rep=(n_rows,), log_lik=(n_rows,))
    if entity:
        outputs.update({name: (n_entities,) for name in
                        ("y_pred", "y_rep_total", "y_rep_zeros", "log_lik_entity")})
        if int(stan_data.get("G", 0)):  # exposure or zero-inflation: no closed-form total law
            del outputs["log_lik_entity"]
    if int(stan_data.get("P", 0)):
        outputs["beta"] = (int(stan_data["P"]),)
    if int(stan_data.get("zero_inflation", 0)):
        outputs["pi"] = (1,)
    if int(stan_data.get("has_bytes", 0)):
        outputs.update(m0=(1,), tau=(1,), sigma_w=(1,), sigma_e=(1,), m=(n_entities,),
                       m_new=(1,))
        if obs:
            outputs.update(bytes_rep=(n_rows,), bytes_log_lik=(n_rows,))
        if entity:
            outputs["bytes_pred"] = (n_entities,)
    return outputs


#: Outputs only the temporal program has (how its CSVs are told from the static program's).
_TEMPORAL_ONLY = frozenset({"rho", "sigma", "z"})


def _program_of(outputs: Any) -> str:
    """The program whose outputs these are, by name."""
    return TEMPORAL_PROGRAM if _TEMPORAL_ONLY <= set(outputs) else STATIC_PROGRAM


def check_ratepool_run(run: CmdStanRun, stan_data: dict[str, Any]) -> None:
    """Raise `DataError` unless the CSVs are a posterior run of ratepool's program on this data:
    NUTS, and exactly the outputs (names and sizes) the program gives for that data JSON. The
    message names both programs when the CSVs are a run of the other one."""
    if int(stan_data.get("prior_only", 0)):
        raise DataError("the data JSON has prior_only = 1: these are prior draws, not a posterior; "
                        "export the data without --prior-only and sample again")
    if run.setting("algorithm") == "fixed_param":
        raise DataError("the CSVs come from the fixed_param sampler, not NUTS; there is no "
                        "posterior to report")
    found = {name: tuple(values.shape[2:]) for name, values in run.draws.variables.items()
             if name != "lprior"}  # optional: the programs before lprior did not write it
    expected = _expected_outputs(stan_data)
    if found == expected:
        return
    program, ran = _program_of(expected), _program_of(found)
    if ran != program:
        raise DataError(
            f"the CSVs are a run of {ran} (model {run.setting('model')!r}), but the data JSON "
            f"is for {program}: give the data JSON that CmdStan read for this run (the CSV "
            "header's 'data file'), or the CSVs of the program run on this JSON")
    differ = sorted(name for name in set(found) | set(expected)
                    if found.get(name) != expected.get(name))
    shown = {name: (found.get(name), expected.get(name)) for name in differ[:6]}
    raise DataError(
        f"the CSVs are not a run of ratepool's program ({program}) on this data JSON: outputs "
        f"differ as (in the CSVs, expected) {shown}. Give the data JSON CmdStan read, and CSVs "
        "of this version's program"
    )


def config_from_run(run: CmdStanRun, stan_data: dict[str, Any]) -> ModelConfig:
    """The `ModelConfig` equivalent to a CmdStan run on an exported data JSON: its model
    settings (`model_config`) with the run's sampler settings.

    A seed outside ModelConfig's range (CmdStan draws its own up to 2^32 - 1 when none is
    given) is replaced by the default; the run record keeps CmdStan's seed.
    """
    chains, draws = run.draws.variables["mu"].shape[:2]
    seed = run.setting("seed", ModelConfig.random_seed)
    if not isinstance(seed, int) or not 0 <= seed <= 2**31 - 1:
        seed = ModelConfig.random_seed
    try:
        return model_config(stan_data).replace(
            n_samples=int(draws), n_tune=int(run.setting("num_warmup", 0)),
            n_chains=int(chains), target_accept=float(run.setting("delta", 0.8)),
            random_seed=seed)
    except ConfigError as error:
        raise DataError(f"cannot rebuild the run's settings from the CSVs and data JSON: "
                        f"{error}") from None


def fit_result_from_run(
    run: CmdStanRun, data_json: str | Path, labels_path: str | Path | None = None
) -> FitResult:
    """A `FitResult` of a CmdStan run on a data JSON written by `write_stan_data`.

    The entity labels come from the label table (``labels_path``, by default the one next to
    the JSON), so the InferenceData and tables look exactly like those of `ratepool.fit` of
    the same program (static, with any option including bytes; or temporal, built with
    `ratepool.model.temporal`'s builders). The program's source is unknown (``program=None``):
    CmdStan's CSVs name the model but hold no source.

    Raises
    ------
    DataError
        If the files are missing, do not belong together, or are not a posterior run of
        ratepool's program on that data JSON.
    """
    data, values = read_stan_data(data_json, labels_path)
    check_ratepool_run(run, values)
    config = _with_data_columns(config_from_run(run, values), data)
    idata = (temporal_inference_data(run.draws, data, config, recorded_exposure_scale(values))
             if config.temporal is not None
             else build_inference_data(run.draws, data, scale=recorded_exposure_scale(values)))
    return FitResult(
        idata=idata,
        data=data,
        config=config,
        engine="cmdstan",
        versions={"engine": "cmdstan", "stan": run.stan_version,
                  "stanc": str(run.setting("stanc_version", "unknown"))},
        sampling_seconds=float(run.draws.elapsed_seconds),
    )
