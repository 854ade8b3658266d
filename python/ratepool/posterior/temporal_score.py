"""Scoring and prediction with a temporal (AR(1)) fit, from its predictive law at the window.

The temporal model (``stan/temporal_negbinom.stan``) gives entity i in window j the mean
``E_ij theta_i exp(eta_ij)``, with theta_i the entity's median rate and eta the log-rate
deviation, of stationary sd ``s`` (innovation sd ``sigma = s sqrt(1 - rho^2)``), and
``y_ij ~ NB2(mean, phi)``. (Fits of the program before the prior moved to s have no ``s``
draws; their theta_i was the long-run mean rate, the mean ``E_ij theta_i exp(eta_ij - s^2 / 2)``,
and they are read with that correction.) Given a posterior draw, the state
``g >= 1`` steps after the entity's last fitted window is

    eta ~ Normal(rho^g eta_last, s^2 (1 - rho^(2 g)))

(the program's exact gap transition), and an entity the fit has not seen starts from the
stationary law Normal(0, s^2) with the rate of a new entity, theta_new (as the program's
``y_new``). The predictive law of a count is the average over draws of the NB2 law mixed over
that normal (`ratepool.posterior.temporal_law`: adaptive Gauss–Hermite quadrature over the state, exact
NB2 tails per draw, averaged over the draws; exact means; quantiles by bisection). New rows
are scored each against its own marginal law given the fit, not given one another.

What is refused (`TemporalWindowError`): windows of a fitted entity at or before its last
fitted window (the state there is conditioned on both sides, which this law is not), windows
off the fit's step grid, rows without a window, totals of several windows, and fits saved
without the latent path (``lambda``) or the window origin.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import arviz as az
import numpy as np
import pandas as pd

from ratepool.data.labels import show
from ratepool.errors import DataError
from ratepool.posterior.anomaly import AnomalyRule, ScoreResult
from ratepool.posterior.mixture_law import DEFAULT_MEMORY_BYTES, chunk_size
from ratepool.posterior.predictive import PosteriorRates, check_multiplier, check_probability
from ratepool.posterior.temporal_law import (
    QUADRATURE_NODES,
    lognormal_moments,
    lognormal_quantiles,
    temporal_tails,
)

__all__ = ["posterior_rates", "TemporalRates", "TemporalWindowError", "temporal_score_rows", "temporal_predict"]

log = logging.getLogger(__name__)

#: Numbers shown in error messages.
_SHOW = 5


class TemporalWindowError(DataError):
    """A row the temporal fit cannot score or predict as asked; the message names the entity,
    the window and the fix."""


@dataclass(frozen=True)
class TemporalRates(PosteriorRates):
    """`PosteriorRates` of a temporal fit, with what its predictive law at a window needs.

    Attributes
    ----------
    rho, sigma : numpy.ndarray
        (S,) AR(1) coefficient per step and innovation sd.
    mean_corrected : bool
        True for fits of the earlier program, whose theta_i was the long-run mean rate (their
        log mean carries ``-s^2 / 2``); False (theta_i the median rate) otherwise.
    eta_last : numpy.ndarray or None
        (S, J) the log-rate deviation at each entity's last fitted window (None when the fit
        kept no latent path).
    last_step : numpy.ndarray
        (J,) the step of each entity's last fitted window.
    window_origin : str or None
        The window at step 0 (None for fits saved before it was recorded).
    window_step : str
        The step, as `ratepool.model.temporal.window_layout` describes it.
    """

    rho: np.ndarray | None = None
    sigma: np.ndarray | None = None
    mean_corrected: bool = False
    eta_last: np.ndarray | None = None
    last_step: np.ndarray | None = None
    window_origin: str | None = None
    window_step: str = "1"

    @classmethod
    def from_idata(cls, idata: az.InferenceData) -> "TemporalRates":
        """The draws of a temporal fit's (or reloaded results folder's) InferenceData."""
        base = super().from_idata(idata)
        posterior, constant = idata.posterior, idata.constant_data
        n = base.n_draws
        rho = posterior["rho"].values.reshape(n)
        sigma = posterior["sigma"].values.reshape(n)
        mean_corrected = "s" not in posterior  # the program before the prior moved to s
        steps = constant["window_step"].values.astype(np.int64)
        entity = constant["entity_index"].values.astype(np.int64) - 1
        order = np.lexsort((steps, entity))
        last_rows = order[np.r_[np.flatnonzero(np.diff(entity[order])), len(order) - 1]]
        eta_last = None
        if "lambda" in posterior:
            path = posterior["lambda"].transpose("chain", "draw", "obs").values.reshape(n, -1)
            eta_last = np.log(path[:, last_rows] / base.theta)
            if mean_corrected:
                eta_last += (0.5 * sigma**2 / ((1.0 - rho) * (1.0 + rho)))[:, None]
        return dataclasses.replace(
            base, rho=rho, sigma=sigma, mean_corrected=mean_corrected, eta_last=eta_last,
            last_step=steps[last_rows],
            window_origin=constant.attrs.get("ratepool_window_origin"),
            window_step=str(constant.attrs.get("ratepool_window_step", "1")))

    # ----------------------------------------------------------------------------------------
    # Windows as steps

    def _window_label(self, step: int) -> Any:
        """The window label at ``step`` (for messages)."""
        if self.window_step == "1":
            return int(self.window_origin) + int(step)
        return pd.Timestamp(self.window_origin) + int(step) * pd.Timedelta(self._step_ns, "ns")

    @property
    def _step_ns(self) -> int:
        if self.window_step.startswith("none"):  # every fitted entity had one window
            return 1
        return int(pd.Timedelta(self.window_step).value)

    def window_steps(self, window: Any, column: str | None = None) -> np.ndarray:
        """Each window as a whole number of the fit's steps from its origin.

        Raises
        ------
        TemporalWindowError
            For a fit saved without its window origin, windows of another kind than the fit's
            (integers against dates), and dates off the fit's step grid.
        """
        from ratepool.model.temporal import _ordered_windows

        name = f"window column {column!r}" if column else "the window column"
        if self.window_origin is None:
            raise TemporalWindowError(
                "this temporal fit was saved without its window origin, so new windows cannot "
                "be placed on its steps; refit it with this version of ratepool")
        values, kind = _ordered_windows(np.asarray(window), column)
        integer = self.window_step == "1"
        if (kind == "integer") != integer:
            raise TemporalWindowError(
                f"{name} holds {'integers' if kind == 'integer' else 'dates'} but the fit's "
                f"windows were {'integers' if integer else 'dates'}; give the new windows in "
                "the fit's form")
        if integer:
            return values.to_numpy(dtype=np.int64) - int(self.window_origin)
        origin = pd.Timestamp(self.window_origin).as_unit("ns").value
        ticks = values.as_unit("ns").asi8 - origin
        off = np.flatnonzero(ticks % self._step_ns != 0)
        if off.size:
            raise TemporalWindowError(
                f"{name}: {off.size} window(s) are not a whole number of the fit's step "
                f"({self.window_step}) from its windows, e.g. "
                f"{', '.join(show(window[r]) for r in off[:_SHOW])}; put the new windows on "
                "the fit's grid (e.g. round them to the step)")
        return ticks // self._step_ns

    def gaps(self, codes: np.ndarray, steps: np.ndarray, labels: Sequence[Any],
             windows: Sequence[Any]) -> np.ndarray:
        """Steps from each fitted entity's last fitted window to the row's window (0 for
        unseen entities, which use the stationary law).

        Raises
        ------
        TemporalWindowError
            For a fitted entity's window at or before its last fitted window.
        """
        seen = codes < self.n_fitted
        gap = np.zeros(len(codes), dtype=np.int64)
        gap[seen] = steps[seen] - self.last_step[codes[seen]]
        bad = np.flatnonzero(seen & (gap < 1))
        if bad.size:
            examples = "; ".join(
                f"entity {show(labels[r])} window {show(windows[r])} (its last fitted window "
                f"is {show(self._window_label(self.last_step[codes[r]]))})" for r in bad[:_SHOW])
            raise TemporalWindowError(
                f"{bad.size} row(s) fall at or before their entity's last fitted window: "
                f"{examples}. The temporal fit predicts windows after the fitted span only (a "
                "window inside it is informed by both sides). Score only later windows, or "
                "refit with these windows to judge them (the fit's y_rep and log_lik)")
        return gap

    # ----------------------------------------------------------------------------------------
    # The law of the log mean at a window

    def log_mean_law(self, codes: np.ndarray, gaps: np.ndarray,
                     scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per draw and column: the log NB2 mean is ``centre + spread x``, x ~ Normal(0, 1).

        Returns
        -------
        (centre, spread) : tuple of numpy.ndarray
            (S, C) each.
        """
        s2 = (self.sigma**2 / ((1.0 - self.rho) * (1.0 + self.rho)))[:, None]
        seen = codes < self.n_fitted
        if seen.any() and self.eta_last is None:
            raise TemporalWindowError(
                "this temporal fit kept no latent path (lambda), so the state after an "
                "entity's last window is unknown; refit with obs_predictions = true ([model] "
                "table of the config) to score or predict its entities")
        centre = np.log(self.rates(codes) * scale[None, :])
        if self.mean_corrected:
            centre = centre - 0.5 * s2
        variance = np.broadcast_to(s2, centre.shape).copy()
        if seen.any():
            g = gaps[seen].astype(float)[None, :]
            with np.errstate(divide="ignore"):
                log_rho2 = np.log(self.rho**2)[:, None]
            centre[:, seen] += np.power(self.rho[:, None], g) * self.eta_last[:, codes[seen]]
            variance[:, seen] = s2 * -np.expm1(g * log_rho2)
        return centre, np.sqrt(variance)


