"""Rank-normalised split R-hat, bulk ESS and tail ESS, vectorised over many elements.

ArviZ (0.23, and arviz-stats 0.8) computes these one element at a time in Python: at
J = 100,000 entities x 2 chains x 300 draws ``az.rhat`` and ``az.ess`` over theta take about
2.5 minutes. The functions here compute the same numbers (Vehtari et al. 2021, as ArviZ 0.23's
``az.rhat(method="rank")``, ``az.ess(method="bulk")`` and ``az.ess(method="tail")``) for a
whole batch of elements at once with numpy, block by block to bound the memory, following
ArviZ's own steps so that the results agree up to floating-point rounding:

- **split chains**: the first ``draws // 2`` and the last ``draws // 2`` draws of every chain
  (an odd number of draws drops the middle one), the first halves before the second halves;
- **rank normalisation**: average ranks of ties over all split chains,
  ``z = Phi^-1((r - 3/8) / (S + 1/4))``;
- **R-hat**: the larger of the split R-hat of the rank-normalised draws (bulk) and of the
  rank-normalised ``|x - median(x)|`` (folded); a NaN folded value leaves the bulk one, as
  Python's ``max`` does in ArviZ;
- **ESS**: FFT autocovariance, Geyer's initial positive sequence (pairs of autocorrelations
  summed while their sum stays positive) and initial monotone sequence (the pair sums made
  non-increasing), the autocorrelation time at least ``1 / log10(S)`` (so at most
  ``S log10 S`` draws); an element whose transformed draws are constant gets ESS ``S``;
- **tail ESS**: the smaller ESS of the indicators ``x <= q`` at the 5% and 95% quantiles (R's
  type 7, as ``scipy.stats.mstats.mquantiles(alphap=1, betap=1)``).

An element with a NaN draw gets NaN R-hat and ESS; R-hat needs two chains and four draws, ESS
four draws, as in ArviZ. A constant element gets NaN R-hat and ESS ``S`` (split draws).

The array functions take draws shaped ``(..., chain, draw)`` (the batch of elements leading)
and return the batch's shape; the ``*_dataset`` functions take an xarray Dataset with
``chain`` and ``draw`` dims and return what ``az.rhat`` / ``az.ess`` return for it.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import xarray as xr
from scipy.fftpack import next_fast_len
from scipy.special import ndtri

__all__ = ["rank_rhat", "ess_bulk", "ess_tail", "rhat_dataset", "ess_dataset", "TAIL_PROB"]

log = logging.getLogger(__name__)

#: The quantiles whose indicators tail ESS is computed on (ArviZ's default).
TAIL_PROB = (0.05, 0.95)
#: Fewest draws per chain (before splitting) for R-hat and ESS, and fewest chains for R-hat.
MIN_DRAWS, MIN_CHAINS_RHAT = 4, 2
#: About this many draws (elements x chains x draws) are worked on at a time.
BLOCK_DRAWS = 2_000_000
#: Blom's fractional offset of the rank normalisation.
_BLOM = 3 / 8

_BlockFunction = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------------------------
# Public array functions


def rank_rhat(draws: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat of every element (ArviZ's ``rhat(method="rank")``).

    Parameters
    ----------
    draws : numpy.ndarray
        Shape ``(..., chain, draw)``.

    Returns
    -------
    numpy.ndarray
        Shape ``draws.shape[:-2]``, float64; NaN for an element with a NaN draw, a constant
        element, or fewer than 2 chains or 4 draws.
    """
    return _over_elements(draws, _rank_rhat_block, min_chains=MIN_CHAINS_RHAT)


def ess_bulk(draws: np.ndarray) -> np.ndarray:
    """Bulk effective sample size of every element (ArviZ's ``ess(method="bulk")``).

    Parameters
    ----------
    draws : numpy.ndarray
        Shape ``(..., chain, draw)``.

    Returns
    -------
    numpy.ndarray
        Shape ``draws.shape[:-2]``, float64; NaN for an element with a NaN draw or fewer than
        4 draws.
    """
    return _over_elements(draws, _ess_bulk_block, min_chains=1)


def ess_tail(draws: np.ndarray, prob: tuple[float, float] = TAIL_PROB) -> np.ndarray:
    """Tail effective sample size of every element (ArviZ's ``ess(method="tail")``): the
    smaller ESS of the indicators of the draws at or below the ``prob`` quantiles.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape ``(..., chain, draw)``.
    prob : tuple of float
        The lower and upper quantile.

    Returns
    -------
    numpy.ndarray
        Shape ``draws.shape[:-2]``, float64; NaN for an element with a NaN draw or fewer than
        4 draws.
    """
    low, high = prob
    return _over_elements(draws, lambda block: _ess_tail_block(block, low, high), min_chains=1)


def rhat_dataset(dataset: xr.Dataset) -> xr.Dataset:
    """`rank_rhat` of every variable of ``dataset``, structured as ``az.rhat(dataset)``: the
    same variables with their dims and coords other than ``chain`` and ``draw``."""
    return _apply(rank_rhat, dataset)


