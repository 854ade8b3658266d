"""CSV / Parquet files (and globs) and DuckDB queries into `CountData`, through DuckDB.

`aggregate_file` and `from_duckdb` never load the rows into Python: one DuckDB query groups
them by entity and by count value at once (``GROUPING SETS``), in parallel and out of core,
giving the per-entity windows and totals (exact integers) and the count histogram; the
duplicate-(entity, window) check is an exact ``GROUP BY entity, window HAVING count(*) > 1``.
Only when a check fails is the source scanned again, to name the first offending rows: the
line of a CSV file (header = line 1), the 1-based row of a Parquet file (prefixed by the file
name for a glob), or the 1-based row of a query's result.

Memory: for the files it opens, ratepool sets DuckDB's ``memory_limit`` (default
`DEFAULT_MEMORY_LIMIT`, 1 GB) and a fresh ``temp_directory`` (deleted afterwards), so the
duplicate check over 10^8 distinct (entity, window) pairs spills to disk instead of growing;
Python holds O(J + K). `from_duckdb` runs on the caller's connection with its settings.

`read_rows` reads the raw rows for `ratepool.load_counts` through the same reader, so that a
file gives the same labels and the same messages on both paths. Labels follow
`ratepool.data.labels`: text exactly as written.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratepool.data.counts import CountData
from ratepool.data.frame import from_aggregates
from ratepool.data.labels import label_sql, quote_identifier, sql_string
from ratepool.data.validate import (
    BOOLEAN_COUNTS,
    COUNT_CHECKS,
    MISSING_LABELS,
    MISSING_WINDOWS,
    TEXT_COUNTS,
    Location,
    duplicate_windows_error,
    require_columns,
    rows_error,
)
from ratepool.errors import DataError

__all__ = ["DEFAULT_MEMORY_LIMIT", "aggregate_file", "from_duckdb", "read_rows"]

log = logging.getLogger(__name__)

#: DuckDB's memory limit for the files ratepool opens; beyond it DuckDB spills to disk.
DEFAULT_MEMORY_LIMIT = "1GB"
_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".txt", ".gz")
_INTEGER = {"tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint",
            "uinteger", "ubigint", "uhugeint"}
_FLOAT = {"float", "double", "decimal"}
_SHOW_ROWS = 5
_FILE = "__ratepool_file"


class _LateCsvValue(Exception):
    """A CSV value past DuckDB's type-sniffing sample does not fit the sniffed type."""


@dataclass(frozen=True)
class _Source:
    """Rows to read: a DuckDB relation, what it is, and how to name a row's place."""

    relation: Any  # duckdb.DuckDBPyRelation
    kind: str  # "csv", "parquet" or "query"
    name: str
    multi_file: bool

    def type_of(self, column: str) -> str:
        return str(self.relation.types[self.relation.columns.index(column)].id)

    def query(self, sql: str) -> pd.DataFrame:
        """Run ``sql`` over the rows (the view ``__rows``); DuckDB errors become DataError."""
        import duckdb

        try:
            return self.relation.query("__rows", sql).df()
        except duckdb.ConversionException as error:
            if self.kind == "csv":
                raise _LateCsvValue(str(error)) from None
            raise DataError(f"could not read {self.name}: {error}") from None
        except duckdb.Error as error:
            raise DataError(f"could not read {self.name}: {error}") from None

    def where(self, file: Any, row: int) -> str:
        """A row's place: CSV line (header = line 1) or 1-based row, with the file for globs."""
        place = f"line {row + 2}" if self.kind == "csv" else f"row {row + 1}"
        return f"{file} {place}" if self.multi_file else place


# --------------------------------------------------------------------------------------------
# Public entry points


def aggregate_file(
    path: str | Path,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    *,
    allow_duplicate_windows: bool = False,
    check_windows: bool = True,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    temp_directory: str | Path | None = None,
    threads: int | None = None,
) -> CountData:
    """Aggregate a CSV or Parquet file (or a glob such as ``events/*.parquet``) with DuckDB.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.csv`` (optionally ``.gz``) or ``.parquet`` file, or a glob of them; one row per
        entity-window.
    entity_col, count_col : str
        Column names of the entity label and the event count.
    window_col : str, optional
        Column naming the window. With ``check_windows`` (the default) a repeated
        (entity, window) pair is an error unless ``allow_duplicate_windows`` is true.
    allow_duplicate_windows : bool
        Accept repeated (entity, window) pairs (each row counts as its own window).
    check_windows : bool
        Look for repeated (entity, window) pairs: an exact DuckDB ``GROUP BY`` over all pairs
        (spills to ``temp_directory`` beyond ``memory_limit``); false skips that second pass.
    memory_limit : str
        DuckDB's memory limit, e.g. ``"1GB"`` (default `DEFAULT_MEMORY_LIMIT`).
    temp_directory : path, optional
        Where DuckDB spills; by default a fresh directory in the system temp dir, deleted
        afterwards.
    threads : int, optional
        DuckDB threads; by default one per core.

    Returns
    -------
    CountData
        Built with `ratepool.from_aggregates`, hence without raw rows (``has_rows`` is
        False). Labels (text, `ratepool.data.labels`), windows, totals and histogram equal those of
        ``load_counts(path)``.

    Raises
    ------
    DataError
        For a missing file or column, an unreadable file, or bad values (naming the line).
    """
    columns = [entity_col, count_col] + ([window_col] if window_col else [])
    with _connection(memory_limit, temp_directory, threads) as con:
        def run(text_columns: Sequence[str]) -> CountData:
            source = _file_source(con, path, columns, entity_col=entity_col,
                                  window_col=window_col, text_columns=text_columns)
            return _aggregate(source, entity_col, count_col, window_col,
                              check=window_col is not None and check_windows
                              and not allow_duplicate_windows)

        return _retry_as_text(run, [count_col])


