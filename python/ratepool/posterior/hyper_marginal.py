"""The base model's hyperparameters given every entity, with every entity's rate integrated out.

Given (mu, alpha, phi) the base model's entities are independent, and entity i's windows enter
only through its windows n_i and total S_i and, per window, the terms
lgamma(y + phi) - lgamma(phi) - lgamma(y + 1) = -log y - lbeta(phi, y) (0 at y = 0), which
need only the histogram of the counts. So

    log p(mu, alpha, phi | y) = log prior + sum over distinct (n, S) of  m_(n,S) log M(n, S)
                                - sum over count values c > 0 of  f_c [log c + lbeta(phi, c)]
                                + constant,

with m_(n,S) the entities sharing the pair, f_c the windows with c events and log M the
entity's marginal likelihood (`ratepool.posterior.entity_conditional.entity_log_marginal`,
1-D quadrature checked against mpmath's closed form). It costs O(distinct pairs), whatever J:
about 1,000 pairs at J = 1e5 and 2,000 at J = 1e7 in the benchmark's data.

This three-dimensional posterior is sampled by **importance sampling**: the mode of the log
posterior in (log mu, log alpha, log phi) (Nelder–Mead from moment estimates, then Newton steps
with a finite-difference Hessian), a multivariate Student-t proposal (``PROPOSAL_DF`` degrees
of freedom, the inverse Hessian widened by ``PROPOSAL_WIDEN``^2), Pareto-smoothed importance
weights (Vehtari et al. 2024, `arviz.psislw`) and systematic resampling to the draws asked
for. Pareto k (reliable below min(1 - 1 / log10(proposals), 0.7), `pareto_k_limit`) and the
effective sample size of the weights are reported; `fit_scaled` falls back to NUTS on a
subsample above that limit. Nothing is approximated but the quadrature and the Monte Carlo
error.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from ratepool.errors import RatepoolError
from ratepool.model.config import ModelConfig
from ratepool.posterior.entity_conditional import HyperDraws, pair_log_marginals

__all__ = ["EntityStatistics", "MarginalHyperFit", "log_posterior", "pareto_k_limit",
           "sample_hyperparameters"]

log = logging.getLogger(__name__)

#: Degrees of freedom of the Student-t proposal.
PROPOSAL_DF = 7.0
#: Proposal scale relative to the posterior sd the Hessian implies.
PROPOSAL_WIDEN = 1.3
#: Proposal draws per draw kept.
PROPOSALS_PER_DRAW = 2
#: |log mu|, |log alpha|, |log phi| beyond which the density is taken as 0 (exp over/underflows;
#: the priors put less than e^-300 there).
_LOG_BOUND = 300.0
#: Newton steps after Nelder–Mead.
_NEWTON_STEPS = 4


@dataclass(frozen=True)
class EntityStatistics:
    """What the hyperparameters' posterior needs from the data: the distinct (windows, total)
    pairs with the number of entities holding each, and the histogram of the counts."""

    n_windows: np.ndarray
    total: np.ndarray
    entities: np.ndarray
    count_value: np.ndarray
    count_freq: np.ndarray

    @classmethod
    def from_entities(cls, n_windows: np.ndarray, total: np.ndarray, count_value: np.ndarray,
                      count_freq: np.ndarray) -> "EntityStatistics":
        """From every entity's windows and total and the counts' histogram."""
        pairs, entities = np.unique(np.column_stack([np.asarray(n_windows, dtype=np.int64),
                                                     np.asarray(total, dtype=np.int64)]),
                                    axis=0, return_counts=True)
        return cls(pairs[:, 0].astype(float), pairs[:, 1].astype(float),
                   entities.astype(float), np.asarray(count_value, dtype=float),
                   np.asarray(count_freq, dtype=float))

    @property
    def n_entities(self) -> int:
        """J."""
        return int(self.entities.sum())

    def moment_start(self) -> np.ndarray:
        """(log mu, log alpha, log phi) from the moments of the rates and counts."""
        per_entity = self.total / self.n_windows
        weight = self.entities / self.entities.sum()
        mu = max(float(weight @ self.total / (weight @ self.n_windows)), 1e-6)
        spread = float(weight @ (per_entity - mu) ** 2)
        between = max(spread - float(weight @ (mu / self.n_windows)), 0.05 * spread, 1e-12)
        alpha = float(np.clip(mu / between, 1e-3, 1e3))
        windows = self.count_freq.sum()
        mean_y = float(self.count_value @ self.count_freq / windows)
        var_y = float((self.count_value - mean_y) ** 2 @ self.count_freq / windows)
        excess = var_y - mean_y - between
        phi = float(np.clip((between + mu ** 2) / excess, 0.05, 1e3)) if excess > 0 else 10.0
        return np.log([mu, alpha, phi])


def log_posterior(points: np.ndarray, statistics: EntityStatistics,
                  config: ModelConfig) -> np.ndarray:
    """The log posterior density of (log mu, log alpha, log phi) at each row of ``points``
    (shape (k, 3)), up to one constant: priors as in the Stan program, Jacobian included."""
    points = np.atleast_2d(np.asarray(points, dtype=float))
    value = np.full(len(points), -np.inf)
    inside = (np.abs(points) < _LOG_BOUND).all(axis=1)  # False for NaN too
    if not inside.any():
        return value
    mu, alpha, phi = (np.exp(points[inside, i]) for i in range(3))
    prior = (-config.mu_prior_rate * mu - 0.5 * (alpha / config.alpha_prior_sd) ** 2
             - 0.5 * (phi / config.overdispersion_prior_sd) ** 2 + points[inside].sum(axis=1))
    positive = statistics.count_value > 0
    values = statistics.count_value[positive]
    counts = -(np.log(values)[None, :] + special.betaln(phi[:, None], values[None, :])
               ) @ statistics.count_freq[positive]
    entities = pair_log_marginals(statistics.n_windows, statistics.total,
                                  HyperDraws(mu, alpha, phi)) @ statistics.entities
    value[inside] = prior + counts + entities
    return np.where(np.isfinite(value), value, -np.inf)


def pareto_k_limit(n_draws: int) -> float:
    """The Pareto k up to which importance weights of ``n_draws`` draws are reliable:
    min(1 - 1 / log10(n_draws), 0.7) (Vehtari et al. 2024)."""
    return min(1.0 - 1.0 / math.log10(max(n_draws, 11)), 0.7)


@dataclass(frozen=True)
class MarginalHyperFit:
    """Hyperparameter draws from every entity's marginal likelihood (module docstring).

    Attributes
    ----------
    draws : HyperDraws
        Equal-weight draws (resampled).
    mode : numpy.ndarray
        (mu, alpha, phi) at the posterior mode of their logs.
    pareto_k : float
        Pareto-smoothed importance sampling's k (reliable below 0.7).
    ess : float
        Effective sample size of the importance weights.
    n_proposals : int
        Proposal draws weighted.
    """

    draws: HyperDraws
    mode: np.ndarray
    pareto_k: float
    ess: float
    n_proposals: int

    @property
    def reliable(self) -> bool:
        """Pareto k at most `pareto_k_limit` of the proposals."""
        return bool(self.pareto_k <= pareto_k_limit(self.n_proposals))


def _hessian(function, centre: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of ``function`` (vectorised over rows) at ``centre`` by central
    differences with per-coordinate ``step`` (one call of 19 points)."""
    d = len(centre)
    eye = np.eye(d) * step
    offsets = [np.zeros(d)] + [s * eye[i] for i in range(d) for s in (1, -1)]
    pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
    offsets += [si * eye[i] + sj * eye[j] for i, j in pairs for si in (1, -1) for sj in (1, -1)]
    values = function(centre + np.array(offsets))
    f0 = values[0]
    plus, minus = values[1:2 * d + 1:2], values[2:2 * d + 1:2]
    gradient = (plus - minus) / (2 * step)
    hessian = np.diag((plus - 2 * f0 + minus) / step ** 2)
    corners = values[2 * d + 1:].reshape(len(pairs), 4)
    for (i, j), (pp, pm, mp, mm) in zip(pairs, corners):
        hessian[i, j] = hessian[j, i] = (pp - pm - mp + mm) / (4 * step[i] * step[j])
    return gradient, hessian


