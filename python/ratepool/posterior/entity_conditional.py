"""An entity's rate given the hyperparameters, integrated exactly from its sufficient statistics.

Given one posterior draw s of (mu, alpha, phi), the base model's entities are independent, and
entity i's rate has the conditional posterior

    p(theta | n, S, s)  ∝  theta^(a + S - 1) exp(-alpha theta) (1 + theta / phi)^-(S + n phi),

with a = mu alpha, n its windows and S its total count (the NB2 terms that do not involve
theta cancel). It needs only (n, S): a 1-D problem per entity and draw, solved here by
quadrature, and the entity's posterior is the average of these conditionals over the draws.
This is what the scale-out path (`ratepool.workflow.scale_out`) maps over a cluster.

Quadrature, per draw and (n, S):

* ``a + S < GAUSS_HERMITE_SHAPE`` (few events; the density may be singular at 0 when
  a + S < 1): generalised Gauss–Laguerre in theta with the weight theta^(a+S-1) e^(-B theta)
  (`ratepool.posterior.mixture_law.gamma_quadrature`, exact for the singular part), where
  B = alpha + (S + n phi) / (phi + theta*) makes the remaining factor flat at the mode theta*.
* otherwise (the log density in u = log theta is strictly concave and near-Gaussian):
  Gauss–Hermite in u around its mode with the scale of its curvature.

Both give E[theta^k | n, S, s] for k = 0, 1, 2 as ratios of sums, checked against
``scipy.integrate.quad`` in the tests.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import special, stats

from ratepool.errors import RatepoolError
from ratepool.posterior.mixture_law import gamma_quadrature

__all__ = ["GAUSS_HERMITE_SHAPE", "HyperDraws", "conditional_moments", "entity_log_marginal",
           "entity_summaries", "pair_log_marginals"]

log = logging.getLogger(__name__)

#: a + S from which the Gauss–Hermite rule in log theta is used (below: Gauss–Laguerre).
GAUSS_HERMITE_SHAPE = 40.0
#: Nodes of either rule.
NODES = 48
#: Draws (evenly thinned) whose conditionals make the interval's mixture.
INTERVAL_DRAWS = 200
#: (draw, entity) pairs per block of work (bounds memory to ~ 8 x NODES x this doubles).
BLOCK = 200_000


#: ``rules(mask)`` -> (nodes, weights) of the elements ``mask`` (see `conditional_moments`).
Rules = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class HyperDraws:
    """Posterior draws of the base model's hyperparameters (equal-length 1-D arrays)."""

    mu: np.ndarray
    alpha: np.ndarray
    phi: np.ndarray

    def __post_init__(self) -> None:
        arrays = [np.asarray(v, dtype=float) for v in (self.mu, self.alpha, self.phi)]
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise RatepoolError("mu, alpha and phi draws must be 1-D arrays of one length")
        if any((~np.isfinite(a) | (a <= 0)).any() for a in arrays):
            raise RatepoolError("hyperparameter draws must be positive and finite")
        for name, value in zip(("mu", "alpha", "phi"), arrays):
            object.__setattr__(self, name, value)

    @property
    def n_draws(self) -> int:
        """S, the number of draws."""
        return len(self.mu)


def _mode(a_s: np.ndarray, alpha: np.ndarray, phi: np.ndarray, events: np.ndarray
          ) -> np.ndarray:
    """theta* with d/du log p = 0 (u = log theta): the positive root of
    alpha t^2 + (alpha phi + events - a_s) t - a_s phi = 0, a_s = a + S, events = S + n phi
    (stable form)."""
    b = alpha * phi + events - a_s
    root = np.sqrt(b * b + 4.0 * alpha * a_s * phi)
    with np.errstate(divide="ignore", invalid="ignore"):  # the branch np.where drops
        return np.where(b > 0, 2.0 * a_s * phi / (b + root), (root - b) / (2.0 * alpha))