def ess_dataset(dataset: xr.Dataset, method: str = "bulk") -> xr.Dataset:
    """`ess_bulk` (``method="bulk"``) or `ess_tail` (``"tail"``) of every variable of
    ``dataset``, structured as ``az.ess(dataset, method=method)``.

    Raises
    ------
    ValueError
        For another ``method``.
    """
    functions = {"bulk": ess_bulk, "tail": ess_tail}
    if method not in functions:
        raise ValueError(f"ess method must be one of {sorted(functions)}, not {method!r}")
    return _apply(functions[method], dataset)


def _apply(function: Callable[[np.ndarray], np.ndarray], dataset: xr.Dataset) -> xr.Dataset:
    """``function`` over every variable, chain and draw as core dims (as ArviZ applies it)."""
    return xr.apply_ufunc(function, dataset, input_core_dims=[["chain", "draw"]],
                          output_core_dims=[[]])


# --------------------------------------------------------------------------------------------
# Blocks of elements


def _over_elements(draws: np.ndarray, function: _BlockFunction, *, min_chains: int) -> np.ndarray:
    """``function`` over blocks of elements of ``draws`` (``(..., chain, draw)``).

    ``function`` takes a block ``(elements, chain, draw)`` of finite draws (an own copy) and
    returns one float per element. Elements with a NaN draw, or with too few chains or draws,
    are NaN; their draws are replaced by zeros before ``function`` sees them.
    """
    draws = np.asarray(draws)
    if draws.ndim < 2:
        raise ValueError(f"draws must be shaped (..., chain, draw), not {draws.shape}")
    *element_shape, n_chains, n_draws = draws.shape
    flat = draws.reshape(-1, n_chains, n_draws)
    result = np.full(flat.shape[0], np.nan)
    if n_chains < min_chains or n_draws < MIN_DRAWS or flat.shape[0] == 0:
        return result.reshape(element_shape)
    step = max(1, BLOCK_DRAWS // (n_chains * n_draws))
    with_nan = 0
    for start in range(0, flat.shape[0], step):
        block = np.array(flat[start:start + step], copy=True)
        invalid = _has_nan(block)
        if invalid.any():
            with_nan += int(invalid.sum())
            block[invalid] = 0
        values = function(block)
        values[invalid] = np.nan
        result[start:start + step] = values
    if with_nan:
        log.warning("%d of %d elements have a NaN draw: their R-hat or ESS is NaN",
                    with_nan, flat.shape[0])
    return result.reshape(element_shape)


def _has_nan(block: np.ndarray) -> np.ndarray:
    """Whether each element of ``block`` (``(elements, chain, draw)``) has a NaN draw."""
    if not np.issubdtype(block.dtype, np.inexact):
        return np.zeros(block.shape[0], dtype=bool)
    return np.isnan(block).any(axis=(1, 2))


def _rank_rhat_block(block: np.ndarray) -> np.ndarray:
    """max(bulk, folded) rank-normalised split R-hat of each element of ``block``."""
    split = _split_chains(block)
    bulk = _rhat(_z_scale(split))
    median = np.median(split.reshape(split.shape[0], -1), axis=1)
    tail = _rhat(_z_scale(np.abs(split - median[:, None, None])))
    # Python's max(bulk, tail) as in ArviZ: a NaN tail leaves the bulk value.
    return np.where(tail > bulk, tail, bulk)


def _ess_bulk_block(block: np.ndarray) -> np.ndarray:
    """ESS of the rank-normalised split chains of each element of ``block``."""
    return _ess(_z_scale(_split_chains(block)))


def _ess_tail_block(block: np.ndarray, low: float, high: float) -> np.ndarray:
    """min(ESS of x <= q_low, ESS of x <= q_high) of each element of ``block``, where Python's
    ``min`` leaves the first value when the second is NaN (as in ArviZ)."""
    low_ess, high_ess = (_ess(_split_chains(block <= _quantile_type7(block, prob)[:, None, None])
                              .astype(float))
                         for prob in (low, high))
    return np.where(high_ess < low_ess, high_ess, low_ess)


# --------------------------------------------------------------------------------------------
# Steps


def _split_chains(block: np.ndarray) -> np.ndarray:
    """``(elements, 2 chain, draw // 2)``: the first halves of the chains, then the last halves
    (an odd number of draws drops the middle draw)."""
    half = block.shape[2] // 2
    return np.concatenate([block[:, :, :half], block[:, :, -half:]], axis=1)


def _z_scale(block: np.ndarray) -> np.ndarray:
    """Rank normalisation over all chains and draws of each element: Phi^-1 of the average
    rank r (ties share their average) as (r - 3/8) / (S - 2 * 3/8 + 1) (Blom 1958), S draws in
    all. Average ranks are half-integers, so Phi^-1 is taken once per possible rank."""
    flat = block.reshape(block.shape[0], -1)
    size = flat.shape[1]
    order = np.argsort(flat, axis=-1)
    ordered = np.take_along_axis(flat, order, axis=-1)
    first = np.ones(flat.shape, dtype=bool)  # the first of a run of equal values in a row
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=first[:, 1:])
    starts = np.flatnonzero(first)
    counts = np.diff(starts, append=first.size)
    # Twice the average rank, less 2: 2 * (start + 1 + (count - 1) / 2) - 2.
    twice_rank = 2 * (starts % size) + counts - 1
    ranks = np.arange(2, 2 * size + 1) / 2  # 1, 1.5, ..., S
    normal = ndtri((ranks - _BLOM) / (size - 2 * _BLOM + 1))
    z = np.empty(flat.shape)
    np.put_along_axis(z, order, np.repeat(normal[twice_rank], counts).reshape(flat.shape),
                      axis=-1)
    return z.reshape(block.shape)


