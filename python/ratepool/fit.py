"""Fitting: data + config -> engine run -> `FitResult` (InferenceData, tables, diagnostics)."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import arviz as az
import pandas as pd
import xarray as xr

from ._testhooks import pause_at
from .coefficients import coefficient_summary
from .config import ModelConfig
from .data import CountData, load_counts
from .diagnostics import get_model_diagnostics
from .engines import Engine, SamplerSettings, get_engine
from .entity_predictive import add_prior_replicates, entity_predictions_on, entity_predictive
from .errors import RatepoolError
from .event_bytes import bytes_summary, warn_if_bytes_prior_clashes
from .inference import build_inference_data, build_prior_data
from .program import StanProgram, default_program
from .standata import _obs_predictions, check_options, stan_data
from .summary import entity_summary

if TYPE_CHECKING:
    from .predictive import PosteriorRates
    from .score import ScoreResult

__all__ = ["FitResult", "fit", "sample_prior", "stan_data"]

log = logging.getLogger(__name__)

#: Draws of the prior predictive check in the design document.
DEFAULT_PRIOR_DRAWS = 1000


@dataclass
class FitResult:
    """The outcome of `fit`.

    Attributes
    ----------
    idata : arviz.InferenceData
        All draws, with entity labels as the ``entity`` coordinate.
    data : CountData
        The validated data, with the label <-> index mapping.
    config : ModelConfig
        The settings used.
    engine : str
        The engine that ran (``"cmdstan"`` or ``"pystan"``).
    versions : dict
        Versions of the engine's software.
    sampling_seconds : float
        Wall time of the sampler run.
    program : StanProgram or None
        The Stan program that ran (None when unknown, e.g. CmdStan output read back without
        its source).
    """

    idata: az.InferenceData
    data: CountData
    config: ModelConfig
    engine: str
    versions: dict[str, str] = field(default_factory=dict)
    sampling_seconds: float = 0.0
    program: StanProgram | None = None
    _computed: dict[str, Any] = field(default_factory=dict, init=False, repr=False,
                                      compare=False)

    def diagnostics(self) -> dict[str, Any]:
        """`get_model_diagnostics` of this fit (computed once; a copy)."""
        if "diagnostics" not in self._computed:
            self._computed["diagnostics"] = get_model_diagnostics(self.idata)
        return copy.deepcopy(self._computed["diagnostics"])

    def entity_summary(self) -> pd.DataFrame:
        """`entity_summary` of this fit, one row per entity label (computed once; a copy)."""
        if "entity_summary" not in self._computed:
            self._computed["entity_summary"] = entity_summary(self.idata, self.data)
        return self._computed["entity_summary"].copy()

    def entity_predictive(self, *, seed: int = 0, draws: int | None = None) -> xr.Dataset:
        """Per-entity predictive draws (``y_pred``, ``y_rep_total``, ``y_rep_zeros``) and
        ``log_lik_entity`` on (chain, draw, entity).

        Stan's own when the fit drew them; otherwise (a large fit with
        ``entity_predictions="auto"``) derived exactly from the theta and phi draws, with
        ``seed``, from about ``draws`` draws (all by default). See
        `ratepool.entity_predictive.entity_predictive`.
        """
        return entity_predictive(self.idata, self.data, seed=seed, draws=draws,
                                 zero_inflation=self.config.zero_inflation)

    def coefficients(self) -> pd.DataFrame:
        """Covariate effects: beta and rate ratios per original unit (`coefficient_summary`).

        Raises
        ------
        RatepoolError
            If the fit has no covariates.
        """
        if self.data.covariates is None:
            raise RatepoolError("this fit has no covariates; fit with load_counts(..., "
                                "covariates=[...]) to estimate their effects")
        return coefficient_summary(self.idata, self.data.covariates)

    def bytes_summary(self) -> pd.DataFrame:
        """Bytes per event per entity: median exp(m_i) and mean exp(m_i + sigma_b^2 / 2)
        with 94% HDIs (`ratepool.event_bytes.bytes_summary`).

        Raises
        ------
        RatepoolError
            If the fit has no bytes.
        """
        if self.data.window_bytes is None:
            raise RatepoolError("this fit has no bytes; fit with load_counts(..., "
                                "bytes_col=...) to model bytes per event")
        return bytes_summary(self.idata, self.data)

    def mapping_table(self) -> pd.DataFrame:
        """Entity label <-> 1-based Stan index."""
        return self.data.mapping_table()

    def _posterior_rates(self) -> "PosteriorRates":
        from .predictive import PosteriorRates

        if "posterior_rates" not in self._computed:
            self._computed["posterior_rates"] = PosteriorRates.from_idata(self.idata)
        return self._computed["posterior_rates"]

    def score(
        self,
        new_rows: pd.DataFrame | str | Path,
        *,
        entity_col: str = "entity",
        count_col: str = "count",
        window_col: str | None = None,
        fdr: float | None = None,
        per_window_alpha: float | None = None,
        interval: float = 0.9,
        seed: int = 0,
    ) -> "ScoreResult":
        """Score new windows against this fit: exact predictive tail probabilities and flags.

        Parameters
        ----------
        new_rows : pandas.DataFrame or path
            One row per entity and window (CSV / Parquet path or DataFrame) with the entity
            and count columns (and optionally a window column). Labels match the fit's with
            their types; entities the fit has not seen get the population predictive.
        entity_col, count_col, window_col : str
            Column names.
        fdr : float, optional
            Flag anomalies by Benjamini–Hochberg at this false discovery rate (0.01 when
            neither rule is given).
        per_window_alpha : float, optional
            Instead, flag every row whose two-sided p-value is at most this.
        interval : float
            Probability of the predictive interval.
        seed : int
            Seed of the randomised PIT column.

        Returns
        -------
        ScoreResult
            ``.table`` (one row per input row), ``.anomalies()``, ``.summary()``; see
            `ratepool.score`.
        """
        from .score import AnomalyRule, score_frame

        return score_frame(self._posterior_rates(), new_rows, entity_col=entity_col,
                           exposure_col=self.config.exposure_col,
                           count_col=count_col, window_col=window_col,
                           rule=AnomalyRule.from_options(fdr, per_window_alpha),
                           interval=interval, seed=seed)

    def predict(
        self,
        entities: Sequence[Any],
        *,
        exposure: float | Sequence[float] = 1.0,
        windows: int = 1,
        interval: float = 0.9,
    ) -> pd.DataFrame:
        """Exact predictive distribution of each entity's total over its next ``windows``.

        Known entities use their posterior rates, others the population's (theta_new); the
        total of k windows given a draw is NB2(k e theta, k phi). Returns one row per entity
        with ``mean``, ``sd``, ``lower`` / ``median`` / ``upper`` (exact mixture quantiles);
        see `ratepool.predict.predict_totals`.
        """
        from .predict import predict_totals

        return predict_totals(self._posterior_rates(), entities, windows=windows,
                              exposure=exposure, interval=interval)


def _prepare(
    data: CountData | pd.DataFrame | str | Path, config: ModelConfig | None,
    engine: Engine | str | None,
) -> tuple[CountData, ModelConfig, Engine]:
    """Validate everything before any compile or sampling starts."""
    config = config or ModelConfig()
    if not isinstance(data, CountData):
        data = load_counts(data, exposure_col=config.exposure_col,
                           covariates=list(config.covariates) or None,
                           bytes_col=config.bytes_col)
    config = _with_data_columns(config, data)
    check_options(data, config)
    if config.temporal is not None:
        from .temporal import check_temporal

        check_temporal(data, config)
    _warn_if_prior_clashes(data, config)
    warn_if_bytes_prior_clashes(data, config)
    if isinstance(engine, Engine):
        return data, config, engine
    return data, config, get_engine(engine or config.engine)


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
    mean_rate = float(data.entity_total.sum() / data.entity_exposure.sum())
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
    data: CountData | pd.DataFrame | str | Path,
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
    data : CountData, pandas.DataFrame or path
        Validated data, or raw rows with columns ``entity`` and ``count`` (use
        `ratepool.load_counts` for other column names).
    config : ModelConfig, optional
        Priors, sampler settings and switches; the defaults of `ModelConfig` if omitted.
    engine : str or Engine, optional
        ``"auto"``, ``"cmdstan"`` or ``"pystan"``; defaults to ``config.engine``.
    prior_draws : int
        If positive, also add that many exact prior (ancestral) draws as the ``prior`` and
        ``prior_predictive`` groups.
    show_progress : bool
        Show the engine's progress output.
    program : StanProgram, optional
        The Stan program; the packaged one by default (``temporal_negbinom.stan`` when
        ``config.temporal`` is set, see `ratepool.temporal`).

    Returns
    -------
    FitResult
    """
    data, config, runner = _prepare(data, config, engine)
    settings = SamplerSettings(
        chains=config.n_chains, warmup=config.n_tune, draws=config.n_samples,
        adapt_delta=config.target_accept, seed=config.random_seed, show_progress=show_progress,
    )
    if config.temporal is not None:
        from .temporal import fit_temporal

        return fit_temporal(data, config, runner, settings, prior_draws=prior_draws,
                            program=program)
    program = program or default_program()
    log.info("fitting %d entities, %d windows with %s", data.n_entities,
             data.n_windows_total, runner.name)
    draws = runner.sample(program, stan_data(data, config), settings)
    prior = _prior_draws(runner, program, data, config, prior_draws) if prior_draws else None
    pause_at("summarise")
    idata = build_inference_data(draws, data, prior=prior)
    return FitResult(idata=idata, data=data, config=config, engine=runner.name,
                     versions=runner.versions(), sampling_seconds=draws.elapsed_seconds,
                     program=program)


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
    data, config, runner = _prepare(data, config, engine)
    if config.temporal is not None:
        from .temporal import sample_temporal_prior

        return sample_temporal_prior(data, config, runner, draws=draws, program=program)
    prior = _prior_draws(runner, program or default_program(), data, config, draws)
    return build_prior_data(prior, data)
