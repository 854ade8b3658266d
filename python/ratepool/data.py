"""Count data: validation, the label <-> index mapping, and sufficient statistics.

Everything downstream works from a `CountData`: the entity labels (in index order), the
per-entity sufficient statistics (windows n_i, totals S_i), the global count histogram
(value k, frequency m_k) and, when raw rows were given, the rows themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .covariates import EntityCovariates, encode_covariates
from .errors import DataError
from .labels import factorize_labels, label_order, show

__all__ = [
    "CountData",
    "MAX_STAN_INT",
    "from_dataframe",
    "from_aggregates",
    "read_table",
    "load_counts",
    "COUNT_CHECKS",
    "rows_error",
    "index_location",
]

log = logging.getLogger(__name__)

#: Largest value Stan's 32-bit ``int`` holds; a single count above it cannot be passed to Stan.
MAX_STAN_INT = 2**31 - 1
#: How many offending rows an error message shows.
_SHOW_ROWS = 5

#: Names where a row is, for messages: an index label of a DataFrame (`index_location`), or a
#: line of a CSV file / row of a Parquet file (`ratepool.duckdb_source`).
Location = Callable[[Any], str]


def index_location(index: Any) -> str:
    """Where a row of an in-memory DataFrame is: its index label."""
    return f"index {show(index)}"


#: The checks every count column passes, in order: (problem, fix, test on the counts as floats
#: with NaN for missing, the same test in SQL on a DOUBLE ``{v}``). `validate_counts` runs them
#: on a DataFrame column; `ratepool.duckdb_source` on the distinct values of a file's column,
#: then finds the first offending rows with the SQL test.
COUNT_CHECKS: tuple[tuple[str, str, Callable[[np.ndarray], np.ndarray], str], ...] = (
    ("has missing values (NaN/None)", "drop or fill those rows", np.isnan,
     "({v} IS NULL OR isnan({v}))"),
    ("has infinite values", "drop those rows or replace them by the true counts",
     lambda v: ~np.isfinite(v), "isinf({v})"),
    ("has negative counts", "counts are events per window and cannot be negative",
     lambda v: v < 0, "{v} < 0"),
    ("has non-integer counts", "counts must be whole numbers (3.0 is fine, 3.5 is not)",
     lambda v: v != np.floor(v), "{v} <> floor({v})"),
    (f"has counts above {MAX_STAN_INT} (2^31 - 1), Stan's integer limit",
     "rescale the counts (e.g. count thousands of events) or split the windows",
     lambda v: v > MAX_STAN_INT, f"{{v}} > {MAX_STAN_INT}"),
)
#: Messages for count columns that are not numbers at all.
BOOLEAN_COUNTS = ("holds booleans (True/False); counts must be non-negative integers — "
                  "convert them to the number of events (e.g. .astype(int), or CAST(... AS "
                  "INTEGER) in SQL, if True means one event)")
TEXT_COUNTS = ("holds values that are not numbers",
               "counts must be non-negative integers; clean or drop those rows (or name the "
               "right column with count_col=...)")
#: The same wordings by name, for the cluster sources (`ratepool.cluster_source`), which run
#: the same checks where the rows live.
COUNT_MISSING, COUNT_INFINITE, COUNT_NEGATIVE, COUNT_FRACTION, COUNT_TOO_LARGE = (
    check[:2] for check in COUNT_CHECKS)
NO_ROWS = "the data has no rows; give at least one row per entity"
MISSING_LABELS = ("has missing entity labels", "drop those rows or give them a label")
MISSING_WINDOWS = ("has missing window labels",
                   "drop those rows or give each its window; or leave window_col unset")


@dataclass(frozen=True)
class CountData:
    """Validated counts, mapped to entity indices 0..J-1 (1..J in Stan).

    Attributes
    ----------
    labels : pandas.Index
        Entity labels; position i is entity index i (Stan index i + 1). Text exactly as
        written when read from a file; the user's own type when given in memory; ordered by
        `ratepool.labels.label_order`.
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
        bytes column was given (`ratepool.event_bytes`).
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
        """The data dict for ``stan/hierarchical_negbinom.stan`` with every model option off
        (JSON-ready Python types); see `ratepool.standata`, which builds it."""
        from .standata import base_stan_data  # standata imports this module

        return base_stan_data(
            self, mu_rate=mu_rate, alpha_sd=alpha_sd, phi_sd=phi_sd,
            use_sufficient_stats=use_sufficient_stats, prior_only=prior_only,
            non_centered=non_centered, obs_predictions=obs_predictions,
            entity_predictions=entity_predictions)


