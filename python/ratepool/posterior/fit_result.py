"""`FitResult`: the outcome of `ratepool.fit` (InferenceData, data, config) with its tables,
diagnostics, scores and predictions computed on demand.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import arviz as az
import pandas as pd
import xarray as xr

from ratepool.data.counts import CountData
from ratepool.errors import RatepoolError
from ratepool.model.config import ModelConfig
from ratepool.model.program import StanProgram
from ratepool.model.description import ModelDescription, describe
from ratepool.posterior.bytes_summary import bytes_summary
from ratepool.posterior.coefficients import coefficient_summary
from ratepool.posterior.diagnostics import get_model_diagnostics
from ratepool.posterior.entity_predictive import entity_predictive
from ratepool.posterior.summary import entity_summary

if TYPE_CHECKING:
    from ratepool.posterior.anomaly import ScoreResult
    from ratepool.posterior.predictive import PosteriorRates


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

    @property
    def model(self) -> ModelDescription:
        """The fitted model's description (`ratepool.model.description`): its options, the
        parameters it has and the tables that apply."""
        return describe(self.data, self.config)

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
        `ratepool.posterior.entity_predictive.entity_predictive`.
        """
        return entity_predictive(self.idata, self.data, seed=seed, draws=draws)

    def coefficients(self) -> pd.DataFrame:
        """Covariate effects: beta and rate ratios per original unit (`coefficient_summary`).

        Raises
        ------
        RatepoolError
            If the fit has no covariates.
        """
        if "coefficients" not in self.model.tables:
            raise RatepoolError("this fit has no covariates; fit with load_counts(..., "
                                "covariates=[...]) to estimate their effects")
        return coefficient_summary(self.idata, self.data.covariates)

    def bytes_summary(self) -> pd.DataFrame:
        """Bytes per event per entity: mean exp(m_i) and median size of one event
        exp(m_i - (sigma_w^2 + sigma_e^2) / 2)
        with 94% HDIs (`ratepool.posterior.bytes_summary.bytes_summary`).

        Raises
        ------
        RatepoolError
            If the fit has no bytes.
        """
        if "bytes" not in self.model.tables:
            raise RatepoolError("this fit has no bytes; fit with load_counts(..., "
                                "bytes_col=...) to model bytes per event")
        return bytes_summary(self.idata, self.data)

    def mapping_table(self) -> pd.DataFrame:
        """Entity label <-> 1-based Stan index."""
        return self.data.mapping_table()

    def _posterior_rates(self) -> "PosteriorRates":
        from ratepool.posterior.temporal_score import posterior_rates

        if "posterior_rates" not in self._computed:
            self._computed["posterior_rates"] = posterior_rates(self.idata)
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
            `ratepool.posterior.score`.
        """
        from ratepool.posterior.anomaly import AnomalyRule
        from ratepool.posterior.score import score_frame

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
        covariates: pd.DataFrame | None = None,
        entity_col: str = "entity",
    ) -> pd.DataFrame:
        """Exact predictive distribution of each entity's total over its next ``windows``.

        Known entities use their posterior rates; others the population law at their own
        covariates (rows of ``covariates``, column ``entity_col``, when the fit has covariates),
        theta ~ Gamma(mu_i alpha, alpha) integrated out exactly per draw, as `score` does. The
        total of k windows given a draw is NB2(k e theta, k phi). Returns one row per entity
        with ``mean``, ``sd``, ``lower`` / ``median`` / ``upper`` (exact mixture quantiles);
        see `ratepool.posterior.predict.predict_totals`.
        """
        from ratepool.posterior.predict import predict_totals

        return predict_totals(self._posterior_rates(), entities, windows=windows,
                              exposure=exposure, interval=interval, covariates=covariates,
                              entity_col=entity_col)