def _log_density_u(u: np.ndarray, a, alpha, phi, total, n) -> np.ndarray:
    """log of the density of u = log theta: a u - alpha e^u + S log(theta / (phi + theta))
    - n phi log(1 + theta / phi), i.e. the conditional's integrand times theta, over phi^S.
    Written so that no two large terms cancel when S is huge (S u against S log theta)."""
    return (a * u - alpha * np.exp(u) - total * np.log1p(phi * np.exp(-u))
            - n * phi * np.log1p(np.exp(u) / phi))


def _conditional_rule(n: np.ndarray, total: np.ndarray, mu: np.ndarray, alpha: np.ndarray,
                      phi: np.ndarray, rules: Rules | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The quadrature of the conditional posterior, elementwise over broadcast inputs.

    Returns (theta, log_weight, log_scale), each row one element: the nodes theta_k, and log
    weights with  phi^-S times the integral of
    theta^(a + S - 1) e^(-alpha theta) (1 + theta/phi)^-(S + n phi) d theta
    ~  exp(log_scale) * sum_k exp(log_weight_k)  (module docstring).
    """
    n, total, mu, alpha, phi = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                     for v in (n, total, mu, alpha, phi)))
    a_s = mu * alpha + total
    events = total + n * phi
    mode = _mode(a_s, alpha, phi, events)
    theta = np.empty(a_s.shape + (NODES,))
    log_weight = np.empty(a_s.shape + (NODES,))
    log_scale = np.empty(a_s.shape)
    laguerre = a_s < GAUSS_HERMITE_SHAPE
    if laguerre.any():
        k = laguerre
        rate = alpha[k] + events[k] / (phi[k] + mode[k])
        t, w = gamma_quadrature(a_s[k], NODES) if rules is None else rules(k)
        theta[k] = t / rate[:, None]
        # theta = t / rate, t ~ Gamma(a + S, 1): the integral is Gamma(a + S) rate^-(a + S)
        # E[r(T / rate)], r the remaining factor, flat at the mode:
        # (1 + theta/phi)^-events e^((rate - alpha) theta)
        log_weight[k] = (np.log(w) - events[k][:, None] * np.log1p(theta[k] / phi[k][:, None])
                         + (rate - alpha[k])[:, None] * theta[k])
        log_scale[k] = (special.gammaln(a_s[k]) - a_s[k] * np.log(rate)
                        - total[k] * np.log(phi[k]))
    if (~laguerre).any():
        k = ~laguerre
        z, w = special.roots_hermitenorm(NODES)
        centre = np.log(mode[k])
        curvature = (alpha[k] * mode[k]
                     + events[k] * phi[k] * mode[k] / (phi[k] + mode[k]) ** 2)
        u = centre[:, None] + z[None, :] / np.sqrt(curvature)[:, None]
        theta[k] = np.exp(u)
        # u = centre + z / sqrt(curvature): the integral over u of the density of u is
        # curvature^-1/2 E_z[exp(log density + z^2 / 2)] sqrt(2 pi), the weights summing to
        # sqrt(2 pi)
        log_weight[k] = np.log(w)[None, :] + (
            _log_density_u(u, (a_s - total)[k][:, None], alpha[k][:, None], phi[k][:, None],
                           total[k][:, None], n[k][:, None]) + 0.5 * z[None, :] ** 2)
        log_scale[k] = -0.5 * np.log(curvature)
    return theta, log_weight, log_scale


def conditional_moments(n: np.ndarray, total: np.ndarray, mu: np.ndarray, alpha: np.ndarray,
                        phi: np.ndarray, rules: Rules | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """E[theta | n, S, draw] and E[theta^2 | n, S, draw], elementwise over broadcast inputs.

    Parameters
    ----------
    n, total : numpy.ndarray
        Windows and total count of the entities.
    mu, alpha, phi : numpy.ndarray
        The hyperparameters of the draws (broadcast against ``n``).
    rules : callable, optional
        ``rules(mask)`` -> the Gauss–Laguerre (nodes, weights) of the broadcast elements
        ``mask`` (shape a + S); computed here when omitted (`entity_summaries` passes a table
        that serves every entity).

    Returns
    -------
    (first, second) : tuple of numpy.ndarray
        The conditional posterior's first two moments.
    """
    theta, log_weight, _ = _conditional_rule(n, total, mu, alpha, phi, rules)
    shape = theta.shape[:-1]
    first, second = _ratio_moments(theta.reshape(-1, NODES), log_weight.reshape(-1, NODES))
    return first.reshape(shape), second.reshape(shape)


def entity_log_marginal(n: np.ndarray, total: np.ndarray, mu: np.ndarray, alpha: np.ndarray,
                        phi: np.ndarray, rules: Rules | None = None) -> np.ndarray:
    """log p(entity's windows | mu, alpha, phi) with its rate integrated out, up to the terms
    that depend on the individual counts only through phi (elementwise, broadcast inputs).

    With a = mu alpha and the NB2 likelihood of n windows with total S,

        log p = a log alpha - lgamma(a) - S log phi
                + log integral theta^(a + S - 1) e^(-alpha theta) (1 + theta/phi)^-(S + n phi)

    (computed with the S log phi inside the integral, so that huge totals lose no precision)

    plus, per window with y events, lgamma(y + phi) - lgamma(phi) - lgamma(y + 1), which the
    caller adds from the counts' histogram (`ratepool.posterior.hyper_marginal`).
    """
    theta, log_weight, log_scale = _conditional_rule(n, total, mu, alpha, phi, rules)
    a = np.asarray(mu, dtype=float) * np.asarray(alpha, dtype=float)
    peak = log_weight.max(axis=-1)
    log_sum = peak + np.log(np.exp(log_weight - peak[..., None]).sum(axis=-1))
    return a * np.log(alpha) - special.gammaln(a) + log_scale + log_sum


def _ratio_moments(theta: np.ndarray, log_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sum w theta^k / sum w for k = 1, 2, per row, with log weights."""
    weight = np.exp(log_weight - log_weight.max(axis=1, keepdims=True))
    weight /= weight.sum(axis=1, keepdims=True)
    return (weight * theta).sum(axis=1), (weight * theta * theta).sum(axis=1)


def entity_summaries(n_windows: np.ndarray, totals: np.ndarray, draws: HyperDraws,
                     interval: float = 0.9) -> pd.DataFrame:
    """Each entity's rate, averaged over the hyperparameter draws.

    Entities with the same (n, S) share one computation.

    Returns
    -------
    pandas.DataFrame
        One row per entity, in order: ``mean`` and ``sd`` (exact mixtures of the per-draw
        conditionals), ``lower`` and ``upper`` (the central ``interval`` of the mixture, over
        `INTERVAL_DRAWS` evenly thinned draws, of Gamma laws with each conditional's mean and
        variance: an approximation, exact as phi grows, where each conditional is
        Gamma(a + S, alpha + n)).
    """
    n_windows = np.asarray(n_windows, dtype=np.int64)
    totals = np.asarray(totals, dtype=np.int64)
    pairs, where = np.unique(np.column_stack([n_windows, totals]), axis=0, return_inverse=True)
    where = np.asarray(where).reshape(-1)
    n_pairs, n_draws = len(pairs), draws.n_draws
    first = np.empty((n_pairs, n_draws))
    second = np.empty((n_pairs, n_draws))
    for part, arguments in _pair_blocks(pairs[:, 0], pairs[:, 1], draws):
        first[part], second[part] = conditional_moments(*arguments)
    mean = first.mean(axis=1)
    var = np.maximum(second.mean(axis=1) - mean ** 2, 0.0)
    some = np.linspace(0, n_draws - 1, min(n_draws, INTERVAL_DRAWS)).round().astype(int)
    lower, upper = _gamma_mixture_interval(
        first[:, some], np.maximum(second[:, some] - first[:, some] ** 2, 1e-300), interval)
    table = pd.DataFrame({"mean": mean, "sd": np.sqrt(var), "lower": lower, "upper": upper})
    log.debug("entity rates: %d entities, %d distinct (n, S), %d draws",
              len(n_windows), n_pairs, n_draws)
    return table.iloc[where].reset_index(drop=True)


def pair_log_marginals(n_windows: np.ndarray, totals: np.ndarray, draws: HyperDraws
                       ) -> np.ndarray:
    """`entity_log_marginal` of each (windows, total) pair at each draw: (draws, pairs)."""
    n_windows = np.asarray(n_windows, dtype=float)
    out = np.empty((len(n_windows), draws.n_draws))
    for part, arguments in _pair_blocks(n_windows, np.asarray(totals, dtype=float), draws):
        out[part] = entity_log_marginal(*arguments)
    return out.T


def _pair_blocks(n_windows: np.ndarray, totals: np.ndarray, draws: HyperDraws):
    """Blocks of pairs, each with the arguments of `conditional_moments` /
    `entity_log_marginal` for its pairs (rows) x every draw (columns), the Gauss–Laguerre
    rules taken from one table per (draw, total) shared by all pairs."""
    n_draws = draws.n_draws
    table_nodes, table_weights = _laguerre_table(draws.mu * draws.alpha, totals)
    step = max(1, BLOCK // n_draws)
    for start in range(0, len(n_windows), step):
        part = slice(start, start + step)
        totals_part = np.broadcast_to(totals[part, None], (len(totals[part]), n_draws))
        table_rows = totals_part.astype(np.int64)
        draw_index = np.broadcast_to(np.arange(n_draws)[None, :], totals_part.shape)

        def rules(mask: np.ndarray, table_rows=table_rows, draw_index=draw_index
                  ) -> tuple[np.ndarray, np.ndarray]:
            index = (table_rows[mask], draw_index[mask])
            return table_nodes[index], table_weights[index]

        yield part, (n_windows[part, None], totals_part, draws.mu[None, :],
                     draws.alpha[None, :], draws.phi[None, :], rules)


def _laguerre_table(a: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Laguerre rules of shape a_d + S for every draw d and total S among ``present``
    with a_d + S < `GAUSS_HERMITE_SHAPE` (the others are never used: NaN), as
    (totals, draws, NODES) arrays: one rule per (draw, total), shared by all entities."""
    totals = np.arange(int(math.ceil(GAUSS_HERMITE_SHAPE)))
    shapes = a[None, :] + totals[:, None]
    used = (shapes < GAUSS_HERMITE_SHAPE) & np.isin(totals, present)[:, None]
    nodes = np.full(shapes.shape + (NODES,), np.nan)
    weights = np.full(shapes.shape + (NODES,), np.nan)
    if used.any():
        nodes[used], weights[used] = gamma_quadrature(shapes[used], NODES)
    return nodes, weights


def _gamma_mixture_interval(mean: np.ndarray, var: np.ndarray, interval: float
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Central interval of the per-row mixture of Gamma(mean^2/var, mean/var) laws, by
    bisection on the mixture CDF (40 halvings of a bracket from the components' quantiles,
    which holds it: 1e-12 of the bracket)."""
    if not 0.0 < interval < 1.0:
        raise RatepoolError(f"interval must lie in (0, 1), got {interval!r}")
    shape, rate = mean ** 2 / var, mean / var
    out = []
    for prob in ((1.0 - interval) / 2.0, (1.0 + interval) / 2.0):
        quantiles = stats.gamma.ppf(prob, shape, scale=1.0 / rate)
        lo, hi = quantiles.min(axis=1), quantiles.max(axis=1)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            below = special.gammainc(shape, rate * mid[:, None]).mean(axis=1) < prob
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        out.append(0.5 * (lo + hi))
    return out[0], out[1]