def from_duckdb(
    con: Any,
    query: Any,
    *,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    allow_duplicate_windows: bool = False,
    check_windows: bool = True,
) -> CountData:
    """Aggregate the rows of a DuckDB query (SQL text or a relation) into `CountData`.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The connection the query runs on (its settings, e.g. ``memory_limit``, apply).
    query : str or duckdb.DuckDBPyRelation
        ``"SELECT ..."`` or a relation, one row per entity-window. Entity labels become text
        (`ratepool.data.labels`); read a CSV's entity column as text in the query
        (``read_csv(..., types = {'entity': 'VARCHAR'})``) so that "007" stays "007".
    entity_col, count_col, window_col, allow_duplicate_windows, check_windows
        As in `aggregate_file`.

    Returns
    -------
    CountData
        Without raw rows; equal to ``load_counts`` of the same rows read from a file.
    """
    import duckdb

    if isinstance(query, duckdb.DuckDBPyRelation):
        relation = query
    elif isinstance(query, str):
        try:
            relation = con.sql(query)
        except duckdb.Error as error:
            raise DataError(f"the DuckDB query failed: {error}") from None
    else:
        raise DataError(f"from_duckdb takes SQL text or a DuckDB relation, got "
                        f"{type(query).__name__}")
    if relation is None:
        raise DataError("the DuckDB query returns no rows (is it a SELECT?)")
    _require(list(relation.columns), [entity_col, count_col]
             + ([window_col] if window_col else []), "the query")
    source = _Source(relation, "query", "the query", multi_file=False)
    return _aggregate(source, entity_col, count_col, window_col,
                      check=window_col is not None and check_windows
                      and not allow_duplicate_windows)


def read_rows(
    path: str | Path,
    columns: Sequence[str] | None = None,
    *,
    entity_col: str | None = None,
    window_col: str | None = None,
) -> tuple[pd.DataFrame, Location]:
    """The rows of a file (or glob) in file order, and the function naming a row's line.

    ``entity_col`` becomes text labels (`ratepool.data.labels.label_sql`); in a CSV, ``window_col``
    is read as text. The index is 0-based over all rows read.
    """
    with _connection(DEFAULT_MEMORY_LIMIT, None, None) as con:
        def run(text_columns: Sequence[str]) -> tuple[_Source, pd.DataFrame]:
            source = _file_source(con, path, columns, entity_col=entity_col,
                                  window_col=window_col, text_columns=text_columns)
            wanted = list(columns) if columns else [c for c in source.relation.columns
                                                    if c not in (_FILE, "file_row_number")]
            select = ", ".join(f"{label_sql(c)} AS {quote_identifier(c)}" if c == entity_col
                               else quote_identifier(c) for c in wanted)
            if source.multi_file:
                select += f", {quote_identifier(_FILE)}"
            return source, source.query(f"SELECT {select} FROM __rows")

        source, frame = _retry_as_text(run, list(columns or []))
    if not source.multi_file:
        return frame, lambda index: source.where(None, int(index))
    files = frame.pop(_FILE).to_numpy()
    row = frame.groupby(pd.Series(files, index=frame.index), sort=False).cumcount().to_numpy()
    return frame, lambda index: source.where(files[index], int(row[index]))


# --------------------------------------------------------------------------------------------
# Reading


