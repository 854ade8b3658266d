"""The contract shared by the cluster sources, `ratepool.from_dask` and `ratepool.from_spark`.

When the rows live on a cluster, the O(N) pass runs there and only O(J + K) numbers come back
to the driver. Every source computes, where the rows are:

1. for each check of `checks_for` (the checks of `ratepool.data.frame.from_dataframe`, in its
   order), the number of rows failing it; for the first check that fails, up to five example
   rows (entity, count and window) are fetched and the error is raised with the same wording as
   `from_dataframe` (`row_check_error`);
2. with a window column (unless duplicates are allowed): the number of rows in
   (entity, window) groups of more than one row, and up to five such pairs — an exact
   group-by on both columns, never a hash (`duplicate_error`);
3. per entity: the label, the number of rows (windows n_i) and the sum of the counts as 64-bit
   integers (total S_i);
4. the global count histogram: each count value k and how many rows have it (m_k).

`finish` turns the tables of 3 and 4 into `CountData` through `ratepool.data.frame.from_aggregates`,
which maps labels to indices in the sorted order `from_dataframe` uses, so both give the same
labels, windows, totals and histogram on the same rows (the raw rows are not kept:
``has_rows`` is False, as for any aggregated input).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ratepool.data.counts import CountData
from ratepool.data.frame import from_aggregates
from ratepool.data.validate import (
    COUNT_FRACTION,
    COUNT_INFINITE,
    COUNT_MISSING,
    COUNT_NEGATIVE,
    COUNT_TOO_LARGE,
    MISSING_LABELS,
    MISSING_WINDOWS,
    NO_ROWS,
    _require_columns,
    duplicate_windows_error,
    rows_error,
    validate_counts,
)
from ratepool.errors import DataError, MissingDependencyError

__all__ = [
    "SHOW_ROWS",
    "Columns",
    "RowCheck",
    "ROW_CHECKS",
    "require_columns",
    "count_kind",
    "checks_for",
    "first_failure",
    "row_check_error",
    "duplicate_error",
    "finish",
    "missing_extra",
]

log = logging.getLogger(__name__)

#: How many example rows (or repeated pairs) an error fetches from the cluster.
SHOW_ROWS = 5


@dataclass(frozen=True)
class Columns:
    """The user's column names: entity label, count, and optionally window."""

    entity: str
    count: str
    window: str | None = None

    @property
    def names(self) -> list[str]:
        """The columns the sources read, in the order entity, count, window."""
        return [self.entity, self.count] + ([self.window] if self.window is not None else [])

    def of(self, role: str) -> str:
        """The column name for a role: ``"entity"``, ``"count"`` or ``"window"``."""
        name = {"entity": self.entity, "count": self.count, "window": self.window}[role]
        assert name is not None, role
        return name


@dataclass(frozen=True)
class RowCheck:
    """One row-level check: a key the sources map to a condition, the column role, wording."""

    key: str
    role: str
    problem: str
    fix: str


#: Every row check, in the order `from_dataframe` runs them (the first failing one is reported).
ROW_CHECKS: tuple[RowCheck, ...] = (
    RowCheck("label_missing", "entity", *MISSING_LABELS),
    RowCheck("count_missing", "count", *COUNT_MISSING),
    RowCheck("count_infinite", "count", *COUNT_INFINITE),
    RowCheck("count_negative", "count", *COUNT_NEGATIVE),
    RowCheck("count_fraction", "count", *COUNT_FRACTION),
    RowCheck("count_too_large", "count", *COUNT_TOO_LARGE),
    RowCheck("window_missing", "window", *MISSING_WINDOWS),
)
#: Checks that cannot fail for an integer count column.
_FLOAT_ONLY = {"count_infinite", "count_fraction"}


def require_columns(available: Iterable[Any], columns: Columns) -> None:
    """Raise `DataError` (the wording of `from_dataframe`) if a needed column is absent."""
    _require_columns(pd.DataFrame(columns=list(available)), columns.names)


