"""Fitting: data + config -> engine run -> `FitResult` (`fit`), and exact prior draws
(`sample_prior`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import arviz as az
import pandas as pd

from ratepool._testhooks import pause_at
from ratepool.data.counts import CountData
from ratepool.data.tables import load_counts
from ratepool.engines import get_engine
from ratepool.engines.base import Engine, SamplerSettings
from ratepool.errors import ConfigError
from ratepool.model.config import ModelConfig
from ratepool.model.description import describe_config
from ratepool.model.event_bytes import warn_if_bytes_prior_clashes
from ratepool.model.predictions import entity_predictions_on
from ratepool.model.program import StanProgram, default_program
from ratepool.model.standata import (
    _obs_predictions,
    check_options,
    exposure_scale,
    stan_data,
    sums_entities_in_chunks,
    threads_per_chain,
)
from ratepool.model.warm_start import AUTO_MIN_ENTITIES, warm_start
from ratepool.posterior.entity_predictive import add_prior_replicates
from ratepool.posterior.fit_result import FitResult
from ratepool.posterior.inference import build_inference_data, build_prior_data

if TYPE_CHECKING:
    pass

__all__ = ["FitResult", "PreparedFit", "fit", "prepare_fit", "read_for_fit", "rows_needed",
           "sample_prior", "stan_data"]

log = logging.getLogger(__name__)

#: Draws of the prior predictive check in the design document.
DEFAULT_PRIOR_DRAWS = 1000


@dataclasses.dataclass(frozen=True)
class PreparedFit:
    """Data, config and engine of a fit, validated (`prepare_fit`); `fit` accepts it as its
    data and then neither validates nor warns again."""

    data: CountData
    config: ModelConfig
    engine: Engine


def prepare_fit(
    data: CountData | pd.DataFrame | str | Path, config: ModelConfig | None = None,
    engine: Engine | str | None = None,
) -> PreparedFit:
    """Validate a fit before any program compiles or samples: load the rows, check the
    options against the data (temporal ones too), log the prior-data clash warnings once,
    and find the engine.

    Use it to validate several fits before running any (`ratepool.compare` does), then pass
    the result to `fit` as its ``data``.

    Raises
    ------
    RatepoolError
        The data or config error that `fit` would raise, before anything compiles.
    """
    if isinstance(data, PreparedFit):
        return data
    config = config or ModelConfig()
    if isinstance(data, pd.DataFrame):
        data = load_counts(data, exposure_col=config.exposure_col,
                           covariates=list(config.covariates) or None,
                           bytes_col=config.bytes_col)
    elif not isinstance(data, CountData):
        data = read_for_fit(data, config)
    config = _with_data_columns(config, data)
    check_options(data, config)
    if config.temporal is not None:
        from ratepool.model.temporal import check_temporal

        check_temporal(data, config)
    _warn_if_prior_clashes(data, config)
    warn_if_bytes_prior_clashes(data, config)
    runner = engine if isinstance(engine, Engine) else get_engine(engine or config.engine)
    runner.check_threads(config.threads_per_chain)
    if config.threads_per_chain > 1 and not sums_entities_in_chunks(data, config):
        log.warning("threads_per_chain = %d: only the base model on the sufficient statistics "
                    "(centred, no option) sums its entities on several threads; this fit runs "
                    "each chain on one thread", config.threads_per_chain)
    return PreparedFit(data, config, runner)


def rows_needed(config: ModelConfig) -> str | None:
    """Why a fit under ``config`` needs the rows in memory (the option), or None when the
    windows grouped where they live serve (`ratepool.aggregate_file`)."""
    if config.likelihood == "observation":
        return "likelihood='observation'"
    if config.obs_predictions:
        return "obs_predictions=True (per-row y_rep and log_lik)"
    return describe_config(config).rows_reason


def read_for_fit(path: str | Path, config: ModelConfig, *,
                 window_col: str | None = None, entity_col: str = "entity",
                 count_col: str = "count", allow_duplicate_windows: bool = False
                 ) -> CountData:
    """The data of a CSV/Parquet file (or glob) for a fit under ``config``, holding the rows
    only where an option needs them.

    DuckDB aggregates the file (`ratepool.aggregate_file`: per-entity windows, zeros and
    totals, the count histogram, the windows grouped by entity and exposure, covariates per
    entity), so memory is O(J + G + K), not O(N). The rows are read too (`load_counts`) when
    `rows_needed` names an option, or when ``obs_predictions`` is automatic and N x draws is
    at most ``max_obs_prediction_values`` (per-row y_rep and log_lik are then on, as for data
    given as rows).
    """
    from ratepool.data.duckdb_source import aggregate_file

    options: dict[str, Any] = {"exposure_col": config.exposure_col,
                               "covariates": list(config.covariates) or None,
                               "window_col": window_col, "entity_col": entity_col,
                               "count_col": count_col,
                               "allow_duplicate_windows": allow_duplicate_windows}
    reason = rows_needed(config)
    if reason is None:
        data = aggregate_file(path, **options)
        if config.obs_predictions is not None or (
                data.n_windows_total * config.total_draws > config.max_obs_prediction_values):
            log.info("fitting %s from its aggregates (%d windows, %d entities): the rows are "
                     "not held in memory", path, data.n_windows_total, data.n_entities)
            return data
        reason = "per-row y_rep and log_lik (obs_predictions='auto' on small data)"
    log.info("reading the rows of %s into memory for %s", path, reason)
    return load_counts(path, bytes_col=config.bytes_col, **options)


def _with_data_columns(config: ModelConfig, data: CountData) -> ModelConfig:
    """The config naming the exposure and covariate columns the data came with, so that the
    saved run (config.toml, run.json) says which model was fitted and scoring finds them."""
    changes: dict[str, Any] = {}
    if config.exposure_col is None and data.exposure_col is not None:
        changes["exposure_col"] = data.exposure_col
    if not config.covariates and data.covariates is not None:
        changes["covariates"] = data.covariates.source_columns
    return config.replace(**changes) if changes else config


#: Prior tail probability below which the data's mean rate is called implausible under mu's prior.
_PRIOR_TAIL = 1e-6


def _warn_if_prior_clashes(data: CountData, config: ModelConfig) -> None:
    """Log a warning when the data's mean rate sits far in the tail of mu's Exponential prior."""
    # per window of the exposure the program sees as one unit (`exposure_scale`)
    mean_rate = float(data.entity_total.sum() / data.entity_exposure.sum()) * exposure_scale(data)
    tail = math.exp(-config.mu_prior_rate * mean_rate)  # P(mu > mean_rate) under the prior
    if tail < _PRIOR_TAIL:
        log.warning(
            "the mean rate in the data (%.3g per window) is implausible under mu ~ "
            "Exponential(%g) (prior tail probability %.1e); the entity rates will still fit, "
            "but mu, alpha and predictions for new entities will be distorted. Set "
            "mu_prior_rate to about 1 / typical rate, e.g. %.3g",
            mean_rate, config.mu_prior_rate, tail, 1 / mean_rate,
        )


def fit(
    data: CountData | pd.DataFrame | str | Path | PreparedFit,
    config: ModelConfig | None = None,
    *,
    engine: Engine | str | None = None,
    prior_draws: int = 0,
    show_progress: bool = False,
    program: StanProgram | None = None,
) -> FitResult:
    """Fit the hierarchical Gamma–Negative-Binomial model.

    Parameters
    ----------
    data : CountData, pandas.DataFrame, path or PreparedFit
        Validated data, or raw rows with columns ``entity`` and ``count`` (use
        `ratepool.load_counts` or `ratepool.aggregate_file` for other column names). A CSV or
        Parquet path is read by `read_for_fit`: aggregated in DuckDB, without holding the
        rows, unless an option needs them (`rows_needed`). Or the result of `prepare_fit`
        (then ``config`` and ``engine`` are its own and must be omitted).
    config : ModelConfig, optional
        Priors, sampler settings and switches; the defaults of `ModelConfig` if omitted.
    engine : str or Engine, optional
        ``"auto"``, ``"cmdstan"`` or ``"pystan"``; defaults to ``config.engine``.
    prior_draws : int
        If positive, also add that many exact prior (ancestral) draws as the ``prior`` and
        ``prior_predictive`` groups.
    show_progress : bool
        Draw the sampling progress on stderr: one line redrawn on a terminal, the final line
        elsewhere. Either way the progress is logged at INFO every tenth of the run
        (logger ``ratepool.engines.progress``; at DEBUG while a terminal line is drawn).
    program : StanProgram, optional
        The Stan program; the packaged one by default (``temporal_negbinom.stan`` when
        ``config.temporal`` is set, see `ratepool.model.temporal`).

    Returns
    -------
    FitResult
    """
    if isinstance(data, PreparedFit) and (config is not None or engine is not None):
        raise ConfigError("fit(PreparedFit) takes its config and engine from it; do not pass "
                          "config or engine as well")
    prepared = prepare_fit(data, config, engine)
    data, config, runner = prepared.data, prepared.config, prepared.engine
    settings = SamplerSettings(
        chains=config.n_chains, warmup=config.n_tune, draws=config.n_samples,
        adapt_delta=config.target_accept, seed=config.random_seed, show_progress=show_progress,
        threads_per_chain=threads_per_chain(data, config),
    )
    if config.temporal is not None:
        from ratepool.workflow.temporal import fit_temporal

        return fit_temporal(data, config, runner, settings, prior_draws=prior_draws,
                            program=program)
    program = program or default_program()
    log.info("fitting %d entities, %d windows with %s", data.n_entities,
             data.n_windows_total, runner.name)
    values = stan_data(data, config)
    draws = runner.sample(program, values, _warm(settings, values, config))
    prior = _prior_draws(runner, program, data, config, prior_draws) if prior_draws else None
    pause_at("summarise")
    idata = build_inference_data(draws, data, prior=prior)
    return FitResult(idata=idata, data=data, config=config, engine=runner.name,
                     versions=runner.versions(), sampling_seconds=draws.elapsed_seconds,
                     program=program)


def _warm(settings: SamplerSettings, values: dict[str, Any],
          config: ModelConfig) -> SamplerSettings:
    """``settings`` with a warm start (`ratepool.model.warm_start`) when the config asks for one
    (``"auto"``: at least `AUTO_MIN_ENTITIES` entities) and the model is one it supports."""
    wanted = (config.warm_start == "on" or config.warm_start == "auto"
              and int(values["J"]) >= AUTO_MIN_ENTITIES)
    if not wanted:
        return settings
    start = warm_start(values, settings.chains, settings.seed)
    if start is None:
        log.info("no warm start for this model (it covers the base model only): the sampler "
                 "starts as Stan does by default")
        return settings
    return dataclasses.replace(settings, inits=start.inits,
                               inv_metric=tuple(start.inv_metric.tolist()))


def _prior_draws(runner: Engine, program: StanProgram, data: CountData, config: ModelConfig,
                 n_draws: int) -> Any:
    settings = SamplerSettings(chains=1, warmup=0, draws=n_draws, adapt_delta=0.8,
                               seed=config.random_seed, fixed_param=True)
    obs = _obs_predictions(config, data, n_draws)
    entity = entity_predictions_on(config, data, n_draws)
    prior = runner.sample(program, stan_data(data, config, prior_only=True, obs_predictions=obs,
                                             entity_predictions=entity), settings)
    if not entity and config.entity_predictions == "auto":
        add_prior_replicates(prior, data, seed=config.random_seed)
    return prior


def sample_prior(
    data: CountData | pd.DataFrame | str | Path,
    config: ModelConfig | None = None,
    *,
    draws: int = DEFAULT_PRIOR_DRAWS,
    engine: Engine | str | None = None,
    program: StanProgram | None = None,
) -> az.InferenceData:
    """Exact prior predictive draws (ancestral sampling under the fixed_param sampler).

    Returns an InferenceData with ``prior`` (mu, alpha, phi, theta, theta_new) and
    ``prior_predictive`` (y_pred per entity, y_new, and y_rep per observation when the data are
    small enough) for the entities in ``data``.
    """
    prepared = prepare_fit(data, config, engine)
    data, config, runner = prepared.data, prepared.config, prepared.engine
    if config.temporal is not None:
        from ratepool.workflow.temporal import sample_temporal_prior

        return sample_temporal_prior(data, config, runner, draws=draws, program=program)
    prior = _prior_draws(runner, program or default_program(), data, config, draws)
    return build_prior_data(prior, data)
