"""Naming the rows where a check failed, for `ratepool.data.duckdb_source`: the first rows
in file order (CSV line, Parquet row, query row), found by scanning the source again; the
exact duplicate-(entity, window) check."""

from __future__ import annotations

from typing import Any

from ratepool.data.duckdb_read import FILE_COLUMN, Source
from ratepool.data.labels import label_sql, quote_identifier
from ratepool.data.validate import duplicate_windows_error, rows_error
from ratepool.errors import DataError

__all__ = ["Locator"]

_SHOW_ROWS = 5
_FILE = FILE_COLUMN


class Locator:
    """Finds the first rows (in file order) where a condition holds, with their places."""

    def __init__(self, source: Source, columns: str) -> None:
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
        #: the source's columns and ``columns``, without the row numbers
        self.unnumbered = f"(SELECT *, {columns} FROM __rows)"

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
