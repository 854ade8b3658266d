"""Checks of raw rows, shared by every reader (DataFrame, files, Dask, Spark): counts, exposure,
missing labels and windows, duplicated windows, and the one error format that names the column,
the rows and the fix.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ratepool.data.counts import MAX_STAN_INT, CountData
from ratepool.data.labels import show
from ratepool.errors import DataError

log = logging.getLogger(__name__)


#: How many offending rows an error message shows.
_SHOW_ROWS = 5


def index_location(index: Any) -> str:
    """Where a row of an in-memory DataFrame is: its index label."""
    return f"index {show(index)}"


#: The checks every count column passes, in order: (problem, fix, test on the counts as floats
#: with NaN for missing, the same test in SQL on a DOUBLE ``{v}``). `validate_counts` runs them
#: on a DataFrame column; `ratepool.data.duckdb_source` on the distinct values of a file's column,
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


#: The same wordings by name, for the cluster sources (`ratepool.data.cluster_source`), which run
#: the same checks where the rows live.
COUNT_MISSING, COUNT_INFINITE, COUNT_NEGATIVE, COUNT_FRACTION, COUNT_TOO_LARGE = (
    check[:2] for check in COUNT_CHECKS)


#: Messages for count columns that are not numbers at all.
BOOLEAN_COUNTS = ("holds booleans (True/False); counts must be non-negative integers — "
                  "convert them to the number of events (e.g. .astype(int), or CAST(... AS "
                  "INTEGER) in SQL, if True means one event)")


TEXT_COUNTS = ("holds values that are not numbers",
               "counts must be non-negative integers; clean or drop those rows (or name the "
               "right column with count_col=...)")


NO_ROWS = "the data has no rows; give at least one row per entity"


MISSING_LABELS = ("has missing entity labels", "drop those rows or give them a label")


BOOLEAN_EXPOSURES = "holds true/false values; give positive numbers"
MISSING_EXPOSURES = ("has missing exposures", "give every window its exposure, or drop those rows")
TEXT_EXPOSURES = ("has exposures that are not numbers", "give positive numbers")
BAD_EXPOSURES = ("has exposures that are not positive and finite",
                 "exposure is the size of the window (population, devices, hours): a window "
                 "with exposure 0 carries no information, drop it")


MISSING_WINDOWS = ("has missing window labels",
                   "drop those rows or give each its window; or leave window_col unset")


def validate_exposure(column: pd.Series, name: str, *,
                      where: Location = index_location) -> np.ndarray:
    """Positive, finite exposures as float64; raise `DataError` naming the rows otherwise."""
    if pd.api.types.is_bool_dtype(column.dtype):
        raise DataError(f"exposure column {name!r} {BOOLEAN_EXPOSURES}")
    numeric = pd.to_numeric(column, errors="coerce")
    problem, fix = MISSING_EXPOSURES
    _raise_rows(column, column.isna(), name, problem, fix=fix, where=where)
    problem, fix = TEXT_EXPOSURES
    _raise_rows(column, numeric.isna(), name, problem, fix=fix, where=where)
    values = numeric.to_numpy(dtype=float)
    problem, fix = BAD_EXPOSURES
    _raise_rows(column, ~(np.isfinite(values) & (values > 0)), name, problem, fix=fix,
                where=where)
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


#: Names where a row is, for messages: an index label of a DataFrame (`index_location`), or a
#: line of a CSV file / row of a Parquet file (`ratepool.data.duckdb_source`).
Location = Callable[[Any], str]