# --------------------------------------------------------------------------------------------
# Entry points (routed to from `ratepool.posterior.score.score_rows` and `ratepool.posterior.predict.predict_totals`)


def _chunk(rates: TemporalRates, memory_bytes: int) -> int:
    """Columns per chunk: the quadrature keeps a few more S x chunk arrays than the static law."""
    return max(1, chunk_size(rates.n_draws, memory_bytes) // 2)


def predictive_columns(
    rates: TemporalRates, codes: np.ndarray, gaps: np.ndarray, scale: np.ndarray, *,
    y: np.ndarray | None = None, probs: tuple[float, ...] = (),
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> dict[str, np.ndarray]:
    """Per column (entity code, gap, multiplier): the predictive ``mean`` and ``var`` of the
    count; with ``y`` (one count per column) the mixture ``cdf``, ``sf`` and ``pmf`` at it;
    with ``probs`` the ``quantiles`` (C, len(probs))."""
    n = len(codes)
    out = {name: np.empty(n) for name in ("mean", "var", *(("cdf", "sf", "pmf") if y is not None
                                                          else ()))}
    out["quantiles"] = np.empty((n, len(probs)), dtype=np.int64)
    phi = rates.phi[:, None]
    step = _chunk(rates, memory_bytes)
    for start in range(0, n, step):
        part = slice(start, start + step)
        centre, spread = rates.log_mean_law(codes[part], gaps[part], scale[part])
        out["mean"][part], out["var"][part] = lognormal_moments(centre, spread, phi)
        if y is not None:
            tails = temporal_tails(y[part], centre, spread, phi)
            for name, values in zip(("cdf", "sf", "pmf"), tails):
                out[name][part] = values.mean(axis=0)
        if probs:
            out["quantiles"][part] = lognormal_quantiles(centre, spread, phi, probs)
    return out


def temporal_columns(
    rates: TemporalRates, entity: pd.Series, count: np.ndarray, window: Any,
    multiplier: np.ndarray | None, interval: float, memory_bytes: int,
) -> dict[str, Any]:
    """What `ratepool.posterior.score.score_rows` needs per row of a temporal fit: ``unseen``, ``cdf``,
    ``sf``, ``pmf``, ``mean``, ``lower``, ``upper``. Tails are computed once per distinct
    (entity, gap, multiplier, count), the mean and interval once per (entity, gap, multiplier).

    Raises
    ------
    TemporalWindowError
        Rows without windows; windows at or before the entity's last fitted window.
    """
    if window is None:
        raise TemporalWindowError(
            "a temporal fit scores each row at its window: give the window column "
            "(window_col / --window-col), in the fit's form (integers or dates)")
    labels = entity.to_numpy() if isinstance(entity, pd.Series) else np.asarray(entity, object)
    window = np.asarray(window)
    codes = rates.entity_codes(pd.Series(labels, dtype=object))
    y = np.asarray(count, dtype=np.int64)
    scale = np.ones(len(y)) if multiplier is None else np.asarray(multiplier, dtype=float)
    gaps = rates.gaps(codes, rates.window_steps(window), labels, window)
    keys = pd.DataFrame({"c": codes, "g": gaps, "e": scale, "y": y})
    pair_of_row = keys.groupby(["c", "g", "e", "y"], sort=False).ngroup().to_numpy()
    group_of_row = keys.groupby(["c", "g", "e"], sort=False).ngroup().to_numpy()
    pairs = keys.drop_duplicates(ignore_index=True)
    groups = keys.drop_duplicates(["c", "g", "e"], ignore_index=True)
    log.info("scoring %d rows of a temporal fit: %d distinct (entity, window, count) pairs "
             "against %d draws", len(y), len(pairs), rates.n_draws)
    tails = predictive_columns(rates, *(pairs[c].to_numpy() for c in ("c", "g", "e")),
                               y=pairs["y"].to_numpy(), memory_bytes=memory_bytes)
    low = (1.0 - interval) / 2.0
    law = predictive_columns(rates, *(groups[c].to_numpy() for c in ("c", "g", "e")),
                             probs=(low, 1.0 - low), memory_bytes=memory_bytes)
    return {"unseen": codes >= rates.n_fitted, "distinct_pairs": len(pairs),
            **{name: tails[name][pair_of_row] for name in ("cdf", "sf", "pmf")},
            "mean": law["mean"][group_of_row], "lower": law["quantiles"][group_of_row, 0],
            "upper": law["quantiles"][group_of_row, 1]}


def temporal_score_rows(
    rates: TemporalRates, entity: pd.Series, count: np.ndarray, *, window: Any,
    multiplier: np.ndarray | None, rule: "AnomalyRule | None", interval: float, seed: int,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> "ScoreResult":
    """`ratepool.posterior.score.score_rows` for a temporal fit: the same table, from the law at each
    row's window (see the module docstring)."""
    rule = rule or AnomalyRule()
    interval = check_probability(interval, "the predictive interval probability")
    y = np.asarray(count, dtype=np.int64)
    row = temporal_columns(rates, entity, y, window, multiplier, interval, memory_bytes)
    cdf, sf, pmf = row["cdf"], row["sf"], row["pmf"]
    p_upper, p_lower = np.minimum(sf + pmf, 1.0), np.minimum(cdf, 1.0)
    p_value = np.minimum(1.0, 2.0 * np.minimum(p_upper, p_lower))
    below = np.maximum(cdf - pmf, 0.0)                         # P(Y < y)
    anomaly, adjusted = rule.apply(p_value)
    table = pd.DataFrame({
        "entity": entity.to_numpy() if isinstance(entity, pd.Series)
        else np.asarray(entity, dtype=object),
        "window": np.asarray(window), "count": y, "unseen": row["unseen"],
        "pred_mean": row["mean"], "pred_lower": row["lower"], "pred_upper": row["upper"],
        "p_upper": p_upper, "p_lower": p_lower, "p_value": p_value,
        "p_mid": np.minimum(1.0, 2.0 * np.minimum(sf, below) + pmf),
        "pit": np.clip(below + np.random.default_rng(seed).random(len(y)) * pmf, 0.0, 1.0),
        "direction": pd.Categorical.from_codes((p_upper < p_lower).astype(np.int8),
                                               categories=["low", "high"]),
        **({} if adjusted is None else {"q_value": adjusted}), "anomaly": anomaly})
    return ScoreResult(table=table, rule=rule, interval=interval, n_draws=rates.n_draws, info={
        "distinct_pairs": row["distinct_pairs"], "model": "temporal (AR(1))",
        "tail_probabilities": (
            "exact over posterior draws: per draw, the NB2 tail mixed over the AR(1) state at "
            "the row's window (Normal(rho^g eta_last, s^2 (1 - rho^(2g))) g steps after the "
            "entity's last fitted window; stationary for unseen entities) by adaptive "
            f"Gauss-Hermite quadrature ({QUADRATURE_NODES} nodes), averaged over draws")})


def temporal_predict(
    rates: TemporalRates,
    entities: Sequence[Any] | pd.Series | pd.Index,
    *,
    windows: int = 1,
    exposure: float | Sequence[float] | np.ndarray = 1.0,
    interval: float = 0.9,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> pd.DataFrame:
    """The count in each entity's next window (one step after its last fitted window; an
    unseen entity: a window at the stationary state), as `ratepool.posterior.predict.predict_totals`.

    Raises
    ------
    TemporalWindowError
        For ``windows`` other than 1: the total of several windows with correlated states has
        no NB2 form; score each window instead.
    """
    if windows != 1:
        raise TemporalWindowError(
            f"a temporal fit predicts one window (the next after each entity's last), not "
            f"the total of {windows!r}: the windows' states are correlated, so their total is "
            "not a negative binomial. Predict with windows=1, or score each future window "
            "(ratepool score, with its window)")
    interval = check_probability(interval, "the predictive interval probability")
    labels = pd.Series(list(entities), dtype=object) if not isinstance(entities, pd.Series) \
        else entities
    if len(labels) == 0:
        raise DataError("give at least one entity to predict")
    scale = check_multiplier(exposure, "exposure", len(labels))
    codes = rates.entity_codes(labels)
    low = (1.0 - interval) / 2.0
    law = predictive_columns(rates, codes, np.ones(len(codes), dtype=np.int64), scale,
                             probs=(low, 0.5, 1.0 - low), memory_bytes=memory_bytes)
    return pd.DataFrame({
        "entity": labels.to_numpy(), "unseen": codes >= rates.n_fitted, "windows": 1,
        "exposure": scale, "mean": law["mean"], "sd": np.sqrt(law["var"]),
        "lower": law["quantiles"][:, 0], "median": law["quantiles"][:, 1],
        "upper": law["quantiles"][:, 2]})


def posterior_rates(idata: az.InferenceData) -> PosteriorRates:
    """The draws that scoring and prediction need from a fit's InferenceData: `TemporalRates`
    for an AR(1) temporal fit (its law at a window depends on the latent state),
    `PosteriorRates` otherwise."""
    posterior = getattr(idata, "posterior", None)
    if posterior is not None and "rho" in posterior:
        return TemporalRates.from_idata(idata)
    return PosteriorRates.from_idata(idata)