# --------------------------------------------------------------------------------------------
# Construction from raw rows


def from_dataframe(
    frame: pd.DataFrame,
    *,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    allow_duplicate_windows: bool = False,
    exposure_col: str | None = None,
    covariates: Sequence[str] | None = None,
    where: Location = index_location,
    bytes_col: str | None = None,
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
    exposure_col : str, optional
        Column with each window's exposure (population, devices, hours...): positive numbers.
        The model's mean count is then exposure x theta_i.
    covariates : sequence of str, optional
        Entity covariate columns, constant within each entity (numbers, or categories that are
        one-hot encoded against a reference level); see `ratepool.covariates`.
    where : callable, optional
        Names the place of a row (given its index label) in error messages; by default
        "index <label>". File readers pass one that names the line of the file.
    bytes_col : str, optional
        Column with the bytes each window moved: non-negative, 0 exactly where the count is 0
        (`ratepool.event_bytes.validate_bytes`). Adds the bytes factor to the model.

    Returns
    -------
    CountData
        Labels keep the frame's type and are ordered by `ratepool.labels.label_order`.

    Raises
    ------
    DataError
        Naming the column, the first offending rows and the fix.
    """
    _require_columns(frame, [entity_col, count_col] + ([window_col] if window_col else [])
                     + ([exposure_col] if exposure_col else []) + list(covariates or [])
                     + ([bytes_col] if bytes_col else []))
    if len(frame) == 0:
        raise DataError(NO_ROWS)
    labels_column = frame[entity_col]
    _raise_rows(labels_column, labels_column.isna(), entity_col, *MISSING_LABELS, where=where)
    y = validate_counts(frame[count_col], count_col, where=where)
    if window_col is not None:
        reject_missing_windows(frame[window_col], window_col, where=where)
        _check_duplicate_windows(frame, entity_col, window_col, allow_duplicate_windows, where)

    exposure = (validate_exposure(frame[exposure_col], exposure_col, where=where)
                if exposure_col is not None else None)
    window_bytes = None
    if bytes_col is not None:
        from .event_bytes import validate_bytes  # event_bytes imports this module

        window_bytes = validate_bytes(frame[bytes_col], y, bytes_col, where=where)

    codes, labels = factorize_labels(labels_column)
    entity_covariates = (encode_covariates(frame, covariates, entity_col, codes, labels,
                                           where=where) if covariates else None)
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
        exposure=exposure,
        covariates=entity_covariates,
        exposure_col=exposure_col,
        window_bytes=window_bytes,
    )
    _check_model_needs(data, entity_col, count_col)
    return data


def validate_exposure(column: pd.Series, name: str, *,
                      where: Location = index_location) -> np.ndarray:
    """Positive, finite exposures as float64; raise `DataError` naming the rows otherwise."""
    if pd.api.types.is_bool_dtype(column.dtype):
        raise DataError(f"exposure column {name!r} holds true/false values; give positive numbers")
    numeric = pd.to_numeric(column, errors="coerce")
    _raise_rows(column, column.isna(), name, "has missing exposures",
                fix="give every window its exposure, or drop those rows", where=where)
    _raise_rows(column, numeric.isna(), name, "has exposures that are not numbers",
                fix="give positive numbers", where=where)
    values = numeric.to_numpy(dtype=float)
    _raise_rows(column, ~(np.isfinite(values) & (values > 0)), name,
                "has exposures that are not positive and finite",
                fix="exposure is the size of the window (population, devices, hours): a window "
                    "with exposure 0 carries no information, drop it", where=where)
    return values


def validate_counts(column: pd.Series, name: str, *,
                    where: Location = index_location) -> np.ndarray:
    """Return the counts as int64, or raise `DataError` naming the first bad rows.

    Accepts integers and integral floats (3.0); rejects missing values, booleans, strings,
    fractions, negatives and values above Stan's int range (`COUNT_CHECKS`).
    """
    if pd.api.types.is_bool_dtype(column.dtype):
        raise DataError(f"column {name!r} {BOOLEAN_COUNTS}")
    if column.dtype == object or isinstance(column.dtype, pd.StringDtype):
        is_bool = column.map(lambda v: isinstance(v, (bool, np.bool_)))
        _raise_rows(column, is_bool, name, "holds booleans; counts must be non-negative integers",
                    fix="replace True/False by the number of events", where=where)
        numeric = pd.to_numeric(column, errors="coerce")
        not_number = numeric.isna() & column.notna()
        _raise_rows(column, not_number, name, *TEXT_COUNTS, where=where)
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
    values = column_numeric.to_numpy(dtype=float, na_value=np.nan)
    for problem, fix, test, _ in COUNT_CHECKS:
        with np.errstate(invalid="ignore"):
            _raise_rows(column, test(values), name, problem, fix, where=where)
    if pd.api.types.is_integer_dtype(column_numeric.dtype):
        return column_numeric.to_numpy(dtype=np.int64)
    return values.astype(np.int64)


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
    _raise_rows(entities[entity_col], entities[entity_col].isna(), entity_col, *MISSING_LABELS)
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

    order = label_order(pd.Index(entities[entity_col]))
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


def read_table(
    path: str | Path,
    columns: Sequence[str] | None = None,
    *,
    entity_col: str | None = None,
    window_col: str | None = None,
) -> pd.DataFrame:
    """The rows of a CSV or Parquet file (or glob), read through DuckDB in file order.

    ``entity_col`` is read as text labels (`ratepool.labels`); in a CSV, ``window_col`` is
    read as text too. The index is the 0-based data row; `ratepool.duckdb_source.read_rows`
    also gives the function that names a row's line in the file.
    """
    from .duckdb_source import read_rows

    frame, _ = read_rows(path, columns, entity_col=entity_col, window_col=window_col)
    return frame


def load_counts(
    source: str | Path | pd.DataFrame,
    *,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    allow_duplicate_windows: bool = False,
    exposure_col: str | None = None,
    covariates: Sequence[str] | None = None,
    bytes_col: str | None = None,
) -> CountData:
    """`from_dataframe` for a DataFrame, or for the rows of a CSV/Parquet file (or glob).

    Files are read through DuckDB (`ratepool.duckdb_source.read_rows`): entity labels as text
    exactly as written, CSV windows as text, and error messages name the line of the file
    (header = line 1; for Parquet the 1-based row). The raw rows are kept, so per-row outputs
    are available; for files larger than memory use `ratepool.aggregate_file`.
    """
    if isinstance(source, pd.DataFrame):
        return from_dataframe(source, entity_col=entity_col, count_col=count_col,
                              window_col=window_col,
                              allow_duplicate_windows=allow_duplicate_windows,
                              exposure_col=exposure_col, covariates=covariates,
                              bytes_col=bytes_col)
    from .duckdb_source import read_rows

    columns = ([entity_col, count_col] + ([window_col] if window_col else [])
               + ([exposure_col] if exposure_col else []) + list(covariates or [])
               + ([bytes_col] if bytes_col else []))
    frame, where = read_rows(source, columns, entity_col=entity_col, window_col=window_col)
    try:
        return from_dataframe(
            frame,
            entity_col=entity_col,
            count_col=count_col,
            window_col=window_col,
            allow_duplicate_windows=allow_duplicate_windows,
            exposure_col=exposure_col,
            covariates=covariates,
            where=where,
            bytes_col=bytes_col,
        )
    except DataError as error:
        raise DataError(f"{source}: {error}") from None


# --------------------------------------------------------------------------------------------
# Checks shared by the constructors


def require_columns(available: Sequence[Any], columns: Sequence[str], what: str) -> None:
    """Raise `DataError` naming the ``columns`` missing from ``available`` (``what`` has)."""
    missing = [c for c in columns if c not in available]
    if missing:
        raise DataError(
            f"{what} has no column(s) {missing}; its columns are {list(available)}. "
            "Name the right ones (entity_col=..., count_col=..., window_col=..., or "
            "--entity-col/--count-col/--window-col)"
        )


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], table: str = "data") -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"the {table} must be a pandas DataFrame, got {type(frame).__name__}")
    require_columns(list(frame.columns), columns, f"the {table}")
    repeated = sorted({str(c) for c in columns if int((frame.columns == c).sum()) > 1})
    if repeated:
        raise DataError(
            f"the {table} has more than one column named {repeated}; rename or drop the extra "
            "ones"
        )


def reject_missing_windows(windows: pd.Series, name: str, *,
                           where: Location = index_location) -> None:
    """Raise `DataError` if any row of the window column has no window label."""
    _raise_rows(windows, windows.isna(), name, *MISSING_WINDOWS, where=where)


def _check_duplicate_windows(
    frame: pd.DataFrame, entity_col: str, window_col: str, allowed: bool,
    where: Location = index_location,
) -> None:
    repeated = frame.duplicated(subset=[entity_col, window_col], keep=False)
    if not repeated.any():
        return
    if allowed:
        log.info("%d rows repeat an (entity, window) pair; each counts as its own window",
                 int(repeated.sum()))
        return
    rows = frame.loc[repeated, [entity_col, window_col]].head(_SHOW_ROWS)
    raise duplicate_windows_error(
        entity_col, window_col, int(repeated.sum()),
        [(where(index), tuple(values)) for index, values in zip(rows.index, rows.to_numpy())])


def duplicate_windows_error(entity_col: str, window_col: str, n_rows: int,
                            shown: Sequence[tuple[str, Any]] | str) -> DataError:
    """The error for rows that repeat an (entity, window) pair; ``shown``: (where, pair) pairs,
    or examples already written out (the cluster sources show pairs with their row counts)."""
    examples = shown if isinstance(shown, str) else _format_rows(shown)
    return DataError(
        f"{n_rows} rows repeat an ({entity_col!r}, {window_col!r}) pair, e.g. "
        f"{examples}. Sum them per window first, or pass "
        "allow_duplicate_windows=True (--allow-duplicate-windows) if each row really is a "
        "separate window"
    )


def _check_model_needs(data: CountData, entity_col: str, count_col: str) -> None:
    if data.n_entities < 2:
        raise DataError(
            f"column {entity_col!r} has a single entity ({show(data.labels[0])}); partial "
            "pooling needs at least two entities (with one, the population parameters mu and "
            "alpha are informed by the prior alone). Add the other entities' rows, or check "
            f"that {entity_col!r} is the column that identifies entities"
        )
    if data.entity_total.sum() == 0:
        log.warning(
            "every count is zero: the rates will be estimated near 0, mu, alpha and phi are "
            "left mostly to their priors, and the sampler may report divergences and high "
            "R-hat (the posterior piles up at theta = 0). Check that column %r holds the "
            "counts; if it does, a zero rate is the answer and no fit is needed", count_col
        )


def _raise_rows(
    column: pd.Series, bad: pd.Series | np.ndarray, name: str, problem: str,
    fix: str | None = None, *, where: Location = index_location,
) -> None:
    """Raise `DataError` listing the first rows where ``bad`` holds, if any."""
    mask = np.asarray(bad, dtype=bool)
    if not mask.any():
        return
    shown = column[mask].head(_SHOW_ROWS)
    raise rows_error(name, problem, int(mask.sum()),
                     [(where(index), value) for index, value in shown.items()], fix)


def rows_error(name: str, problem: str, n_rows: int, shown: Sequence[tuple[str, Any]] | str,
               fix: str | None = None) -> DataError:
    """The error for ``n_rows`` bad rows of column ``name``; ``shown``: the first rows as
    (where, value) pairs, or examples already written out (e.g. "e.g. ..." from a cluster)."""
    examples = shown if isinstance(shown, str) else f"first {_format_rows(shown)}"
    message = f"column {name!r} {problem}: {n_rows} row(s), {examples}"
    if fix:
        message += f"; {fix}"
    return DataError(message)


def _format_rows(shown: Sequence[tuple[str, Any]]) -> str:
    return ", ".join(f"{where}: {show(value)}" for where, value in shown)