def _mode(statistics: EntityStatistics, config: ModelConfig
          ) -> tuple[np.ndarray, np.ndarray]:
    """The mode of `log_posterior` and the covariance its curvature implies."""
    def function(points: np.ndarray) -> np.ndarray:
        return log_posterior(points, statistics, config)

    start = statistics.moment_start()
    found = optimize.minimize(lambda v: -function(v[None, :])[0], start, method="Nelder-Mead",
                              options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 3000})
    centre, step = found.x, np.full(3, 1e-3)
    for _ in range(_NEWTON_STEPS):
        gradient, hessian = _hessian(function, centre, step)
        try:
            covariance = np.linalg.inv(-hessian)
            np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError as error:
            raise RatepoolError("the hyperparameters' log posterior is not concave at its "
                                "mode: they are not identified by these data") from error
        move = covariance @ gradient
        if function((centre + move)[None, :])[0] >= function(centre[None, :])[0]:
            centre = centre + move
        step = 0.2 * np.sqrt(np.diag(covariance))
    return centre, covariance


def _systematic(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` systematic resamples of normalised ``weights``."""
    positions = (rng.uniform() + np.arange(n)) / n
    return np.minimum(np.searchsorted(np.cumsum(weights), positions), len(weights) - 1)


def sample_hyperparameters(statistics: EntityStatistics, config: ModelConfig,
                           draws: int) -> MarginalHyperFit:
    """Draws of (mu, alpha, phi) from their posterior given every entity (module docstring).

    Parameters
    ----------
    statistics : EntityStatistics
        The data's distinct (windows, total) pairs and counts' histogram.
    config : ModelConfig
        The priors; ``random_seed`` seeds the proposal and the resampling.
    draws : int
        Draws to return; ``PROPOSALS_PER_DRAW`` times as many proposals are weighted.

    Returns
    -------
    MarginalHyperFit
    """
    import arviz as az

    centre, covariance = _mode(statistics, config)
    rng = np.random.default_rng([int(config.random_seed), 31])
    proposal = stats.multivariate_t(loc=centre, shape=covariance * PROPOSAL_WIDEN ** 2,
                                    df=PROPOSAL_DF, seed=rng)
    n_proposals = PROPOSALS_PER_DRAW * int(draws)
    points = np.atleast_2d(proposal.rvs(size=n_proposals))
    log_weight = log_posterior(points, statistics, config) - proposal.logpdf(points)
    smoothed, pareto_k = az.psislw(log_weight)
    weights = np.exp(smoothed - special.logsumexp(smoothed))
    chosen = np.exp(points[_systematic(weights, int(draws), rng)])
    fit = MarginalHyperFit(draws=HyperDraws(chosen[:, 0], chosen[:, 1], chosen[:, 2]),
                           mode=np.exp(centre), pareto_k=float(pareto_k),
                           ess=float(1.0 / np.sum(weights ** 2)), n_proposals=n_proposals)
    log.info("hyperparameters from %d entities (%d distinct pairs): Pareto k %.2f, ESS %.0f "
             "of %d proposals", statistics.n_entities, len(statistics.entities), fit.pareto_k,
             fit.ess, n_proposals)
    return fit
