"""Count data: validation, the label <-> index mapping, and sufficient statistics.

Everything downstream works from a `CountData`: the entity labels (in index order), the
per-entity sufficient statistics (windows n_i, totals S_i), the global count histogram
(value k, frequency m_k) and, when raw rows were given, the rows themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = [
    "CountData",
    "MAX_STAN_INT",
    "from_dataframe",
    "from_aggregates",
    "read_table",
    "load_counts",
]

log = logging.getLogger(__name__)

#: Largest value Stan's 32-bit ``int`` holds; a single count above it cannot be passed to Stan.
MAX_STAN_INT = 2**31 - 1
#: How many offending rows an error message shows.
_SHOW_ROWS = 5

# Wording of the row checks, as (problem, fix), shared with the cluster sources
# (`ratepool.cluster_source`), which run the same checks where the rows live.
NO_ROWS = "the data has no rows; give at least one row per entity"
MISSING_LABELS = ("has missing entity labels", "drop those rows or give them a label")
MISSING_WINDOWS = ("has missing window labels",
                   "drop those rows or give each its window; or leave window_col unset")
COUNT_MISSING = ("has missing values (NaN/None)", "drop or fill those rows")
COUNT_INFINITE = ("has infinite values", "drop those rows or replace them by the true counts")
COUNT_NEGATIVE = ("has negative counts", "counts are events per window and cannot be negative")
COUNT_FRACTION = ("has non-integer counts",
                  "counts must be whole numbers (3.0 is fine, 3.5 is not)")
COUNT_TOO_LARGE = (f"has counts above {MAX_STAN_INT} (2^31 - 1), Stan's integer limit",
                   "rescale the counts (e.g. count thousands of events) or split the windows")


@dataclass(frozen=True)
class CountData:
    """Validated counts, mapped to entity indices 0..J-1 (1..J in Stan).

    Attributes
    ----------
    labels : pandas.Index
        Entity labels; position i is entity index i (Stan index i + 1).
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
    """

    labels: pd.Index
    n_windows: np.ndarray
    entity_total: np.ndarray
    count_value: np.ndarray
    count_freq: np.ndarray
    entity_index: np.ndarray | None = None
    y: np.ndarray | None = None
    window: np.ndarray | None = None

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

    def raw_rate(self) -> np.ndarray:
        """Per-entity observed rate S_i / n_i."""
        return self.entity_total / self.n_windows

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

    def to_stan_data(
        self,
        *,
        mu_rate: float,
        alpha_sd: float,
        phi_sd: float,
        use_sufficient_stats: bool,
        prior_only: bool,
        non_centered: bool,
        obs_predictions: bool,
        entity_predictions: bool,
    ) -> dict[str, Any]:
        """The data dict for ``stan/hierarchical_negbinom.stan`` (JSON-ready Python types)."""
        if (obs_predictions or not use_sufficient_stats) and not self.has_rows:
            raise DataError(
                "per-observation likelihood or predictions need the raw rows, but this data was "
                "given as aggregates; use likelihood='sufficient' and obs_predictions=False"
            )
        rows = self.has_rows and (obs_predictions or not use_sufficient_stats)
        return {
            "J": self.n_entities,
            "N": len(self.y) if rows else 0,
            "entity": (self.entity_index + 1).tolist() if rows else [],
            "y": self.y.tolist() if rows else [],
            "n_windows": self.n_windows.tolist(),
            "entity_total": self.entity_total.astype(float).tolist(),
            "K": len(self.count_value),
            "count_value": self.count_value.tolist(),
            "count_freq": self.count_freq.astype(float).tolist(),
            "mu_rate": float(mu_rate),
            "alpha_sd": float(alpha_sd),
            "phi_sd": float(phi_sd),
            "use_sufficient_stats": int(use_sufficient_stats),
            "prior_only": int(prior_only),
            "non_centered": int(non_centered),
            "obs_predictions": int(obs_predictions),
            "entity_predictions": int(entity_predictions),
        }


# --------------------------------------------------------------------------------------------
# Construction from raw rows


def from_dataframe(
    frame: pd.DataFrame,
    *,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    allow_duplicate_windows: bool = False,
) -> CountData:
    """Validate raw rows (one per entity-window) and compute the sufficient statistics.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per entity and window.
    entity_col, count_col : str
        Column names of the entity label and the event count.
    window_col : str, optional
        Column naming the window; when given, a repeated (entity, window) pair is an error
        unless ``allow_duplicate_windows`` is true (then each row counts as its own window).
    allow_duplicate_windows : bool
        Accept repeated (entity, window) pairs.

    Returns
    -------
    CountData

    Raises
    ------
    DataError
        Naming the column, the first offending rows and the fix.
    """
    _require_columns(frame, [entity_col, count_col] + ([window_col] if window_col else []))
    if len(frame) == 0:
        raise DataError(NO_ROWS)
    labels_column = frame[entity_col]
    _reject_missing_labels(labels_column, entity_col)
    y = validate_counts(frame[count_col], count_col)
    if window_col is not None:
        reject_missing_windows(frame[window_col], window_col)
        _check_duplicate_windows(frame, entity_col, window_col, allow_duplicate_windows)

    codes, labels = _factorize_sorted(labels_column)
    data = _aggregate(codes, y, labels)
    window = frame[window_col].to_numpy() if window_col is not None else None
    data = CountData(
        labels=data.labels,
        n_windows=data.n_windows,
        entity_total=data.entity_total,
        count_value=data.count_value,
        count_freq=data.count_freq,
        entity_index=codes,
        y=y,
        window=window,
    )
    _check_model_needs(data, entity_col, count_col)
    return data


def validate_counts(column: pd.Series, name: str) -> np.ndarray:
    """Return the counts as int64, or raise `DataError` naming the first bad rows.

    Accepts integers and integral floats (3.0); rejects missing values, booleans, strings,
    fractions, negatives and values above Stan's int range.
    """
    if pd.api.types.is_bool_dtype(column.dtype):
        raise DataError(
            f"column {name!r} holds booleans (True/False); counts must be non-negative "
            "integers — convert with .astype(int) if True means one event"
        )
    if column.dtype == object or isinstance(column.dtype, pd.StringDtype):
        is_bool = column.map(lambda v: isinstance(v, (bool, np.bool_)))
        _raise_rows(column, is_bool, name, "holds booleans; counts must be non-negative integers",
                    fix="replace True/False by the number of events")
        numeric = pd.to_numeric(column, errors="coerce")
        not_number = numeric.isna() & column.notna()
        _raise_rows(column, not_number, name, "holds values that are not numbers",
                    fix="counts must be non-negative integers; clean or drop those rows (or "
                        "name the right column with count_col=...)")
        column_numeric = numeric
    elif pd.api.types.is_complex_dtype(column.dtype):
        raise DataError(
            f"column {name!r} holds complex numbers; counts must be non-negative integers "
            "(convert the column, e.g. with .real.astype(int) if the imaginary parts are 0)"
        )
    elif pd.api.types.is_numeric_dtype(column.dtype):
        column_numeric = column
    else:
        raise DataError(
            f"column {name!r} has type {column.dtype}; counts must be non-negative integers "
            "(name the right column with count_col=..., or convert it)"
        )
    _raise_rows(column, column_numeric.isna(), name, *COUNT_MISSING)
    values = column_numeric.to_numpy(dtype=float, na_value=np.nan)
    for bad, wording in ((~np.isfinite(values), COUNT_INFINITE), (values < 0, COUNT_NEGATIVE),
                         (values != np.floor(values), COUNT_FRACTION),
                         (values > MAX_STAN_INT, COUNT_TOO_LARGE)):
        _raise_rows(column, pd.Series(bad, index=column.index), name, *wording)
    if pd.api.types.is_integer_dtype(column_numeric.dtype):
        return column_numeric.to_numpy(dtype=np.int64)
    return values.astype(np.int64)


def _factorize_sorted(labels: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """0-based codes into the sorted unique labels (a deterministic order for any input order)."""
    try:
        codes, uniques = pd.factorize(labels, sort=False)
    except TypeError as error:  # unhashable labels (lists, dicts, arrays)
        raise DataError(
            f"column {labels.name!r} holds entity labels that cannot be compared ({error}), "
            f"e.g. {labels.iloc[0]!r}; use strings or numbers as entity labels"
        ) from None
    order = _sorted_order(uniques)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], pd.Index(uniques.take(order), name="entity")


def _sorted_order(uniques: pd.Index | np.ndarray) -> np.ndarray:
    """Sorting permutation of labels; mixed, unorderable types sort by (type name, str)."""
    try:
        return np.asarray(pd.Index(uniques).argsort(kind="stable"))
    except TypeError:
        keys = [(type(v).__name__, str(v)) for v in uniques]
        return np.asarray(sorted(range(len(keys)), key=keys.__getitem__))


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


def from_aggregates(
    entities: pd.DataFrame,
    histogram: pd.DataFrame,
    *,
    entity_col: str = "entity",
    windows_col: str = "n_windows",
    total_col: str = "total_count",
    value_col: str = "value",
    frequency_col: str = "frequency",
) -> CountData:
    """Build `CountData` from aggregates computed where the data lives (SQL, Spark, DuckDB...).

    Parameters
    ----------
    entities : pandas.DataFrame
        One row per entity: label, number of windows, total count.
    histogram : pandas.DataFrame
        The global count histogram: each distinct count value and how many windows have it.

    Raises
    ------
    DataError
        For missing columns, bad values, repeated labels, or a histogram that disagrees with
        the per-entity table (different number of windows or different grand total).
    """
    _require_columns(entities, [entity_col, windows_col, total_col], table="entity table")
    _require_columns(histogram, [value_col, frequency_col], table="histogram")
    if len(entities) == 0:
        raise DataError("the entity table has no rows")
    _reject_missing_labels(entities[entity_col], entity_col)
    repeated = entities[entity_col].duplicated(keep=False)
    _raise_rows(entities[entity_col], repeated, entity_col,
                "repeats entity labels in the entity table", fix="give one row per entity")
    n_windows = validate_counts(entities[windows_col], windows_col)
    _raise_rows(entities[windows_col], pd.Series(n_windows < 1, index=entities.index),
                windows_col, "has entities with no windows", fix="drop entities with 0 windows")
    totals = _validate_totals(entities[total_col], total_col)
    values = validate_counts(histogram[value_col], value_col)
    freq = _validate_totals(histogram[frequency_col], frequency_col)
    if len(np.unique(values)) != len(values):
        raise DataError(f"histogram column {value_col!r} repeats values; give each value once")

    keep = freq > 0
    values, freq = values[keep], freq[keep]
    order_v = np.argsort(values)
    values, freq = values[order_v], freq[order_v]
    if int(freq.sum()) != int(n_windows.sum()):
        raise DataError(
            f"the histogram counts {int(freq.sum())} windows ({frequency_col!r} summed) but the "
            f"entity table counts {int(n_windows.sum())} ({windows_col!r} summed); both must "
            "describe the same windows"
        )
    grand_total = sum(int(v) * int(f) for v, f in zip(values, freq))
    if grand_total != int(totals.sum()):
        raise DataError(
            f"the histogram's events (sum of {value_col!r} x {frequency_col!r} = {grand_total}) "
            f"differ from the entity totals ({total_col!r} summed = {int(totals.sum())}); both "
            "must describe the same windows"
        )
    impossible = totals > n_windows * (values.max() if len(values) else 0)
    _raise_rows(entities[total_col], pd.Series(impossible, index=entities.index), total_col,
                "has totals larger than n_windows x the largest count value in the histogram",
                fix="the entity table and the histogram must be computed from the same windows")

    order = _sorted_order(pd.Index(entities[entity_col]))
    labels = pd.Index(entities[entity_col].to_numpy()[order], name="entity")
    data = CountData(labels, n_windows[order], totals[order], values, freq)
    _check_model_needs(data, entity_col, total_col)
    return data


def _validate_totals(column: pd.Series, name: str) -> np.ndarray:
    """Non-negative integer totals, which (unlike single counts) may exceed 2^31 - 1."""
    if pd.api.types.is_bool_dtype(column.dtype) or column.dtype == object:
        is_bool = column.map(lambda v: isinstance(v, (bool, np.bool_)))
        _raise_rows(column, is_bool, name, "holds booleans",
                    fix="give the number of windows or events as an integer")
    numeric = pd.to_numeric(column, errors="coerce")
    _raise_rows(column, numeric.isna(), name, "has missing or non-numeric values",
                fix="every entity and histogram row needs a whole number here")
    values = numeric.to_numpy(dtype=float)
    bad = (values < 0) | (values != np.floor(values)) | ~np.isfinite(values)
    _raise_rows(column, pd.Series(bad, index=column.index), name,
                "has values that are not non-negative integers",
                fix="totals and frequencies are whole numbers of events or windows")
    if pd.api.types.is_integer_dtype(numeric.dtype):
        return numeric.to_numpy(dtype=np.int64)
    return values.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Files


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by extension) into a DataFrame."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path, columns=list(columns) if columns else None)
        if suffix in (".csv", ".txt", ".gz"):
            return pd.read_csv(path, usecols=list(columns) if columns else None)
    except ValueError as error:
        raise DataError(f"could not read {path}: {error}") from None
    except ImportError as error:
        raise DataError(f"reading {path} needs an optional package: {error}") from None
    raise DataError(f"data file {path}: unknown format {suffix!r}; use .csv or .parquet")


def load_counts(
    source: str | Path | pd.DataFrame,
    *,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    allow_duplicate_windows: bool = False,
) -> CountData:
    """`from_dataframe` for a DataFrame, or a CSV/Parquet path read first."""
    if isinstance(source, pd.DataFrame):
        frame = source
    else:
        frame = read_table(source)
    return from_dataframe(
        frame,
        entity_col=entity_col,
        count_col=count_col,
        window_col=window_col,
        allow_duplicate_windows=allow_duplicate_windows,
    )


# --------------------------------------------------------------------------------------------
# Checks shared by the constructors


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], table: str = "data") -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"the {table} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"the {table} has no column(s) {missing}; its columns are {list(frame.columns)}. "
            "Name the right ones (entity_col=..., count_col=..., window_col=..., or "
            "--entity-col/--count-col/--window-col)"
        )
    repeated = sorted({str(c) for c in columns if int((frame.columns == c).sum()) > 1})
    if repeated:
        raise DataError(
            f"the {table} has more than one column named {repeated}; rename or drop the extra "
            "ones"
        )


def _reject_missing_labels(labels: pd.Series, name: str) -> None:
    _raise_rows(labels, labels.isna(), name, *MISSING_LABELS)


def reject_missing_windows(windows: pd.Series, name: str) -> None:
    """Raise `DataError` if any row of the window column has no window label."""
    _raise_rows(windows, windows.isna(), name, *MISSING_WINDOWS)


def _check_duplicate_windows(
    frame: pd.DataFrame, entity_col: str, window_col: str, allowed: bool
) -> None:
    repeated = frame.duplicated(subset=[entity_col, window_col], keep=False)
    if not repeated.any():
        return
    if allowed:
        log.info("%d rows repeat an (entity, window) pair; each counts as its own window",
                 int(repeated.sum()))
        return
    rows = frame.loc[repeated, [entity_col, window_col]].head(_SHOW_ROWS)
    raise duplicate_windows_error(int(repeated.sum()), entity_col, window_col, _format_rows(rows))


def duplicate_windows_error(n_rows: int, entity_col: str, window_col: str,
                            examples: str) -> DataError:
    """The error for ``n_rows`` rows that repeat an (entity, window) pair, with examples."""
    return DataError(
        f"{n_rows} rows repeat an ({entity_col!r}, {window_col!r}) pair, e.g. "
        f"{examples}. Sum them per window first, or pass allow_duplicate_windows=True "
        "(--allow-duplicate-windows) if each row really is a separate window"
    )


def _check_model_needs(data: CountData, entity_col: str, count_col: str) -> None:
    if data.n_entities < 2:
        raise DataError(
            f"column {entity_col!r} has a single entity ({data.labels[0]!r}); partial pooling "
            "needs at least two entities (with one, the population parameters mu and alpha are "
            "informed by the prior alone). Add the other entities' rows, or check that "
            f"{entity_col!r} is the column that identifies entities"
        )
    if data.entity_total.sum() == 0:
        log.warning(
            "every count is zero: the rates will be estimated near 0, mu, alpha and phi are "
            "left mostly to their priors, and the sampler may report divergences and high "
            "R-hat (the posterior piles up at theta = 0). Check that column %r holds the "
            "counts; if it does, a zero rate is the answer and no fit is needed", count_col
        )


def _raise_rows(
    column: pd.Series, bad: pd.Series, name: str, problem: str, fix: str | None = None
) -> None:
    """Raise `DataError` listing the first rows where ``bad`` holds, if any."""
    mask = np.asarray(bad, dtype=bool)
    if not mask.any():
        return
    shown = column[mask].head(_SHOW_ROWS)
    raise rows_error(name, problem, int(mask.sum()), f"first {_format_rows(shown)}", fix)


def rows_error(name: str, problem: str, n_rows: int, examples: str,
               fix: str | None = None) -> DataError:
    """The error for ``n_rows`` rows of column ``name`` with ``problem``, shown by ``examples``."""
    message = f"column {name!r} {problem}: {n_rows} row(s), {examples}"
    if fix:
        message += f"; {fix}"
    return DataError(message)


def _format_rows(rows: pd.Series | pd.DataFrame) -> str:
    if isinstance(rows, pd.Series):
        return ", ".join(f"row {index}: {value!r}" for index, value in rows.items())
    return ", ".join(
        f"row {index}: {tuple(values)}" for index, values in zip(rows.index, rows.to_numpy())
    )

