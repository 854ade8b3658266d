"""The law of a count whose NB2 mean is lognormal: NB2(exp(centre + spread x), phi) mixed over
x ~ Normal(0, 1), per posterior draw (the temporal model's predictive at a window,
`ratepool.posterior.temporal_score`).

Tail probabilities are integrated by adaptive Gauss–Hermite quadrature: per draw and column,
the nodes are centred on the mode of x -> phi(x) P(tail | x) (damped Newton steps on finite
differences) and scaled by its curvature, so that a tail probability far below 1 keeps its
relative precision (about 1e-12 against scipy quadrature down to 1e-44 in the tests); the tail
on the far side of the draw's mean is integrated directly and the other is its complement.
Means and variances are exact lognormal moments; quantiles come from integer bisection on the
mixture CDF (plain Gauss–Hermite: absolute precision is what a quantile needs).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.polynomial import hermite_e

from ratepool.posterior.mixture_law import MixtureLaw, _nb2_parts

__all__ = ["QUADRATURE_NODES", "temporal_tails", "lognormal_moments", "lognormal_quantiles"]

#: Gauss–Hermite nodes per draw and column.
QUADRATURE_NODES = 32
_NODES, _WEIGHTS = hermite_e.hermegauss(QUADRATURE_NODES)
_LOG_WEIGHTS = np.log(_WEIGHTS) - 0.5 * math.log(2.0 * math.pi)
#: Newton steps towards the integrand's mode, the largest step, the finite-difference step.
_NEWTON_STEPS, _MAX_STEP, _DELTA = 12, 4.0, 1e-3


def _log_tail(y: np.ndarray, log_mean: np.ndarray, phi: np.ndarray,
              upper: np.ndarray) -> np.ndarray:
    """log P(Y >= y) (``upper``) or log P(Y <= y) of NB2(exp(log_mean), phi), elementwise."""
    cdf, sf, pmf = _nb2_parts(y, MixtureLaw(mean=np.exp(log_mean), phi=phi))
    with np.errstate(divide="ignore"):
        return np.log(np.where(upper, sf + pmf, cdf))


def _mode(y: np.ndarray, centre: np.ndarray, spread: np.ndarray, phi: np.ndarray,
          upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mode and scale (1 / sqrt(curvature), at most 1) of x -> phi(x) P(tail | x), by damped
    Newton steps on finite differences; where the tail underflows, step towards it."""
    x = np.zeros_like(centre)
    curvature = np.ones_like(centre)
    for _ in range(_NEWTON_STEPS):
        h = [_log_tail(y, centre + spread * (x + d), phi, upper) - 0.5 * (x + d) ** 2
             for d in (-_DELTA, 0.0, _DELTA)]
        with np.errstate(invalid="ignore"):
            slope = (h[2] - h[0]) / (2 * _DELTA)
            curvature = -(h[2] - 2 * h[1] + h[0]) / _DELTA**2
        usable = np.isfinite(slope) & np.isfinite(curvature) & (curvature > 0)
        step = np.where(usable, slope / np.where(usable, curvature, 1.0),
                        np.where(upper, _MAX_STEP, -_MAX_STEP))
        step = np.clip(step, -_MAX_STEP, _MAX_STEP)
        x += step
        if np.abs(step).max(initial=0.0) < 1e-6:
            break
    usable = np.isfinite(curvature) & (curvature > 0)
    scale = np.where(usable, 1.0 / np.sqrt(np.where(usable, curvature, 1.0)), 1.0)
    return x, np.minimum(scale, 1.0)


def temporal_tails(y: np.ndarray, centre: np.ndarray, spread: np.ndarray, phi: np.ndarray,
                   *, adaptive: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per draw and column, P(Y <= y), P(Y > y), P(Y = y) of NB2(exp(centre + spread x), phi)
    mixed over x ~ Normal(0, 1).

    Parameters
    ----------
    y : numpy.ndarray
        (C,) counts.
    centre, spread : numpy.ndarray
        (S, C) the log mean's normal law (`TemporalRates.log_mean_law`).
    phi : numpy.ndarray
        (S, 1) overdispersion.
    adaptive : bool
        Centre and scale the nodes on each integrand's mode (relative precision in the far
        tails); plain Gauss–Hermite otherwise (absolute precision, for quantile searches).

    Returns
    -------
    (cdf, sf, pmf) : tuple of numpy.ndarray
        (S, C) each. The tail on the far side of the draw's mean is integrated directly (with
        the pmf), the other one is its complement.
    """
    y = np.asarray(y, dtype=float)[None, :]
    upper = y >= np.exp(centre + 0.5 * spread**2)
    if adaptive:
        mode, scale = _mode(y, centre, spread, phi, upper)
    else:
        mode, scale = np.zeros_like(centre), np.ones_like(centre)
    direct, pmf = np.zeros_like(centre), np.zeros_like(centre)
    for node, log_weight in zip(_NODES, _LOG_WEIGHTS):
        x = mode + scale * node
        weight = np.exp(log_weight + np.log(scale) + 0.5 * node**2 - 0.5 * x**2)
        cdf_x, sf_x, pmf_x = _nb2_parts(y, MixtureLaw(mean=np.exp(centre + spread * x),
                                                      phi=phi))
        direct += weight * np.where(upper, sf_x, cdf_x)
        pmf += weight * pmf_x
    direct = np.clip(direct, 0.0, 1.0)
    cdf = np.where(upper, 1.0 - direct, direct)
    sf = np.where(upper, direct, 1.0 - direct)
    return cdf, sf, np.clip(pmf, 0.0, 1.0)


def _mixture_cdf(y: np.ndarray, centre: np.ndarray, spread: np.ndarray,
                 phi: np.ndarray) -> np.ndarray:
    """P(Y <= y) per column, averaged over draws (absolute precision: for quantiles)."""
    cdf, _, _ = temporal_tails(y, centre, spread, phi, adaptive=False)
    return cdf.mean(axis=0)


def lognormal_moments(centre: np.ndarray, spread: np.ndarray,
             phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact mixture mean and variance per column (lognormal moments of the NB2 mean)."""
    first = np.exp(centre + 0.5 * spread**2)
    second = np.exp(2.0 * centre + 2.0 * spread**2) * (1.0 + 1.0 / phi) + first
    mean = first.mean(axis=0)
    return mean, np.maximum(second.mean(axis=0) - mean**2, 0.0)


def lognormal_quantiles(centre: np.ndarray, spread: np.ndarray, phi: np.ndarray,
               probs: Sequence[float]) -> np.ndarray:
    """(C, len(probs)) least y with P(Y <= y) >= p, by bisection between Cantelli brackets."""
    mean, var = lognormal_moments(centre, spread, phi)
    sd = np.sqrt(var)
    out = np.zeros((len(mean), len(probs)), dtype=np.int64)
    for k, prob in enumerate(probs):
        lo = np.maximum(np.floor(mean - sd * math.sqrt((1 - prob) / prob) * (1 + 1e-9)) + 1, 0)
        hi = np.maximum(np.ceil(mean + sd * math.sqrt(prob / (1 - prob))), lo)
        while (open_ := np.flatnonzero(lo < hi)).size:
            mid = np.floor((lo[open_] + hi[open_]) / 2.0)
            reached = _mixture_cdf(mid, centre[:, open_], spread[:, open_], phi) >= prob
            hi[open_] = np.where(reached, mid, hi[open_])
            lo[open_] = np.where(reached, lo[open_], mid + 1.0)
        out[:, k] = lo.astype(np.int64)
    return out


