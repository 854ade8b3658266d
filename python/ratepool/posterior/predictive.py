"""The exact posterior predictive of a count: a mixture of NegBinomial2 laws over the draws.

Given the posterior draws s = 1..S, a new count of entity i in one window is

    Y | s  ~  z_s [Y = 0] + (1 - z_s) NegBinomial2(m_s, phi_s),   m_s = e * theta_{i,s}

and its predictive law is the average of these S laws. ``e`` is the window's exposure (a mean
multiplier, 1 without exposure) and ``z_s`` the structural-zero probability of a zero-inflated
fit. The sum of k windows of one entity given its draw is NegBinomial2(k m_s, k phi_s) (no
zero-inflation), so the same functions give the law of k-window totals.

An entity the fit has not seen has, per draw, theta ~ Gamma(a_s, alpha_s) with a_s =
mu_{i,s} alpha_s (mu_{i,s} = mu_s exp(x_i' beta_s) at its own covariates, mu_s without
covariates). theta is integrated out per draw by generalised Gauss–Laguerre quadrature with the
weight t^(a_s - 1) e^(-t) (t = alpha_s theta), so a shape far below 1 is handled exactly by the
weight: its law is a mixture over draws x `UNSEEN_NODES` nodes with weights (`unseen_law`),
and every quantity below comes from that one law. The program's single draw ``theta_new`` is
not used for predictions.

The laws themselves, and every probability, moment and quantile computed from them, are in
`ratepool.posterior.mixture_law`.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import arviz as az
import numpy as np
import pandas as pd

from ratepool.errors import DataError, RatepoolError
from ratepool.posterior.inference import covariate_encoding
from ratepool.posterior.mixture_law import (
    DEFAULT_MEMORY_BYTES,
    UNSEEN_NODES,
    MixtureLaw,
    chunk_size,
    gamma_quadrature,
)

__all__ = ["PosteriorRates", "label_key", "check_probability", "check_multiplier"]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Entity labels, matched with their types


def label_key(value: Any) -> tuple[str, Any]:
    """(kind, value) of an entity label: labels match only when both agree.

    The kind is ``"bool"``, ``"int"``, ``"float"``, ``"str"`` or the type's name, so numpy and
    Python scalars of one kind match each other, but ``"007"`` does not match ``7``, ``7``
    does not match ``7.0`` and ``True`` does not match ``1``.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, numbers.Integral):
        return "int", int(value)
    if isinstance(value, numbers.Real):
        return "float", float(value)
    if isinstance(value, str):
        return "str", str(value)
    return type(value).__name__, value


_UNIFORM_KINDS = {"string": "str", "integer": "int", "floating": "float", "boolean": "bool"}


def _label_keys(column: pd.Series) -> tuple[np.ndarray, list[tuple[str, Any]]]:
    """Codes into the distinct (kind, value) keys of ``column``, and those keys.

    A column of one kind is factorised directly (one Python call per distinct label, not per
    row); a mixed object column per row, because pandas would merge ``1``, ``1.0`` and ``True``.
    """
    kind = _UNIFORM_KINDS.get(pd.api.types.infer_dtype(column, skipna=False))
    if kind is not None:
        codes, uniques = pd.factorize(column, sort=False)
        return codes, [label_key(v) for v in uniques]
    keyed = np.empty(len(column), dtype=object)
    keyed[:] = [label_key(v) for v in column]
    codes, uniques = pd.factorize(keyed, sort=False)
    return codes, list(uniques)


# --------------------------------------------------------------------------------------------
# Posterior draws


