"""The one place that turns `CountData` + `ModelConfig` into the Stan program's data dict.

`CountData` knows the data's statistics; the config knows the priors and switches; this module
knows which fields each model option adds to the program's data block (see the data JSON
layout at the top of ``stan/hierarchical_negbinom.stan``):

- exposure and zero-inflation: windows grouped by (entity, exposure value), with per group the
  number of windows n_g, of zero windows z_g and the total count S_g; O(G) with G <= N groups
  (G = J without exposure), so a gradient still costs O(G + K + J), not O(N);
- covariates: the J x P matrix of centred and scaled entity covariates and the prior sd of beta;
- bytes: per-entity statistics of log bytes per event (`ratepool.model.event_bytes`), O(J).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ratepool.data.counts import CountData
from ratepool.errors import ConfigError, DataError
from ratepool.model.config import ModelConfig
from ratepool.model.event_bytes import bytes_fields_off, bytes_stan_fields
from ratepool.model.predictions import entity_predictions_on

__all__ = ["stan_data", "base_stan_data", "group_statistics", "check_options",
           "entity_grainsize", "sums_entities_in_chunks", "threads_per_chain"]

log = logging.getLogger(__name__)


def check_options(data: CountData, config: ModelConfig) -> None:
    """Refuse a config whose options the data cannot serve (before anything compiles)."""
    if config.exposure_col is not None and not data.has_exposure:
        raise ConfigError(
            f"the config names exposure_col = {config.exposure_col!r} but the data was loaded "
            f"without exposure; load it with load_counts(..., exposure_col="
            f"{config.exposure_col!r})")
    if config.covariates and data.covariates is None:
        raise ConfigError(
            f"the config names covariates {list(config.covariates)} but the data was loaded "
            "without them; load it with load_counts(..., covariates=[...])")
    if config.bytes_col is not None and data.window_bytes is None:
        raise ConfigError(
            f"the config names bytes_col = {config.bytes_col!r} but the data was loaded "
            f"without bytes; load it with load_counts(..., bytes_col={config.bytes_col!r})")
    if (data.has_exposure or config.zero_inflation) and not data.has_groups:
        raise DataError(
            "exposure and zero-inflation need the windows grouped by entity and exposure (the "
            "zero windows per group); this data was given as per-entity aggregates without "
            "them: read the file with ratepool.aggregate_file(..., exposure_col=...) or "
            "load_counts")


def group_statistics(data: CountData) -> dict[str, np.ndarray]:
    """Windows grouped by (entity, exposure): entity index (1-based), exposure, windows, zero
    windows and total count per group, ordered by entity then exposure (from the rows, or as
    aggregated where the rows live: `ratepool.data.counts.WindowGroups`)."""
    groups = data.window_groups()
    return {
        "group_entity": groups.entity + 1,
        "group_exposure": (groups.exposure if groups.exposure is not None
                           else np.ones(len(groups.entity))),
        "group_windows": groups.windows,
        "group_zeros": groups.zeros,
        "group_total": groups.total.astype(float),
    }


def base_stan_data(
    data: CountData,
    *,
    mu_rate: float,
    alpha_sd: float,
    phi_sd: float,
    use_sufficient_stats: bool,
    prior_only: bool,
    non_centered: bool,
    obs_predictions: bool,
    entity_predictions: bool,
    keep_rows: bool = False,
) -> dict[str, Any]:
    """The data dict of the base model (every option off): counts, statistics, priors and
    switches. `stan_data` adds the options' fields on top. The rows are included when the
    program needs them (per-row likelihood or outputs) or ``keep_rows`` asks for them (an
    export with exposure or zero-inflation, so that a reader can rebuild the data)."""
    if (obs_predictions or not use_sufficient_stats) and not data.has_rows:
        raise DataError(
            "per-observation likelihood or predictions need the raw rows, but this data was "
            "given as aggregates; use likelihood='sufficient' and obs_predictions=False"
        )
    rows = data.has_rows and (keep_rows or obs_predictions or not use_sufficient_stats)
    return {
        "J": data.n_entities,
        "N": len(data.y) if rows else 0,
        "entity": (data.entity_index + 1).tolist() if rows else [],
        "y": data.y.tolist() if rows else [],
        "n_windows": data.n_windows.tolist(),
        "entity_total": data.entity_total.astype(float).tolist(),
        "K": len(data.count_value),
        "count_value": data.count_value.tolist(),
        "count_freq": data.count_freq.astype(float).tolist(),
        "mu_rate": float(mu_rate),
        "alpha_sd": float(alpha_sd),
        "phi_sd": float(phi_sd),
        "use_sufficient_stats": int(use_sufficient_stats),
        "prior_only": int(prior_only),
        "non_centered": int(non_centered),
        "obs_predictions": int(obs_predictions),
        "entity_predictions": int(entity_predictions),
        **_options_off(data.n_entities),
        "grainsize": 0,
    }


def sums_entities_in_chunks(data: CountData, config: ModelConfig) -> bool:
    """Whether the static program's fit of ``data`` under ``config`` takes the fused base path
    (the program's ``fused_base``: sufficient statistics, centred, no exposure, zero-inflation
    or covariates), whose entity sum ``grainsize`` splits into chunks for threads."""
    covariates = data.covariates
    return (config.temporal is None and config.likelihood == "sufficient"
            and config.parameterization == "centered" and not data.has_exposure
            and not config.zero_inflation
            and (covariates is None or covariates.scaled.shape[1] == 0))


def threads_per_chain(data: CountData, config: ModelConfig) -> int:
    """The threads each chain of this fit uses: ``config.threads_per_chain`` on the fused base
    path (`sums_entities_in_chunks`), else 1 (nothing else in the programs is split, and a
    build with STAN_THREADS alone is slower)."""
    return config.threads_per_chain if sums_entities_in_chunks(data, config) else 1


#: Chunks per thread of the entity sum when a chain has several threads (`entity_grainsize`).
CHUNKS_PER_THREAD = 4


def entity_grainsize(n_entities: int, threads_per_chain: int) -> int:
    """The program's ``grainsize``: 0 (one pass over the entities) for one thread per chain,
    else the largest chunk of the fused base path's ``reduce_sum_static``: J / (`CHUNKS_PER_THREAD`
    x threads), rounded up. (TBB halves the range until each piece is at most this long, so
    there are 4T to 8T pieces: a thread that finishes early takes another.)"""
    if threads_per_chain <= 1:
        return 0
    return max(1, math.ceil(n_entities / (CHUNKS_PER_THREAD * threads_per_chain)))


def option_field_names() -> frozenset[str]:
    """The data fields the model options added to the program (absent from exports made
    before them)."""
    return frozenset(_options_off(1)) | frozenset(bytes_fields_off())


def _options_off(n_entities: int) -> dict[str, Any]:
    return {"has_exposure": 0, "exposure": [], "zero_inflation": 0, "G": 0,
            "group_entity": [], "group_exposure": [], "group_windows": [], "group_zeros": [],
            "group_total": [], "P": 0, "X": [[] for _ in range(n_entities)], "beta_sd": 1.0,
            **bytes_fields_off()}


def _option_fields(data: CountData, config: ModelConfig, rows: bool,
                   scale: float) -> dict[str, Any]:
    has_exposure = data.has_exposure
    grouped = has_exposure or config.zero_inflation
    groups = group_statistics(data) if grouped else {
        "group_entity": [], "group_exposure": [], "group_windows": [], "group_zeros": [],
        "group_total": []}
    if has_exposure:
        groups["group_exposure"] = np.asarray(groups["group_exposure"], dtype=float) / scale
    covariates = data.covariates
    matrix = (covariates.scaled if covariates is not None
              else np.zeros((data.n_entities, 0)))
    return {
        "has_exposure": int(has_exposure),
        "exposure": (data.exposure / scale).tolist() if has_exposure and rows else [],
        **({"exposure_scale": float(scale)} if has_exposure else {}),
        "zero_inflation": int(config.zero_inflation),
        "G": len(groups["group_entity"]),
        **{name: np.asarray(values).tolist() for name, values in groups.items()},
        "P": matrix.shape[1],
        "X": matrix.tolist(),
        "beta_sd": float(config.beta_prior_sd),
    }


def exposure_scale(data: CountData) -> float:
    """The exposure of a typical window, as the programs see one exposure unit: the power of 2
    nearest (in log scale) the median window exposure; 1 without exposure.

    The programs get ``exposure / exposure_scale``, so theta, mu and alpha are those of a
    typical window whatever the user's unit (persons or 100,000 persons), and the seed's priors
    (set for rates per window) mean the same with exposure as without; `ratepool.posterior.
    inference` reports the rates per the user's unit. A power of 2 divides exactly, so the
    exposures a data JSON holds multiply back to the user's exactly.
    """
    if not data.has_exposure:
        return 1.0
    median = data.exposure_median()
    return float(2.0 ** round(math.log2(median))) if median > 0 else 1.0


def recorded_exposure_scale(values: dict[str, Any]) -> float:
    """The exposure scale the program of a data dict (or data JSON) saw; 1 for data written
    before exposures were scaled, whose exposures are the user's."""
    return float(values.get("exposure_scale", 1.0))


