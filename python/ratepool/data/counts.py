"""`CountData`: what every later step works from: the entity labels (in index order), the
per-entity sufficient statistics (windows n_i, totals S_i), the global count histogram (value
k, frequency m_k) and, when raw rows were given, the rows themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ratepool.data.covariates import EntityCovariates
from ratepool.errors import DataError

__all__ = [
    "CountData",
    "MAX_STAN_INT",
]

log = logging.getLogger(__name__)

#: Largest value Stan's 32-bit ``int`` holds; a single count above it cannot be passed to Stan.
MAX_STAN_INT = 2**31 - 1



@dataclass(frozen=True)
class CountData:
    """Validated counts, mapped to entity indices 0..J-1 (1..J in Stan).

    Attributes
    ----------
    labels : pandas.Index
        Entity labels; position i is entity index i (Stan index i + 1). Text exactly as
        written when read from a file; the user's own type when given in memory; ordered by
        `ratepool.data.labels.label_order`.
    n_windows : numpy.ndarray
        Windows per entity (int64, length J).
    entity_total : numpy.ndarray
        Total count per entity (int64, length J).
    count_value, count_freq : numpy.ndarray
        The distinct count values over all windows and how many windows have each (int64).
    entity_index : numpy.ndarray or None
        0-based entity index of each raw row; None for pre-aggregated input.
    y : numpy.ndarray or None
        Count of each raw row (int64); None for pre-aggregated input.
    window : numpy.ndarray or None
        Window label of each raw row, when a window column was given.
    exposure : numpy.ndarray or None
        Exposure of each raw row (float64, positive), when an exposure column was given: the
        row's mean count is exposure x theta, so theta is a rate per unit of exposure.
    covariates : EntityCovariates or None
        Entity covariates (one value per entity), when covariate columns were given.
    exposure_col : str or None
        The name of the exposure column the rows came with.
    window_bytes : numpy.ndarray or None
        Bytes moved in each raw row's window (float64; 0 exactly where the count is 0), when a
        bytes column was given (`ratepool.model.event_bytes`).
    """

    labels: pd.Index
    n_windows: np.ndarray
    entity_total: np.ndarray
    count_value: np.ndarray
    count_freq: np.ndarray
    entity_index: np.ndarray | None = None
    y: np.ndarray | None = None
    window: np.ndarray | None = None
    exposure: np.ndarray | None = None
    covariates: EntityCovariates | None = None
    exposure_col: str | None = None
    window_bytes: np.ndarray | None = None

    @property
    def n_entities(self) -> int:
        """J, the number of entities."""
        return len(self.labels)

    @property
    def n_windows_total(self) -> int:
        """N, the number of entity-windows (raw rows)."""
        return int(self.n_windows.sum())

    @property
    def has_rows(self) -> bool:
        """Whether the raw rows are available (needed for per-observation outputs)."""
        return self.y is not None

    @property
    def entity_exposure(self) -> np.ndarray:
        """Per-entity total exposure (the number of windows when there is no exposure)."""
        if self.exposure is None:
            return self.n_windows.astype(float)
        return np.bincount(self.entity_index, weights=self.exposure, minlength=self.n_entities)

    def raw_rate(self) -> np.ndarray:
        """Per-entity observed rate: S_i / n_i, or S_i / total exposure with exposure."""
        return self.entity_total / self.entity_exposure

    def mapping_table(self) -> pd.DataFrame:
        """The label <-> index table: ``entity`` label, 1-based ``stan_index``, windows, total."""
        return pd.DataFrame(
            {
                "entity": self.labels,
                "stan_index": np.arange(1, self.n_entities + 1),
                "n_windows": self.n_windows,
                "total_count": self.entity_total,
            }
        )

    def labels_of(self, stan_index: Sequence[int] | np.ndarray) -> np.ndarray:
        """Map 1-based Stan indices back to entity labels."""
        index = np.asarray(stan_index)
        if index.size and (index.min() < 1 or index.max() > self.n_entities):
            raise DataError(f"Stan entity index out of range 1..{self.n_entities}")
        return np.asarray(self.labels)[index - 1]


# --------------------------------------------------------------------------------------------
# Construction from raw rows


def _aggregate(codes: np.ndarray, y: np.ndarray, labels: pd.Index) -> CountData:
    """Per-entity windows and totals, and the count histogram, in one vectorised pass each."""
    n_entities = len(labels)
    n_windows = np.bincount(codes, minlength=n_entities).astype(np.int64)
    entity_total = _exact_bincount(codes, y, n_entities)
    count_value, count_freq = count_histogram(y)
    return CountData(labels, n_windows, entity_total, count_value, count_freq)


def _exact_bincount(codes: np.ndarray, y: np.ndarray, length: int) -> np.ndarray:
    """Integer sums of y per code. Float bincount is exact while every sum stays below 2^53."""
    sums = np.bincount(codes, weights=y, minlength=length)
    if y.size and float(y.max()) * y.size < 2.0**53:
        return sums.astype(np.int64)
    totals = np.zeros(length, dtype=np.int64)
    np.add.at(totals, codes, y)
    return totals


def count_histogram(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``y`` and their frequencies (bincount when the values are small)."""
    if y.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    top = int(y.max())
    if top <= max(4 * y.size, 1_000_000):
        freq = np.bincount(y, minlength=top + 1)
        value = np.flatnonzero(freq)
        return value.astype(np.int64), freq[value].astype(np.int64)
    value, freq = np.unique(y, return_counts=True)
    return value.astype(np.int64), freq.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Construction from aggregates


# --------------------------------------------------------------------------------------------
# Files


# --------------------------------------------------------------------------------------------
# Checks shared by the constructors