@dataclass(frozen=True)
class PosteriorRates:
    """The posterior draws a predictive needs, flattened over chains.

    Attributes
    ----------
    labels : numpy.ndarray
        The fit's entity labels (object array, their own types); column j of ``theta``.
    theta : numpy.ndarray
        (S, J) entity rates.
    theta_new : numpy.ndarray
        (S,) rate of an unseen entity drawn from the population.
    phi : numpy.ndarray
        (S,) overdispersion.
    zero_prob : numpy.ndarray or None
        (S,) structural-zero probability when the model is zero-inflated; None otherwise.
    population : dict or None
        (S,) draws of mu and alpha, and with entity covariates (S, P) draws of beta and the
        covariate encoding: the population law of unseen entities (`unseen_law`). When None
        (hand-built draws), unseen entities fall back to ``theta_new``.
    new_mean : numpy.ndarray or None
        (S, U) population mean mu_i of each unseen entity added by `with_new_entities` (the
        columns after the fitted ones).
    """

    labels: np.ndarray
    theta: np.ndarray
    theta_new: np.ndarray
    phi: np.ndarray
    zero_prob: np.ndarray | None = None
    population: dict[str, Any] | None = None
    #: Columns of ``theta`` that are the fit's entities (the rest: unseen entities drawn at
    #: their covariates by `with_new_entities`); all of them when None.
    fitted_entities: int | None = None
    new_mean: np.ndarray | None = None

    @property
    def n_fitted(self) -> int:
        """How many of the columns are entities the fit has seen."""
        return self.n_entities if self.fitted_entities is None else self.fitted_entities

    @classmethod
    def from_idata(cls, idata: az.InferenceData) -> "PosteriorRates":
        """The draws of a fit's (or a reloaded results folder's) InferenceData.

        Raises
        ------
        RatepoolError
            If the InferenceData has no posterior with theta, theta_new and phi.
        """
        posterior = getattr(idata, "posterior", None)
        missing = [name for name in ("theta", "theta_new", "phi")
                   if posterior is None or name not in posterior]
        if missing:
            raise RatepoolError(
                f"the fit has no posterior draws of {missing}: scoring needs a fitted model "
                "(a results folder from 'ratepool fit' or 'ratepool report', not prior draws)")
        if cls is PosteriorRates and "rho" in posterior:  # the AR(1) temporal model
            raise RatepoolError(
                "this is a temporal (AR(1)) fit: its predictive law at a window depends on the "
                "latent state; read its draws with "
                "ratepool.posterior.temporal_score.posterior_rates(idata)")
        theta = posterior["theta"].transpose("chain", "draw", "entity").values
        n_draws = theta.shape[0] * theta.shape[1]
        labels = np.empty(theta.shape[2], dtype=object)
        labels[:] = list(posterior["entity"].values)
        zero_prob = (posterior["pi"].values.reshape(n_draws) if "pi" in posterior else None)
        population = None
        if "mu" in posterior and "alpha" in posterior:
            population = {"mu": posterior["mu"].values.reshape(n_draws),
                          "alpha": posterior["alpha"].values.reshape(n_draws)}
            encoding = covariate_encoding(idata)
            if encoding is not None:
                population.update(beta=posterior["beta"].values.reshape(n_draws, -1),
                                  covariates=encoding)
        return cls(labels=labels, theta=theta.reshape(n_draws, -1),
                   theta_new=posterior["theta_new"].values.reshape(n_draws),
                   phi=posterior["phi"].values.reshape(n_draws), zero_prob=zero_prob,
                   population=population)

    @property
    def covariates(self) -> Any:
        """The fit's covariate encoding, or None without entity covariates."""
        return None if self.population is None else self.population.get("covariates")

    def with_new_entities(self, rows: pd.DataFrame, entity_col: str,
                          seed: int = 0) -> "PosteriorRates":
        """These draws plus one column per entity of ``rows`` the fit has not seen, whose
        population mean is taken at that entity's own covariates: mu_i = mu exp(z' beta) per
        draw. Without covariates the draws are returned as they are (unseen entities then
        follow the population law at mu). Nothing is drawn (``seed`` is kept for callers)."""
        encoding = self.covariates
        if encoding is None:
            return self
        codes = self.entity_codes(rows[entity_col])
        unseen = rows.loc[codes == self.n_entities]
        if unseen.empty:
            return self
        firsts = unseen.drop_duplicates(subset=[entity_col])
        design = encoding.scale_new(firsts)
        mean = self.population["mu"][:, None] * np.exp(self.population["beta"] @ design.T)
        labels = np.empty(self.n_entities + len(firsts), dtype=object)
        labels[:self.n_entities] = self.labels
        labels[self.n_entities:] = list(firsts[entity_col])
        return PosteriorRates(
            labels=labels, theta=self.theta, theta_new=self.theta_new, phi=self.phi,
            zero_prob=self.zero_prob, population=self.population,
            fitted_entities=self.n_fitted,
            new_mean=mean if self.new_mean is None else np.hstack([self.new_mean, mean]))

    @property
    def n_draws(self) -> int:
        """S, the number of posterior draws."""
        return len(self.phi)

    @property
    def n_entities(self) -> int:
        """Labelled columns (fitted, then unseen ones added by `with_new_entities`); code
        `n_entities` stands for any other unseen entity."""
        return len(self.labels)

    def entity_codes(self, labels: pd.Series | Sequence[Any]) -> np.ndarray:
        """Column of each label in ``theta``; J (`n_entities`) for labels the fit has not seen.

        Labels match with their types (see `label_key`). Unseen labels whose text equals a
        fitted label's (``"7"`` against ``7``) are logged as a warning: the types differ.
        """
        column = labels if isinstance(labels, pd.Series) else pd.Series(list(labels),
                                                                         dtype=object)
        codes, keys = _label_keys(column)
        fitted = {label_key(v): j for j, v in enumerate(self.labels)}
        code_of_key = np.array([fitted.get(key, self.n_entities) for key in keys] or [0],
                               dtype=np.int64)
        self._warn_type_mismatch([key for key in keys if key not in fitted])
        return code_of_key[codes] if len(codes) else np.zeros(0, dtype=np.int64)

    def _warn_type_mismatch(self, unseen: list[tuple[str, Any]]) -> None:
        by_text = {str(label_key(v)[1]): v for v in self.labels}
        clashes = [(value, by_text[str(value)]) for _, value in unseen if str(value) in by_text]
        if clashes:
            new, old = clashes[0]
            log.warning(
                "%d entity label(s) are not in the fit but their text is, with another type, "
                "e.g. %r (%s) against the fit's %r (%s); they are scored as unseen entities. "
                "Labels match with their types ('007' is not 7): convert the column to the "
                "fit's type if they are the same entities", len(clashes), new,
                type(new).__name__, old, type(old).__name__)

    def rates(self, codes: np.ndarray) -> np.ndarray:
        """(S, len(codes)) rate draws of fitted entities; code `n_fitted` or more gives
        theta_new (one Gamma draw: for simulation only, never for probabilities)."""
        codes = np.asarray(codes, dtype=np.int64)
        out = np.empty((self.n_draws, len(codes)))
        known = codes < self.n_fitted
        out[:, known] = self.theta[:, codes[known]]
        out[:, ~known] = self.theta_new[:, None]
        return out

    def unseen_mean(self, codes: np.ndarray) -> np.ndarray:
        """(S, len(codes)) population mean mu_i of unseen entities (codes >= `n_fitted`).

        Raises
        ------
        DataError
            If the fit has covariates and an entity's covariates were not given.
        """
        codes = np.asarray(codes, dtype=np.int64)
        if self.covariates is not None and (codes >= self.n_entities).any():
            raise DataError(
                "the fit has entity covariates: an entity it has not seen is predicted at its "
                f"own covariates; give them (columns {list(self.covariates.source_columns)}) "
                "for every unseen entity")
        out = np.empty((self.n_draws, len(codes)))
        out[:] = self.population["mu"][:, None]
        added = codes < self.n_entities
        if added.any():
            out[:, added] = self.new_mean[:, codes[added] - self.n_fitted]
        return out

    def law(self, codes: np.ndarray, mean_scale: np.ndarray | float = 1.0,
            phi_scale: float = 1.0) -> "MixtureLaw":
        """The law of the entities ``codes`` (all fitted, or all unseen): per-draw NB2 laws
        with mean theta x ``mean_scale`` and phi x ``phi_scale`` (k windows' total: both
        scales k), with this fit's zero-inflation. Unseen entities: `unseen_law`."""
        codes = np.asarray(codes, dtype=np.int64)
        if self.zero_prob is not None and phi_scale != 1.0:
            raise RatepoolError("the total of several windows of a zero-inflated model is not "
                                "NB2; only single windows are supported there")
        scale = np.broadcast_to(np.asarray(mean_scale, dtype=float), (len(codes),))
        unseen = codes >= self.n_fitted
        if unseen.any() and self.population is not None:
            if not unseen.all():
                raise RatepoolError("law(): give fitted and unseen entities separately "
                                    "(see PosteriorRates.laws)")
            return self.unseen_law(codes, scale, phi_scale)
        zero = None if self.zero_prob is None else self.zero_prob[:, None]
        return MixtureLaw(mean=self.rates(codes) * scale[None, :],
                          phi=(self.phi * phi_scale)[:, None], zero_prob=zero)

    def unseen_law(self, codes: np.ndarray, mean_scale: np.ndarray,
                   phi_scale: float = 1.0, n_nodes: int = UNSEEN_NODES) -> "MixtureLaw":
        """The exact law of unseen entities: theta ~ Gamma(mu_i alpha, alpha) integrated out
        per draw by `gamma_quadrature`; rows are draws x nodes, weighted (w_k / S)."""
        alpha = self.population["alpha"][:, None]
        shape = self.unseen_mean(codes) * alpha                         # (S, C)
        nodes, weights = gamma_quadrature(shape, n_nodes)               # (S, C, K)
        theta = nodes / alpha[:, :, None]
        n_rows = self.n_draws * n_nodes
        mean = (theta * np.asarray(mean_scale, dtype=float)[None, :, None])
        mean = mean.transpose(0, 2, 1).reshape(n_rows, len(codes))
        weight = (weights / self.n_draws).transpose(0, 2, 1).reshape(n_rows, len(codes))
        phi = np.repeat(self.phi * phi_scale, n_nodes)[:, None]
        zero = None if self.zero_prob is None else np.repeat(self.zero_prob, n_nodes)[:, None]
        return MixtureLaw(mean=mean, phi=phi, zero_prob=zero, weight=weight)

    def laws(self, codes: np.ndarray, mean_scale: np.ndarray | float = 1.0,
             phi_scale: float = 1.0, memory_bytes: int = DEFAULT_MEMORY_BYTES
             ) -> Iterator[tuple[np.ndarray, "MixtureLaw"]]:
        """(positions, law) for chunks of ``codes``: fitted entities in chunks of S columns,
        unseen ones (S x `UNSEEN_NODES` rows) in chunks of their own, each within
        ``memory_bytes``."""
        codes = np.asarray(codes, dtype=np.int64)
        scale = np.broadcast_to(np.asarray(mean_scale, dtype=float), (len(codes),))
        unseen = codes >= self.n_fitted
        nodes = UNSEEN_NODES if self.population is not None else 1
        for subset, rows in ((~unseen, self.n_draws), (unseen, self.n_draws * nodes)):
            where = np.flatnonzero(subset)
            step = chunk_size(rows, memory_bytes)
            for start in range(0, len(where), step):
                part = where[start:start + step]
                yield part, self.law(codes[part], scale[part], phi_scale)


def check_probability(value: float, name: str, *, flag: str | None = None) -> float:
    """``value`` as a float strictly between 0 and 1, or a `RatepoolError` naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not 0.0 < number < 1.0:
        where = f" ({flag})" if flag else ""
        raise RatepoolError(f"{name}{where} must be a number strictly between 0 and 1, "
                            f"got {value!r}")
    return number


def check_multiplier(values: Any, name: str, size: int) -> np.ndarray:
    """A positive, finite mean multiplier (scalar or one per item) as a float array."""
    array = np.asarray(values, dtype=float) if not isinstance(values, str) else np.array([])
    if array.ndim == 0:
        array = np.full(size, float(array))
    if array.shape != (size,):
        raise DataError(f"{name} must be one positive number or one per entity ({size}), "
                        f"got {values!r}")
    bad = ~np.isfinite(array) | (array <= 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name} must be positive and finite; item {first} is {array[first]!r}")
    return array