@contextmanager
def _connection(memory_limit: str, temp_directory: str | Path | None,
                threads: int | None) -> Iterator[Any]:
    """A private DuckDB connection with a memory limit and a spill directory."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="ratepool-duckdb-") as scratch:
        config = {"memory_limit": str(memory_limit),
                  "temp_directory": str(temp_directory or scratch)}
        if threads is not None:
            config["threads"] = int(threads)
        try:
            con = duckdb.connect(config=config)
        except duckdb.Error as error:
            raise DataError(f"DuckDB settings rejected: {error}") from None
        try:
            yield con
        finally:
            con.close()


def _retry_as_text(run: Any, columns: Sequence[str]) -> Any:
    """``run(())``; if a CSV value beyond DuckDB's sniffing sample does not fit the sniffed
    type (e.g. "x" at line 50,000 of a count column), ``run(columns)`` reads those columns as
    text so that ratepool's checks name the line and the value."""
    try:
        return run(())
    except _LateCsvValue as error:
        log.info("re-reading %s as text after %s", columns, str(error).splitlines()[0])
        return run(columns)


def _file_source(con: Any, path: str | Path, columns: Sequence[str] | None, *,
                 entity_col: str | None, window_col: str | None,
                 text_columns: Sequence[str] = ()) -> _Source:
    """The file's rows as a relation: CSV labels and windows (and ``text_columns``) as text,
    file names for globs."""
    import duckdb

    text = str(path)
    is_glob = any(mark in text for mark in "*?[")
    if not is_glob and not Path(text).exists():
        raise DataError(f"data file {text} does not exist")
    suffix = Path(text).suffix.lower()
    literal = sql_string(text)
    try:
        if suffix in _PARQUET:
            relation = con.sql(f"SELECT * FROM read_parquet({literal}, filename = '{_FILE}', "
                               "file_row_number = true)")
            kind = "parquet"
        elif suffix in _CSV:
            header = con.sql(f"SELECT * FROM read_csv({literal}, header = true, "
                             "all_varchar = true) LIMIT 0").columns
            _require(header, columns or [], f"data file {text}")
            types = ", ".join(f"{sql_string(c)}: 'VARCHAR'" for c in
                              dict.fromkeys([entity_col, window_col, *text_columns]) if c)
            relation = con.sql(f"SELECT * FROM read_csv({literal}, header = true, "
                               f"filename = '{_FILE}'"
                               + (f", types = {{{types}}})" if types else ")"))
            kind = "csv"
        else:
            raise DataError(f"data file {text}: unknown format {suffix!r}; use .csv or "
                            ".parquet (or a glob of them)")
        files = con.sql(f"SELECT count(*) FROM glob({literal})").fetchall()[0][0]
    except duckdb.Error as error:
        raise DataError(f"could not read {text}: {error}") from None
    _require(list(relation.columns), columns or [], f"data file {text}")
    return _Source(relation, kind, text, multi_file=is_glob and files > 1)


def _require(available: Sequence[str], columns: Sequence[str], what: str) -> None:
    require_columns([c for c in available if c not in (_FILE, "file_row_number")], columns,
                    what)


# --------------------------------------------------------------------------------------------
# Aggregation and checks


def _aggregate(source: _Source, entity_col: str, count_col: str, window_col: str | None,
               *, check: bool) -> CountData:
    """One grouping pass to the sufficient statistics; rows are located only on failure."""
    entity, count = quote_identifier(entity_col), quote_identifier(count_col)
    kind = source.type_of(count_col)
    if kind == "boolean":
        raise DataError(f"{source.name}: column {count_col!r} {BOOLEAN_COUNTS}")
    if kind in _INTEGER:
        value = count
    elif kind in _FLOAT or kind == "varchar":
        value = f"TRY_CAST({count} AS DOUBLE)"
    else:
        raise DataError(f"{source.name}: column {count_col!r} has type {kind.upper()}; counts "
                        "must be non-negative integers (name the right column with "
                        "count_col=..., or convert it)")
    # Integers and text group as they are (their text is distinct exactly when they are);
    # other types group by their text.
    key = entity if source.type_of(entity_col) in _INTEGER | {"varchar"} \
        else label_sql(entity_col)
    window = quote_identifier(window_col) if window_col else "NULL"
    columns = f"{key} AS __key, {value} AS __value, {window} AS __window"
    table = source.query(
        f"SELECT grouping(__key) AS by_value, {label_sql('__key')} AS label, __value, "
        "count(*) AS n, TRY_CAST(sum(TRY_CAST(__value AS BIGINT)) AS BIGINT) AS total, "
        "count(*) FILTER (WHERE __window IS NULL) AS no_window "
        f"FROM (SELECT {columns} FROM __rows) GROUP BY GROUPING SETS ((__key), (__value))")
    entities = table[table["by_value"] == 0]
    histogram = table[table["by_value"] == 1]
    if int(entities["n"].sum()) == 0:
        raise DataError(f"{source.name} has no rows; give at least one row per entity")
    locate = _Locator(source, columns)
    missing = entities["label"].isna().to_numpy()
    if missing.any():
        locate.raise_rows(f"{label_sql('__key')} IS NULL", entity, entity_col,
                          int(entities["n"][missing].sum()), *MISSING_LABELS)
    if kind == "varchar":
        not_number = f"{count} IS NOT NULL AND __value IS NULL"
        bad = int(source.query(f"SELECT count(*) AS n FROM (SELECT *, {columns} FROM __rows) "
                               f"WHERE {not_number}")["n"].iloc[0])
        if bad:
            locate.raise_rows(not_number, count, count_col, bad, *TEXT_COUNTS)
    values = pd.to_numeric(histogram["__value"]).to_numpy(dtype=float, na_value=np.nan)
    freq = histogram["n"].to_numpy(dtype=np.int64)
    for problem, fix, test, sql in COUNT_CHECKS:
        with np.errstate(invalid="ignore"):
            bad_values = test(values)
        if bad_values.any():
            locate.raise_rows(sql.format(v="CAST(__value AS DOUBLE)"), count, count_col,
                              int(freq[bad_values].sum()), problem, fix)
    if window_col is not None and int(entities["no_window"].sum()):
        locate.raise_rows("__window IS NULL", quote_identifier(window_col), window_col,
                          int(entities["no_window"].sum()), *MISSING_WINDOWS)
    if check:
        locate.check_duplicates(entity_col, window_col)
    log.info("aggregated %d rows of %s into %d entities and %d distinct counts",
             int(entities["n"].sum()), source.name, len(entities), len(histogram))
    return from_aggregates(
        pd.DataFrame({"entity": entities["label"].to_numpy(dtype=object),
                      "n_windows": entities["n"].to_numpy(dtype=np.int64),
                      "total_count": entities["total"].to_numpy(dtype=np.int64)}),
        pd.DataFrame({"value": values.astype(np.int64), "frequency": freq}))


