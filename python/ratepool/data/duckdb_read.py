"""Reading CSV / Parquet files (and globs) and DuckDB queries through DuckDB: a private
connection with a memory limit and a spill directory, the rows as a relation (`Source`), and
`read_rows`, the raw rows for `ratepool.load_counts`.

`read_rows` and `ratepool.aggregate_file` (`ratepool.data.duckdb_source`) read a file through
the same reader, so that it gives the same labels and the same messages on both paths. Labels
follow `ratepool.data.labels`: text exactly as written.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ratepool.data.labels import label_sql, quote_identifier, sql_string
from ratepool.data.validate import Location, require_columns
from ratepool.errors import DataError

__all__ = ["DEFAULT_MEMORY_LIMIT", "FILE_COLUMN", "Source", "connection", "file_source",
           "read_rows", "require", "retry_as_text"]

log = logging.getLogger(__name__)

#: DuckDB's memory limit for the files ratepool opens; beyond it DuckDB spills to disk.
DEFAULT_MEMORY_LIMIT = "1GB"
_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".txt", ".gz")
#: The column naming each row's file (for globs).
FILE_COLUMN = "__ratepool_file"
_FILE = FILE_COLUMN


class LateCsvValue(Exception):
    """A CSV value past DuckDB's type-sniffing sample does not fit the sniffed type."""


@dataclass(frozen=True)
class Source:
    """Rows to read: a DuckDB relation, what it is, and how to name a row's place."""

    relation: Any  # duckdb.DuckDBPyRelation
    kind: str  # "csv", "parquet" or "query"
    name: str
    multi_file: bool

    def type_of(self, column: str) -> str:
        """DuckDB's type of ``column``, lower case (e.g. "bigint", "varchar")."""
        return str(self.relation.types[self.relation.columns.index(column)].id)

    def query(self, sql: str) -> pd.DataFrame:
        """Run ``sql`` over the rows (the view ``__rows``); DuckDB errors become DataError."""
        import duckdb

        try:
            return self.relation.query("__rows", sql).df()
        except duckdb.ConversionException as error:
            if self.kind == "csv":
                raise LateCsvValue(str(error)) from None
            raise DataError(f"could not read {self.name}: {error}") from None
        except duckdb.Error as error:
            raise DataError(f"could not read {self.name}: {error}") from None

    def where(self, file: Any, row: int) -> str:
        """A row's place: CSV line (header = line 1) or 1-based row, with the file for globs."""
        place = f"line {row + 2}" if self.kind == "csv" else f"row {row + 1}"
        return f"{file} {place}" if self.multi_file else place


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
    with connection(DEFAULT_MEMORY_LIMIT, None, None) as con:
        def run(text_columns: Sequence[str]) -> tuple[Source, pd.DataFrame]:
            source = file_source(con, path, columns, entity_col=entity_col,
                                 window_col=window_col, text_columns=text_columns)
            wanted = list(columns) if columns else [c for c in source.relation.columns
                                                    if c not in (_FILE, "file_row_number")]
            select = ", ".join(f"{label_sql(c)} AS {quote_identifier(c)}" if c == entity_col
                               else quote_identifier(c) for c in wanted)
            if source.multi_file:
                select += f", {quote_identifier(_FILE)}"
            return source, source.query(f"SELECT {select} FROM __rows")

        source, frame = retry_as_text(run, list(columns or []))
    if not source.multi_file:
        return frame, lambda index: source.where(None, int(index))
    files = frame.pop(_FILE).to_numpy()
    row = frame.groupby(pd.Series(files, index=frame.index), sort=False).cumcount().to_numpy()
    return frame, lambda index: source.where(files[index], int(row[index]))


@contextmanager
def connection(memory_limit: str, temp_directory: str | Path | None,
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


def retry_as_text(run: Any, columns: Sequence[str]) -> Any:
    """``run(())``; if a CSV value beyond DuckDB's sniffing sample does not fit the sniffed
    type (e.g. "x" at line 50,000 of a count column), ``run(columns)`` reads those columns as
    text so that ratepool's checks name the line and the value."""
    try:
        return run(())
    except LateCsvValue as error:
        log.info("re-reading %s as text after %s", columns, str(error).splitlines()[0])
        return run(columns)


def file_source(con: Any, path: str | Path, columns: Sequence[str] | None, *,
                 entity_col: str | None, window_col: str | None,
                 text_columns: Sequence[str] = ()) -> Source:
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
            require(header, columns or [], f"data file {text}")
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
    require(list(relation.columns), columns or [], f"data file {text}")
    return Source(relation, kind, text, multi_file=is_glob and files > 1)


def require(available: Sequence[str], columns: Sequence[str], what: str) -> None:
    """Raise `DataError` naming the ``columns`` missing from ``available`` (the columns
    ratepool adds to a file's rows are not shown)."""
    require_columns([c for c in available if c not in (_FILE, "file_row_number")], columns,
                    what)