def count_kind(name: str, dtype: Any, type_name: str, cast_hint: str) -> str:
    """``"integer"`` or ``"float"`` for a count column's type, else raise `DataError`.

    Parameters
    ----------
    name : str
        The count column.
    dtype : numpy/pandas dtype or None
        The pandas dtype the column corresponds to (None: no numeric equivalent).
    type_name : str
        The column's type as the cluster names it (shown in the error).
    cast_hint : str
        How to convert the column in the user's framework (shown in the error).
    """
    if dtype is not None:
        # Booleans, complex numbers, dates...: the same message as from_dataframe.
        validate_counts(pd.Series([], dtype=dtype, name=name), name)
        if pd.api.types.is_integer_dtype(dtype):
            return "integer"
        if pd.api.types.is_float_dtype(dtype):
            return "float"
    raise DataError(
        f"column {name!r} has type {type_name}; on a cluster the counts must be a numeric "
        f"column (non-negative whole numbers) — convert it first, e.g. {cast_hint}, or name "
        "the right column with count_col=..."
    )


def checks_for(kind: str, columns: Columns) -> list[RowCheck]:
    """The row checks that apply to a count column of this kind (and window column or not)."""
    return [
        check for check in ROW_CHECKS
        if not (kind == "integer" and check.key in _FLOAT_ONLY)
        and not (check.role == "window" and columns.window is None)
    ]


def first_failure(checks: Iterable[RowCheck],
                  failing_rows: Mapping[str, Any]) -> tuple[RowCheck, int] | None:
    """The first check with failing rows, and how many rows fail it; None if all pass."""
    for check in checks:
        count = int(failing_rows[check.key] or 0)  # a SQL sum over no rows is NULL
        if count:
            return check, count
    return None


def row_check_error(check: RowCheck, columns: Columns, n_rows: int,
                    examples: pd.DataFrame) -> DataError:
    """The `from_dataframe` error of a failed check, shown by example rows from the cluster."""
    return rows_error(columns.of(check.role), check.problem, n_rows,
                      f"e.g. {_format_examples(examples)}", check.fix)


def duplicate_error(columns: Columns, n_rows: int, pairs: pd.DataFrame) -> DataError:
    """The `from_dataframe` error for repeated (entity, window) pairs.

    ``pairs`` holds up to `SHOW_ROWS` repeated pairs: entity, window, and the rows of each.
    """
    shown = ", ".join(f"({entity!r}, {window!r}) in {rows} rows"
                      for entity, window, rows in _records(pairs))
    assert columns.window is not None
    return duplicate_windows_error(columns.entity, columns.window, n_rows, shown)


def finish(entities: pd.DataFrame, histogram: pd.DataFrame, columns: Columns,
           source: str) -> CountData:
    """`CountData` from the cluster's tables, through `from_aggregates`.

    Parameters
    ----------
    entities : pandas.DataFrame
        Three columns, in order: entity label, windows, total count (one row per entity).
    histogram : pandas.DataFrame
        Two columns, in order: count value, frequency.
    columns : Columns
        The user's column names (named in errors).
    source : str
        What the rows came from, for the log line.
    """
    if len(entities) == 0:
        raise DataError(NO_ROWS)
    windows_col, total_col = ("n_windows", "total_count") if columns.entity not in (
        "n_windows", "total_count") else ("n_windows_", "total_count_")
    entities = entities.set_axis([columns.entity, windows_col, total_col], axis=1)
    histogram = histogram.set_axis(["value", "frequency"], axis=1)
    data = from_aggregates(entities, histogram, entity_col=columns.entity,
                           windows_col=windows_col, total_col=total_col)
    log.info("aggregated %d rows of %s on the cluster into %d entities and %d distinct counts",
             data.n_windows_total, source, data.n_entities, len(data.count_value))
    return data


def missing_extra(extra: str, error: ImportError) -> MissingDependencyError:
    """The error raised when an optional extra's package cannot be imported."""
    return MissingDependencyError(
        f"ratepool.from_{extra} needs the optional extra {extra!r}: pip install "
        f"'ratepool[{extra}]' ({error})"
    )


def _records(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows as tuples of plain Python values (so that reprs read 3, not np.int64(3))."""
    return [tuple(v.item() if isinstance(v, np.generic) else v for v in row)
            for row in frame.itertuples(index=False, name=None)]


def _format_examples(rows: pd.DataFrame) -> str:
    names = [str(name) for name in rows.columns]
    return ", ".join(
        "(" + ", ".join(f"{name}={value!r}" for name, value in zip(names, values)) + ")"
        for values in _records(rows)
    )
