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
    "WindowGroups",
]

log = logging.getLogger(__name__)

#: Largest value Stan's 32-bit ``int`` holds; a single count above it cannot be passed to Stan.
MAX_STAN_INT = 2**31 - 1


@dataclass(frozen=True)
class WindowGroups:
    """The windows grouped by (entity, exposure): what exposure and zero-inflation need.

    One entry per group, ordered by entity index then exposure; O(G) with J <= G <= N (G = J
    without exposure). Computed by DuckDB where the rows live (`ratepool.aggregate_file`) or
    from the rows (`CountData.window_groups`).

    Attributes
    ----------
    entity : numpy.ndarray
        0-based entity index of each group (int64).
    exposure : numpy.ndarray or None
        The groups' exposure (float64); None without an exposure column (every exposure 1).
    windows, zeros, total : numpy.ndarray
        Windows, windows with count 0, and total count of each group (int64).
    """

    entity: np.ndarray
    exposure: np.ndarray | None
    windows: np.ndarray
    zeros: np.ndarray
    total: np.ndarray

    @classmethod
    def from_rows(cls, entity: np.ndarray, y: np.ndarray,
                  exposure: np.ndarray | None) -> WindowGroups:
        """Group rows (0-based entity index, count, exposure or None)."""
        frame = pd.DataFrame({"entity": entity, "y": y, "zero": y == 0,
                              "exposure": exposure if exposure is not None else 1.0})
        groups = frame.groupby(["entity", "exposure"], sort=True).agg(
            windows=("y", "size"), zeros=("zero", "sum"), total=("y", "sum"))
        index = groups.index
        return cls(entity=index.get_level_values("entity").to_numpy(dtype=np.int64),
                   exposure=(index.get_level_values("exposure").to_numpy(dtype=float)
                             if exposure is not None else None),
                   windows=groups["windows"].to_numpy(dtype=np.int64),
                   zeros=groups["zeros"].to_numpy(dtype=np.int64),
                   total=groups["total"].to_numpy(dtype=np.int64))

    def per_entity(self, values: np.ndarray, n_entities: int) -> np.ndarray:
        """Sum ``values`` (one per group) per entity."""
        return np.bincount(self.entity, weights=values, minlength=n_entities)

    def exposure_median(self) -> float:
        """The median window exposure (as ``numpy.median`` of the rows' exposures gives it)."""
        if self.exposure is None:
            return 1.0
        order = np.argsort(self.exposure, kind="stable")
        values, ends = self.exposure[order], np.cumsum(self.windows[order])
        n = int(ends[-1])
        middle = values[np.searchsorted(ends, [(n - 1) // 2, n // 2], side="right")]
        return float(np.mean(middle))


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
    groups : WindowGroups or None
        The windows grouped by (entity, exposure), when aggregated without the rows
        (`ratepool.aggregate_file`); with the rows `window_groups` computes them.
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
    groups: WindowGroups | None = None

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
    def has_exposure(self) -> bool:
        """Whether the windows have exposures (per row, or in the aggregated `groups`)."""
        return self.exposure is not None or (self.groups is not None
                                             and self.groups.exposure is not None)

    @property
    def has_groups(self) -> bool:
        """Whether `window_groups` can be computed (from the rows or aggregated groups)."""
        return self.has_rows or self.groups is not None

    def window_groups(self) -> WindowGroups:
        """The windows grouped by (entity, exposure): the aggregated `groups`, or from the rows.

        Raises
        ------
        DataError
            For aggregates given without groups (`ratepool.from_aggregates`).
        """
        if self.groups is not None:
            return self.groups
        if not self.has_rows:
            raise DataError("exposure and zero-inflation need the windows grouped by entity and "
                            "exposure (their zero windows); this data was given as per-entity "
                            "aggregates without them: read the file with "
                            "ratepool.aggregate_file(..., exposure_col=...) or load_counts")
        return WindowGroups.from_rows(self.entity_index, self.y, self.exposure)

    @property
    def entity_zeros(self) -> np.ndarray | None:
        """Windows with count 0 per entity (int64); None for aggregates without groups."""
        if self.has_rows:
            return np.bincount(self.entity_index[self.y == 0],
                               minlength=self.n_entities).astype(np.int64)
        if self.groups is None:
            return None
        return self.groups.per_entity(self.groups.zeros, self.n_entities).astype(np.int64)

    @property
    def entity_exposure(self) -> np.ndarray:
        """Per-entity total exposure (the number of windows when there is no exposure)."""
        if not self.has_exposure:
            return self.n_windows.astype(float)
        if self.exposure is None:
            groups = self.window_groups()
            return groups.per_entity(groups.windows * groups.exposure, self.n_entities)
        return np.bincount(self.entity_index, weights=self.exposure, minlength=self.n_entities)

    def exposure_median(self) -> float:
        """The median exposure over all windows; 1 without exposure."""
        if self.exposure is not None:
            return float(np.median(self.exposure))
        return self.groups.exposure_median() if self.groups is not None else 1.0

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