def stan_data(
    data: CountData, config: ModelConfig, *, prior_only: bool = False,
    obs_predictions: bool | None = None, entity_predictions: bool | None = None,
    keep_rows: bool = False, scale: float | None = None,
) -> dict[str, Any]:
    """The Stan data dict for ``data`` under ``config`` (JSON-ready Python types).

    ``obs_predictions`` and ``entity_predictions`` override the config's (resolved) switches;
    see `base_stan_data` for ``keep_rows``. Exposures are divided by ``scale`` (by default
    `exposure_scale`), recorded as the field ``exposure_scale`` (the programs do not read it).
    """
    if obs_predictions is None:
        obs_predictions = _obs_predictions(config, data, config.total_draws)
    if entity_predictions is None:
        entity_predictions = entity_predictions_on(config, data, config.total_draws)
    check_options(data, config)
    values = base_stan_data(
        data,
        mu_rate=config.mu_prior_rate,
        alpha_sd=config.alpha_prior_sd,
        phi_sd=config.overdispersion_prior_sd,
        use_sufficient_stats=config.likelihood == "sufficient",
        prior_only=prior_only,
        non_centered=config.parameterization == "non_centered",
        obs_predictions=obs_predictions,
        entity_predictions=entity_predictions,
        keep_rows=keep_rows,
    )
    values.update(_option_fields(data, config, rows=values["N"] > 0,
                                 scale=exposure_scale(data) if scale is None else scale))
    values.update(bytes_stan_fields(data, config, rows=values["N"] > 0))
    values["grainsize"] = entity_grainsize(data.n_entities, threads_per_chain(data, config))
    if values["has_exposure"] and values["N"] == 0 and not values["use_sufficient_stats"]:
        raise DataError("the per-observation likelihood with exposure needs the rows")
    return values


def _obs_predictions(config: ModelConfig, data: CountData, draws: int) -> bool:
    """Per-observation y_rep/log_lik: as configured, else on while rows x draws is small."""
    if config.obs_predictions is not None:
        return config.obs_predictions
    if not data.has_rows:
        return False
    size = data.n_windows_total * draws
    if size > config.max_obs_prediction_values:
        log.info(
            "per-observation y_rep/log_lik are off: %d observations x %d draws exceeds "
            "max_obs_prediction_values=%d; entity-level checks remain (set obs_predictions=True "
            "to force them)", data.n_windows_total, draws, config.max_obs_prediction_values,
        )
        return False
    return True