def _quantile_type7(block: np.ndarray, prob: float) -> np.ndarray:
    """The ``prob`` quantile of each element's draws (all chains), computed as
    ``scipy.stats.mstats.mquantiles(alphap=1, betap=1)`` does (R's type 7)."""
    flat = block.reshape(block.shape[0], -1)
    size = flat.shape[1]
    p = np.atleast_1d(np.asarray(prob, dtype=float))
    aleph = size * p + (1 + p * (1.0 - 1 - 1))
    k = int(np.floor(aleph.clip(1, size - 1))[0])
    gamma = float((aleph - k).clip(0, 1)[0])
    lower_upper = np.partition(flat, [k - 1, k], axis=1)[:, k - 1:k + 1].astype(float)
    return (1.0 - gamma) * lower_upper[:, 0] + gamma * lower_upper[:, 1]


def _rhat(block: np.ndarray) -> np.ndarray:
    """Split R-hat (Gelman-Rubin) of each element of ``block`` (already split)."""
    n_draws = block.shape[2]
    chain_mean = block.mean(axis=2)
    within = block.var(axis=2, ddof=1).mean(axis=1)
    between = n_draws * chain_mean.var(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n_draws - 1) / n_draws)


def _autocov(block: np.ndarray) -> np.ndarray:
    """Autocovariance of every chain at every lag, by FFT (ArviZ's ``autocov``)."""
    n_draws = block.shape[-1]
    length = next_fast_len(2 * n_draws)
    centred = block - block.mean(axis=-1, keepdims=True)
    transform = np.fft.rfft(centred, n=length, axis=-1)
    transform *= np.conjugate(transform)
    cov = np.fft.irfft(transform, n=length, axis=-1)[..., :n_draws]
    cov /= n_draws
    return cov


def _ess(block: np.ndarray) -> np.ndarray:
    """Effective sample size of each element of ``block`` (already split and transformed,
    float): Geyer's initial positive and monotone sequence estimator of the autocorrelation
    time over the chains (Vehtari et al. 2021), as ArviZ's ``_ess``."""
    _, n_chains, n_draws = block.shape
    size = n_chains * n_draws
    constant = (block.max(axis=(1, 2)) - block.min(axis=(1, 2))) < np.finfo(float).resolution
    acov = _autocov(block)
    mean_var = acov[:, :, 0].mean(axis=1) * n_draws / (n_draws - 1.0)
    var_plus = mean_var * (n_draws - 1.0) / n_draws
    if n_chains > 1:
        var_plus += block.mean(axis=2).var(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]
        rho[:, 0] = 1.0
        tau = np.maximum(_geyer_tau(rho), 1 / np.log10(size))
        ess = size / tau
    ess[np.isnan(rho[:, 1])] = np.nan
    ess[constant] = size
    return ess


def _geyer_tau(rho: np.ndarray) -> np.ndarray:
    """Autocorrelation time -1 + 2 * (sum of the truncated, monotone pair sums) + the first
    autocorrelation of the truncating pair, kept when positive (ArviZ's loops, vectorised).

    With pairs P_k = rho[2k] + rho[2k + 1], ArviZ's positive-sequence loop reads pair k
    (k = 1, ..., k_max, the last with 2k + 2 < n, i.e. k_max = (n - 1) // 2 - 1) while every
    earlier pair is positive: it stops after pair K, the number of leading positive pairs
    among P_0 .. P_{k_max - 1}. Pairs 0 .. K - 1 enter the sum, made non-increasing (each
    replaced by the smallest pair sum so far); rho[2K] is added when P_K >= 0 (the loop kept
    the pair) or rho[2K] > 0 (the "improve estimation" step).
    """
    n_elements, n_draws = rho.shape
    k_max = max(0, (n_draws - 1) // 2 - 1)
    pairs = rho[:, 0:2 * k_max + 1:2] + rho[:, 1:2 * k_max + 2:2]  # P_0 .. P_{k_max}
    leading = np.logical_and.accumulate(pairs[:, :k_max] > 0, axis=1)
    k_stop = leading.sum(axis=1)
    monotone = np.minimum.accumulate(pairs, axis=1)
    kept = np.arange(k_max + 1) < k_stop[:, None]
    rows = np.arange(n_elements)
    first = rho[rows, 2 * k_stop]
    last = np.where((pairs[rows, k_stop] >= 0) | (first > 0), first, 0.0)
    return -1.0 + 2.0 * np.where(kept, monotone, 0.0).sum(axis=1) + last
