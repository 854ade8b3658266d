"""Entity labels: how they are read from files, and the one order they map to Stan indices in.

The rules, the same on every path (CSV, Parquet, globs, DuckDB queries, aggregated input, the
``export-data`` label table, a reloaded results folder):

- **Labels read from a file are text, exactly as written.** "007" and "7" are two entities and
  the text "NA" is a label; only an empty cell (SQL NULL, or an empty string) is a missing
  label. A typed Parquet column gives the text of each value (DuckDB's ``CAST(... AS VARCHAR)``:
  the integer 7 becomes "7"). Files are read through DuckDB with `label_sql` as the one
  normaliser; `read_label_table` reads small CSV tables (label files, saved summaries) with it.
- **Labels given in memory keep the user's type** (`ratepool.from_dataframe`,
  `ratepool.from_aggregates`): integers stay integers, strings stay strings.
- **One order** (`label_order`): when every label is text holding an integer written without
  leading zeros or sign ("-3", "0", "10"; not "007", "+1", "1.0"), the labels are ordered by
  that integer, so a file's numeric IDs get the order they had when they were read as numbers;
  otherwise labels sort by value; labels of mixed, unorderable types sort by (type name, text).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ratepool.errors import DataError

__all__ = [
    "label_sql",
    "quote_identifier",
    "label_order",
    "sorted_labels",
    "factorize_labels",
    "read_label_table",
    "sql_string",
    "show",
]

#: An integer written canonically: no sign but "-", no leading zeros, no spaces.
_CANONICAL_INT = r"-?(?:0|[1-9][0-9]*)"
_CANONICAL_INT_RE = re.compile(_CANONICAL_INT + r"\Z")
#: Digits up to which canonical integers fit int64 (the fast, vectorised order).
_INT64_DIGITS = 18


def quote_identifier(name: str) -> str:
    """A column name as a quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def label_sql(column: str) -> str:
    """The SQL expression that turns a file's label column into text labels.

    Text stays as written; any other type becomes its text; NULL and the empty string are
    missing labels (NULL).
    """
    return f"NULLIF(CAST({quote_identifier(column)} AS VARCHAR), '')"


def label_order(labels: Sequence[Any] | np.ndarray | pd.Index) -> np.ndarray:
    """The permutation that puts ``labels`` (distinct values) in Stan-index order.

    Text labels that are all canonical integers are ordered by their integer value; otherwise
    labels sort by value (stable), and mixed unorderable types by (type name, text).
    """
    values = np.empty(len(labels), dtype=object)
    values[:] = list(labels)
    if len(values) and all(isinstance(v, str) for v in values):
        text = pd.Series(values, dtype=object)
        if bool(text.str.fullmatch(_CANONICAL_INT).all()):
            if int(text.str.len().max()) <= _INT64_DIGITS:
                return np.argsort(text.astype(np.int64).to_numpy(), kind="stable")
            numbers = [int(v) for v in values]
            return np.asarray(sorted(range(len(numbers)), key=numbers.__getitem__))
    try:
        return np.asarray(pd.Index(values).argsort(kind="stable"))
    except TypeError:
        keys = [(type(v).__name__, str(v)) for v in values]
        return np.asarray(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def sorted_labels(labels: Iterable[Any]) -> pd.Index:
    """Distinct labels as the ``entity`` index, in `label_order`."""
    values = pd.Index(list(labels))
    return pd.Index(values.take(label_order(values)), name="entity")


def factorize_labels(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """0-based codes of each row into the labels in `label_order` (any input row order)."""
    try:
        codes, uniques = pd.factorize(column, sort=False)
    except TypeError as error:  # unhashable labels (lists, dicts, arrays)
        raise DataError(
            f"column {column.name!r} holds entity labels that cannot be compared ({error}), "
            f"e.g. {show(column.iloc[0])}; use strings or numbers as entity labels"
        ) from None
    order = label_order(uniques)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], pd.Index(pd.Index(uniques).take(order), name="entity")


def read_label_table(path: str | Path, label_column: str = "entity") -> pd.DataFrame:
    """Read a small CSV table whose ``label_column`` holds entity labels, through `label_sql`.

    The other columns get DuckDB's types. Raises `DataError` if the column is absent or a label
    is missing (naming the line, header = line 1).
    """
    import duckdb

    path = Path(path)
    name = quote_identifier(label_column)
    con = duckdb.connect()
    try:
        header = con.sql("SELECT * FROM read_csv(?, header = true, all_varchar = true) LIMIT 0",
                         params=[str(path)]).columns
        if label_column not in header:
            raise DataError(f"{path} has no column {label_column!r}; its columns are {header}")
        table = con.sql(
            f"SELECT row_number() OVER () + 1 AS __line, * REPLACE ({label_sql(label_column)} "
            f"AS {name}) FROM read_csv(?, header = true, types = {{{sql_string(label_column)}: "
            "'VARCHAR'})", params=[str(path)]).df()
    except duckdb.Error as error:
        raise DataError(f"could not read {path}: {error}") from None
    finally:
        con.close()
    missing = table[label_column].isna()
    if missing.any():
        lines = ", ".join(f"line {n}" for n in table.loc[missing, "__line"].head(5))
        raise DataError(f"{path}: column {label_column!r} has missing labels ({lines})")
    table[label_column] = table[label_column].astype(object)
    return table.drop(columns="__line")


def sql_string(value: str) -> str:
    """A Python string as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def show(value: Any) -> str:
    """A value as a message shows it: numpy scalars as the plain Python value (7, not
    ``np.int64(7)``), tuples element-wise."""
    if isinstance(value, tuple):
        return "(" + ", ".join(show(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def as_reference_types(column: pd.Series, reference: Sequence[Any] | np.ndarray) -> pd.Series:
    """Text labels read from a file, with the type of a fit's labels where that is unambiguous.

    When every ``reference`` label is an integer (a fit from an in-memory frame of integer
    labels), a label written as a canonical integer becomes that integer ("7" -> 7); any other
    text ("007", "7.0", "seven") stays text and so matches no integer label. Otherwise the
    column is returned as it is.
    """
    if not len(reference) or not all(isinstance(v, (int, np.integer))
                                     and not isinstance(v, (bool, np.bool_))
                                     for v in reference):
        return column
    text = column.astype(object)
    canonical = text.map(lambda v: isinstance(v, str) and bool(_CANONICAL_INT_RE.match(v)))
    converted = text.where(~canonical, text[canonical].map(int))
    return converted.astype(object)
