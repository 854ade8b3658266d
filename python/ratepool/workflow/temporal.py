"""The temporal fit (``ModelConfig(temporal="ar1")``): `fit_temporal` and
`sample_temporal_prior`, called by `ratepool.fit` and `ratepool.sample_prior` when the config
asks for the AR(1) model. The window layout and Stan data are in `ratepool.model.temporal`, the
AR(1) outputs in `ratepool.posterior.temporal_draws`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import arviz as az

from ratepool.data.counts import CountData
from ratepool.engines.base import Draws, Engine, SamplerSettings
from ratepool.model.config import ModelConfig
from ratepool.model.program import StanProgram, temporal_program
from ratepool.model.temporal import WindowLayout, check_temporal, temporal_stan_data
from ratepool.posterior.inference import build_inference_data
from ratepool.posterior.temporal_draws import _add_temporal_variables, _in_row_order

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ratepool.posterior.fit_result import FitResult


def fit_temporal(
    data: CountData, config: ModelConfig, runner: Engine, settings: SamplerSettings, *,
    prior_draws: int = 0, program: StanProgram | None = None,
) -> "FitResult":
    """Fit ``stan/temporal_negbinom.stan`` (called by `ratepool.fit` when ``config.temporal``
    is ``"ar1"``; the data and config are validated already)."""
    from ratepool.posterior.fit_result import FitResult

    layout = check_temporal(data, config)
    program = program or temporal_program()
    log.info("fitting the AR(1) temporal model: %d entities, %d windows (step %s) with %s",
             data.n_entities, data.n_windows_total, layout.step, runner.name)
    draws = _in_row_order(
        runner.sample(program, temporal_stan_data(data, config, layout=layout), settings),
        layout)
    prior = (_prior(runner, program, data, config, layout, prior_draws) if prior_draws
             else None)
    idata = build_inference_data(draws, data, prior=prior)
    idata = _add_temporal_variables(idata, draws, prior, layout)
    return FitResult(idata=idata, data=data, config=config, engine=runner.name,
                     versions=runner.versions(), sampling_seconds=draws.elapsed_seconds,
                     program=program)


def _prior(runner: Engine, program: StanProgram, data: CountData, config: ModelConfig,
           layout: WindowLayout, n_draws: int) -> Draws:
    from ratepool.model.standata import _obs_predictions

    settings = SamplerSettings(chains=1, warmup=0, draws=n_draws, adapt_delta=0.8,
                               seed=config.random_seed, fixed_param=True)
    values = temporal_stan_data(data, config, prior_only=True, layout=layout,
                                obs_predictions=_obs_predictions(config, data, n_draws))
    return _in_row_order(runner.sample(program, values, settings), layout)


def sample_temporal_prior(data: CountData, config: ModelConfig, runner: Engine, *,
                          draws: int, program: StanProgram | None = None) -> az.InferenceData:
    """Exact prior predictive draws of the temporal model (see `ratepool.sample_prior`)."""
    layout = check_temporal(data, config)
    prior = _prior(runner, program or temporal_program(), data, config, layout, draws)
    empty = Draws(variables={}, sample_stats={}, engine=prior.engine)
    idata = build_inference_data(empty, data, prior=prior)
    return _add_temporal_variables(idata, empty, prior, layout)