class _Locator:
    """Finds the first rows (in file order) where a condition holds, with their places."""

    def __init__(self, source: _Source, columns: str) -> None:
        self.source = source
        if source.kind == "parquet":
            position = f"{quote_identifier(_FILE)} AS __file, file_row_number AS __row"
        elif source.kind == "csv":
            position = f"{quote_identifier(_FILE)} AS __file, row_number() OVER () - 1 AS __row"
        else:
            position = "NULL AS __file, row_number() OVER () - 1 AS __row"
        # the row number is taken in the scan, before any filter or join
        self.rows = f"(SELECT *, {columns}, {position} FROM __rows)"
        self.plain = f"(SELECT {columns} FROM __rows)"

    def first(self, condition: str, *shown: str, join: str = "") -> list[tuple[str, Any]]:
        """(place, value) of the first rows where ``condition`` holds; a tuple of values when
        several expressions are ``shown``."""
        names = [f"__shown{i}" for i in range(len(shown))]
        found = self.source.query(
            "SELECT __file, __row, "
            + ", ".join(f"{expr} AS {name}" for expr, name in zip(shown, names))
            + f" FROM {self.rows} {join} WHERE {condition} ORDER BY __file, __row "
            f"LIMIT {_SHOW_ROWS}")
        offsets = self._csv_offsets() if self.source.kind == "csv" and \
            self.source.multi_file else {}
        values = list(zip(*(found[name].astype(object) for name in names)))
        return [(self.source.where(file, int(row) - offsets.get(file, 0)),
                 value if len(value) > 1 else value[0])
                for file, row, value in zip(found["__file"], found["__row"], values)]

    def _csv_offsets(self) -> dict[str, int]:
        """Row number of each CSV file's first row in the scan of a glob."""
        table = self.source.query(f"SELECT __file, min(__row) AS first FROM {self.rows} "
                                  "GROUP BY __file")
        return dict(zip(table["__file"], table["first"].astype(int)))

    def raise_rows(self, condition: str, shown: str, name: str, n_rows: int, problem: str,
                   fix: str) -> None:
        error = rows_error(name, problem, n_rows, self.first(condition, shown), fix)
        raise DataError(f"{self.source.name}: {error}")

    def check_duplicates(self, entity_col: str, window_col: str) -> None:
        """Exact check: no (entity, window) pair on more than one row."""
        repeated = (f"(SELECT __key, __window FROM {self.plain} GROUP BY ALL "
                    "HAVING count(*) > 1)")
        n_rows = self.source.query(
            f"SELECT coalesce(sum(n), 0) AS n FROM (SELECT count(*) AS n FROM {self.plain} "
            "GROUP BY __key, __window HAVING count(*) > 1)")["n"].iloc[0]
        if not n_rows:
            return
        pairs = self.first("true", label_sql("__key"), "__window",
                           join=f"SEMI JOIN {repeated} AS d USING (__key, __window)")
        error = duplicate_windows_error(entity_col, window_col, int(n_rows), pairs)
        raise DataError(f"{self.source.name}: {error}")
