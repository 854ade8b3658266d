"""Predict the total count of an entity's next k windows, exactly, for known and new entities.

Given a posterior draw, the sum of k independent NB2(e theta_i, phi) windows is
NB2(k e theta_i, k phi) (the law the Stan program's ``y_rep_total`` draws from), so the
predictive law of the total is the mixture of these over the draws, and its mean, variance and
quantiles are exact (`ratepool.posterior.predictive`). An entity the fit has not seen follows
the population law at its own covariates (given in ``covariates`` when the fit has covariates),
theta ~ Gamma(mu_i alpha, alpha) integrated out per draw by quadrature: the same law `score`
uses (`PosteriorRates.unseen_law`).

``exposure`` multiplies each window's mean and leaves phi as it is (the model's NB2 offset
form); with a fit that used exposure, theta is a rate per unit of exposure, and 1 means one
unit per window.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ratepool.errors import DataError
from ratepool.posterior.mixture_law import (
    DEFAULT_MEMORY_BYTES,
    mixture_moments,
    mixture_quantiles,
)
from ratepool.posterior.predictive import PosteriorRates, check_multiplier, check_probability

__all__ = ["predict_totals"]

log = logging.getLogger(__name__)


def predict_totals(
    rates: PosteriorRates,
    entities: Sequence[Any] | pd.Series | pd.Index,
    *,
    windows: int = 1,
    exposure: float | Sequence[float] | np.ndarray = 1.0,
    interval: float = 0.9,
    covariates: pd.DataFrame | None = None,
    entity_col: str = "entity",
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> pd.DataFrame:
    """Predictive distribution of the total count over each entity's next ``windows`` windows.

    Parameters
    ----------
    rates : PosteriorRates
        The fit's draws.
    entities : sequence of labels
        Entity labels (matched with their types; unknown labels get the population predictive).
    windows : int
        k, the number of future windows summed (at least 1).
    exposure : float or sequence of float
        Mean multiplier of each window, one value or one per entity; positive.
    interval : float
        Probability of the equal-tailed predictive interval.
    covariates : pandas.DataFrame, optional
        With a fit that has entity covariates: one row per unseen entity (column
        ``entity_col``) with its covariate columns; unseen entities are predicted at them.
    entity_col : str
        Entity column of ``covariates``.

    Returns
    -------
    pandas.DataFrame
        One row per given entity: ``entity``, ``unseen``, ``windows``, ``exposure``, ``mean``,
        ``sd``, ``lower``, ``upper`` (exact mixture quantiles, coverage >= ``interval``) and
        ``median``.
    """
    from ratepool.posterior.temporal_score import TemporalRates, temporal_predict

    if isinstance(rates, TemporalRates):  # the next window's law given the latent state
        return temporal_predict(rates, entities, windows=windows, exposure=exposure,
                                interval=interval, memory_bytes=memory_bytes)
    if isinstance(windows, (bool, np.bool_)) or not isinstance(windows, (int, np.integer)) \
            or windows < 1:
        raise DataError(f"windows must be a whole number of windows, at least 1; got "
                        f"{windows!r}")
    interval = check_probability(interval, "the predictive interval probability")
    labels = pd.Series(list(entities), dtype=object) if not isinstance(entities, pd.Series) \
        else entities
    if len(labels) == 0:
        raise DataError("give at least one entity to predict")
    scale = check_multiplier(exposure, "exposure", len(labels))
    if covariates is not None:
        if entity_col not in covariates.columns:
            raise DataError(f"the covariates frame has no entity column {entity_col!r}; "
                            "name it with entity_col=")
        rates = rates.with_new_entities(covariates, entity_col)
    codes = rates.entity_codes(labels)
    low_q = (1.0 - interval) / 2.0
    mean, var = np.empty(len(codes)), np.empty(len(codes))
    quantiles = np.empty((len(codes), 3), dtype=np.int64)
    for part, law in rates.laws(codes, scale * windows, float(windows), memory_bytes):
        mean[part], var[part] = mixture_moments(law)
        quantiles[part] = mixture_quantiles(law, (low_q, 0.5, 1.0 - low_q), memory_bytes)
    return pd.DataFrame({
        "entity": labels.to_numpy(),
        "unseen": codes >= rates.n_fitted,
        "windows": windows,
        "exposure": scale,
        "mean": mean,
        "sd": np.sqrt(var),
        "lower": quantiles[:, 0],
        "median": quantiles[:, 1],
        "upper": quantiles[:, 2],
    })
