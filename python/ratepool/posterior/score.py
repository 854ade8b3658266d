"""Score new windows against a fit: exact predictive tail probabilities and anomaly flags.

For each new row (entity, optional window, count y) the predictive law of one window's count is
the mixture over posterior draws of NB2(theta_i, phi) (`ratepool.posterior.predictive`); an entity the fit
has not seen gets the population predictive at its own covariates, with its rate integrated out
exactly (`PosteriorRates.unseen_law`). Per row:

==============  ===============================================================================
``unseen``      the entity is not in the fit (scored with the population predictive at its
                own covariates, theta ~ Gamma(mu_i alpha, alpha) integrated out per draw)
``pred_mean``   predictive mean
``pred_lower``  lower end of the equal-tailed predictive interval (default 90%): the exact
``pred_upper``  mixture quantiles at 5% and 95% (least y with P(Y <= y) >= p); coverage >= 90%
``p_upper``     P(Y >= y): small when the count is surprisingly high
``p_lower``     P(Y <= y): small when it is surprisingly low
``p_value``     two-sided p-value min(1, 2 min(p_upper, p_lower)); the anomaly decision uses it
``p_mid``       two-sided mid-p value min(1, 2 min(P(Y > y), P(Y < y)) + P(Y = y))
``pit``         randomised PIT P(Y < y) + U P(Y = y), U ~ Uniform(0, 1) (seeded)
``direction``   ``high`` or ``low``: the side of the smaller tail
``q_value``     Benjamini–Hochberg adjusted p-value (FDR rule only)
``anomaly``     the decision
==============  ===============================================================================

Which p-value for what. For a discrete count, P(p_value <= a) <= a (a valid, slightly
conservative p-value), so Benjamini–Hochberg on it controls the false discovery rate. The mid-p
value is less conservative and is reported as a measure of surprise, but it is not guaranteed
valid, so it does not decide. Neither is uniform under the model (a count has atoms); the
randomised PIT is exactly Uniform(0, 1) when the counts follow the predictive, which is what
the calibration tests check (and what a PIT histogram of your own data should show).

Rows are grouped by (entity, count, mean multiplier) before any probability is computed, so
10 million rows cost what their distinct pairs cost; the pairs are scored in chunks whose work
memory is bounded by ``memory_bytes``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratepool.data.labels import as_reference_types
from ratepool.data.validate import (
    MISSING_LABELS,
    _raise_rows,
    _require_columns,
    index_location,
    reject_missing_windows,
    validate_counts,
    validate_exposure,
)
from ratepool.errors import DataError
from ratepool.posterior.anomaly import (
    DEFAULT_FDR,
    DEFAULT_INTERVAL,
    AnomalyRule,
    ScoreResult,
    benjamini_hochberg,
)
from ratepool.posterior.mixture_law import (
    DEFAULT_MEMORY_BYTES,
    mixture_moments,
    mixture_quantiles,
    tail_probabilities,
)
from ratepool.posterior.predictive import PosteriorRates, check_probability
from ratepool.posterior.temporal_score import TemporalRates, temporal_score_rows

__all__ = [
    "DEFAULT_FDR",
    "DEFAULT_INTERVAL",
    "AnomalyRule",
    "ScoreResult",
    "benjamini_hochberg",
    "score_rows",
    "score_frame",
]

log = logging.getLogger(__name__)


def score_rows(
    rates: PosteriorRates,
    entity: pd.Series,
    count: np.ndarray,
    *,
    window: pd.Series | np.ndarray | None = None,
    multiplier: np.ndarray | None = None,
    rule: AnomalyRule | None = None,
    interval: float = DEFAULT_INTERVAL,
    seed: int = 0,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> ScoreResult:
    """Score validated rows against posterior draws.

    Parameters
    ----------
    rates : PosteriorRates
        The fit's draws.
    entity : pandas.Series
        Entity label of each row (matched to the fit's labels with their types).
    count : numpy.ndarray
        Non-negative integer count of each row.
    window : array-like, optional
        Window label of each row, copied to the output.
    multiplier : numpy.ndarray, optional
        Per-row multiplier of the NB2 mean (the window's exposure); 1 when omitted.
    rule : AnomalyRule, optional
        BH at q = 0.01 by default.
    interval : float
        Probability of the equal-tailed predictive interval.
    seed : int
        Seed of the uniforms in the randomised PIT (nothing else is random).
    memory_bytes : int
        Bound on the work memory of one chunk.

    Returns
    -------
    ScoreResult
    """
    if isinstance(rates, TemporalRates):  # the law at each row's window, not the static one
        return temporal_score_rows(rates, entity, count, window=window, multiplier=multiplier,
                                   rule=rule, interval=interval, seed=seed,
                                   memory_bytes=memory_bytes)
    rule = rule or AnomalyRule()
    interval = check_probability(interval, "the predictive interval probability")
    y = np.asarray(count, dtype=np.int64)
    codes = rates.entity_codes(entity)
    scale = np.ones(len(y)) if multiplier is None else np.asarray(multiplier, dtype=float)
    unseen = codes >= rates.n_fitted
    if len(y) and unseen.all():
        log.warning("none of the %d rows' entities is in the fit: every row is scored with the "
                    "population predictive. Check the entity column and its label type",
                    len(y))

    # Everything depends on (entity, multiplier) and y only: score each distinct triple once.
    keys = pd.DataFrame({"g": codes, "e": scale, "y": y})
    pair_of_row = keys.groupby(["g", "e", "y"], sort=False).ngroup().to_numpy()
    pairs = keys.drop_duplicates(ignore_index=True)
    group_of_pair = pairs.groupby(["g", "e"], sort=False).ngroup().to_numpy()
    groups = pairs.drop_duplicates(["g", "e"], ignore_index=True)
    log.info("scoring %d rows: %d distinct (entity, count) pairs, %d entities (%d unseen rows) "
             "against %d draws", len(y), len(pairs), len(groups), int(unseen.sum()),
             rates.n_draws)

    cdf, sf, pmf = _pair_probabilities(rates, pairs, memory_bytes)
    low_q = (1.0 - interval) / 2.0
    g_mean, g_lower, g_upper = _group_predictive(rates, groups, (low_q, 1.0 - low_q),
                                                 memory_bytes)

    cdf, sf, pmf = cdf[pair_of_row], sf[pair_of_row], pmf[pair_of_row]
    group_of_row = group_of_pair[pair_of_row]
    p_upper = np.minimum(sf + pmf, 1.0)
    p_lower = np.minimum(cdf, 1.0)
    p_value = np.minimum(1.0, 2.0 * np.minimum(p_upper, p_lower))
    below = np.maximum(cdf - pmf, 0.0)                         # P(Y < y)
    p_mid = np.minimum(1.0, 2.0 * np.minimum(sf, below) + pmf)
    uniforms = np.random.default_rng(seed).random(len(y))
    pit = np.clip(below + uniforms * pmf, 0.0, 1.0)
    anomaly, adjusted = rule.apply(p_value)

    columns: dict[str, Any] = {"entity": entity.to_numpy() if isinstance(entity, pd.Series)
                               else np.asarray(entity, dtype=object)}
    if window is not None:
        columns["window"] = np.asarray(window)
    columns.update(
        count=y, unseen=unseen, pred_mean=g_mean[group_of_row],
        pred_lower=g_lower[group_of_row], pred_upper=g_upper[group_of_row],
        p_upper=p_upper, p_lower=p_lower, p_value=p_value, p_mid=p_mid, pit=pit,
        direction=pd.Categorical.from_codes((p_upper < p_lower).astype(np.int8),
                                            categories=["low", "high"]),
    )
    if adjusted is not None:
        columns["q_value"] = adjusted
    columns["anomaly"] = anomaly
    table = pd.DataFrame(columns)
    return ScoreResult(table=table, rule=rule, interval=interval, n_draws=rates.n_draws,
                       info={"distinct_pairs": len(pairs)})


def _pair_probabilities(rates: PosteriorRates, pairs: pd.DataFrame,
                        memory_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact mixture P(Y <= y), P(Y > y), P(Y = y) of each (entity, multiplier, y), in chunks."""
    n = len(pairs)
    cdf, sf, pmf = np.empty(n), np.empty(n), np.empty(n)
    codes, scale, y = (pairs[c].to_numpy() for c in ("g", "e", "y"))
    for part, law in rates.laws(codes, scale, memory_bytes=memory_bytes):
        cdf[part], sf[part], pmf[part] = tail_probabilities(y[part], law)
    return cdf, sf, pmf


def _group_predictive(rates: PosteriorRates, groups: pd.DataFrame, probs: tuple[float, float],
                      memory_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictive mean and the two quantiles of each (entity, multiplier)."""
    n = len(groups)
    mean = np.empty(n)
    quantiles = np.empty((n, 2), dtype=np.int64)
    codes, scale = groups["g"].to_numpy(), groups["e"].to_numpy()
    for part, law in rates.laws(codes, scale, memory_bytes=memory_bytes):
        mean[part] = mixture_moments(law)[0]
        quantiles[part] = mixture_quantiles(law, probs, memory_bytes)
    return mean, quantiles[:, 0], quantiles[:, 1]


# --------------------------------------------------------------------------------------------
# From a DataFrame or a file


def score_frame(
    rates: PosteriorRates,
    new_rows: pd.DataFrame | str | Path,
    *,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    exposure_col: str | None = None,
    rule: AnomalyRule | None = None,
    interval: float = DEFAULT_INTERVAL,
    seed: int = 0,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> ScoreResult:
    """Validate new rows (a DataFrame, or a CSV / Parquet file) and score them.

    With a fit that used exposure, ``exposure_col`` names each new window's exposure (the
    predictive mean is then exposure x theta); with entity covariates, rows of entities the fit
    has not seen must carry the covariate columns, and those entities are scored at their own
    covariates. A zero-inflated fit's pi enters every probability.

    The file is read with `ratepool.data.duckdb_source.read_rows`, the same reader as the fit's data, so
    labels come back with the types a fit from such a file has. Counts are validated as for a
    fit; rows need not be unique per window.

    Raises
    ------
    DataError
        Missing columns, missing entity or window labels, or bad counts (naming the rows).
    """
    covariates = rates.covariates
    columns = ([entity_col, count_col] + ([window_col] if window_col else [])
               + ([exposure_col] if exposure_col else []))
    optional = list(covariates.source_columns) if covariates is not None else []
    if isinstance(new_rows, pd.DataFrame):
        frame, where = new_rows, index_location
    else:
        from ratepool.data.duckdb_source import read_rows

        # All columns: the covariates are needed only for entities the fit has not seen.
        frame, where = read_rows(new_rows, None if optional else columns,
                                 entity_col=entity_col, window_col=window_col)
        if entity_col in frame.columns:
            frame[entity_col] = as_reference_types(frame[entity_col], rates.labels)
    _require_columns(frame, columns, table="new data")
    if len(frame) == 0:
        raise DataError("the new data has no rows; give at least one row to score")
    _raise_rows(frame[entity_col], frame[entity_col].isna(), entity_col, *MISSING_LABELS,
                where=where)
    y = validate_counts(frame[count_col], count_col, where=where)
    window = None
    if window_col is not None:
        reject_missing_windows(frame[window_col], window_col, where=where)
        window = frame[window_col].to_numpy()
    multiplier = (validate_exposure(frame[exposure_col], exposure_col, where=where)
                  if exposure_col else None)
    if covariates is not None:
        unseen = frame[rates.entity_codes(frame[entity_col]) == rates.n_entities]
        if len(unseen):
            missing = [c for c in covariates.source_columns if c not in unseen.columns]
            if missing:
                raise DataError(
                    f"{unseen[entity_col].nunique()} entit(ies) of the new data are not in the "
                    f"fit, which has entity covariates: give their covariate column(s) {missing} "
                    "so that they are scored at their own covariates")
            rates = rates.with_new_entities(unseen, entity_col, seed=seed)
    result = score_rows(rates, frame[entity_col], y, window=window, multiplier=multiplier,
                        rule=rule, interval=interval, seed=seed, memory_bytes=memory_bytes)
    names = {"entity": entity_col, "count": count_col}
    if window_col:
        names["window"] = window_col
    result.table = result.table.rename(columns=names)
    result.info.update(columns=names)
    return result


# --------------------------------------------------------------------------------------------
# Writing


