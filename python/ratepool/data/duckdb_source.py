"""CSV / Parquet files (and globs) and DuckDB queries into `CountData`, through DuckDB.

`aggregate_file` and `from_duckdb` never load the rows into Python: one DuckDB query groups
them by entity and by count value at once (``GROUPING SETS``), in parallel and out of core,
giving the per-entity windows, zero windows and totals (exact integers) and the count
histogram; with an exposure column a second query groups the windows by (entity, exposure)
(`ratepool.data.counts.WindowGroups`: what exposure and zero-inflation need), and covariates
are read once per entity. The duplicate-(entity, window) check is an exact ``GROUP BY entity,
window HAVING count(*) > 1``. Only when a check fails is the source scanned again, to name the
first offending rows (`ratepool.data.duckdb_locate`): the line of a CSV file (header = line 1),
the 1-based row of a Parquet file (prefixed by the file name for a glob), or the 1-based row of
a query's result.

Memory: for the files it opens, ratepool sets DuckDB's ``memory_limit`` (default
`DEFAULT_MEMORY_LIMIT`, 1 GB) and a fresh ``temp_directory`` (deleted afterwards), so the
duplicate check over 10^8 distinct (entity, window) pairs spills to disk instead of growing;
Python holds O(G + K) (G = (entity, exposure) groups, J without exposure). `from_duckdb` runs
on the caller's connection with its settings. The rows themselves are read by
`ratepool.data.duckdb_read.read_rows` (`ratepool.load_counts`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratepool.data.counts import CountData, WindowGroups
from ratepool.data.covariates import encode_covariates
from ratepool.data.duckdb_locate import Locator
from ratepool.data.duckdb_read import (
    DEFAULT_MEMORY_LIMIT,
    Source,
    connection,
    file_source,
    read_rows,
    require,
    retry_as_text,
)
from ratepool.data.frame import from_aggregates
from ratepool.data.labels import factorize_labels, label_sql, quote_identifier
from ratepool.data.validate import (
    BAD_EXPOSURES,
    BOOLEAN_COUNTS,
    BOOLEAN_EXPOSURES,
    COUNT_CHECKS,
    MISSING_EXPOSURES,
    MISSING_LABELS,
    MISSING_WINDOWS,
    TEXT_COUNTS,
    TEXT_EXPOSURES,
)
from ratepool.errors import DataError

__all__ = ["DEFAULT_MEMORY_LIMIT", "aggregate_file", "from_duckdb", "read_rows"]

log = logging.getLogger(__name__)

_INTEGER = {"tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint",
            "uinteger", "ubigint", "uhugeint"}
_FLOAT = {"float", "double", "decimal"}


@dataclasses.dataclass(frozen=True)
class _Columns:
    """The columns to aggregate and what to check."""

    entity: str
    count: str
    window: str | None = None
    exposure: str | None = None
    covariates: tuple[str, ...] = ()
    check_duplicates: bool = False

    @property
    def names(self) -> list[str]:
        return ([self.entity, self.count] + ([self.window] if self.window else [])
                + ([self.exposure] if self.exposure else []) + list(self.covariates))


def aggregate_file(
    path: str | Path,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    *,
    allow_duplicate_windows: bool = False,
    check_windows: bool = True,
    exposure_col: str | None = None,
    covariates: Sequence[str] | None = None,
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
    exposure_col : str, optional
        Column with each window's exposure (positive numbers): the windows are grouped by
        (entity, exposure) in DuckDB, which is all the model with exposure needs.
    covariates : sequence of str, optional
        Entity covariate columns (constant within an entity), read once per entity and encoded
        as `ratepool.load_counts` encodes them.
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
        Without raw rows (``has_rows`` is False) but with the windows grouped by entity (and
        exposure): the Stan data of every option but the per-row ones (per-observation
        likelihood and predictions, bytes, the temporal model) equal those of
        ``load_counts(path)``, as do the labels (text, `ratepool.data.labels`), windows,
        totals, zero windows and histogram.

    Raises
    ------
    DataError
        For a missing file or column, an unreadable file, or bad values (naming the line).
    """
    columns = _Columns(entity_col, count_col, window_col, exposure_col,
                       tuple(covariates or ()), check_duplicates=window_col is not None
                       and check_windows and not allow_duplicate_windows)
    with connection(memory_limit, temp_directory, threads) as con:
        def run(text_columns: Sequence[str]) -> CountData:
            source = file_source(con, path, columns.names, entity_col=entity_col,
                                 window_col=window_col, text_columns=text_columns)
            return _aggregate(source, columns)

        return retry_as_text(run, [count_col] + ([exposure_col] if exposure_col else []))


def from_duckdb(
    con: Any,
    query: Any,
    *,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    allow_duplicate_windows: bool = False,
    check_windows: bool = True,
    exposure_col: str | None = None,
    covariates: Sequence[str] | None = None,
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
    entity_col, count_col, window_col, allow_duplicate_windows, check_windows, exposure_col, \
covariates
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
    columns = _Columns(entity_col, count_col, window_col, exposure_col,
                       tuple(covariates or ()), check_duplicates=window_col is not None
                       and check_windows and not allow_duplicate_windows)
    require(list(relation.columns), columns.names, "the query")
    return _aggregate(Source(relation, "query", "the query", multi_file=False), columns)


def _numeric(source: Source, column: str, what: str, boolean: str) -> str:
    """SQL for ``column`` as a number (NULL where text is not one)."""
    kind = source.type_of(column)
    if kind == "boolean":
        raise DataError(f"{source.name}: {what} {column!r} {boolean}")
    if kind in _INTEGER:
        return quote_identifier(column)
    if kind in _FLOAT or kind == "varchar":
        return f"TRY_CAST({quote_identifier(column)} AS DOUBLE)"
    raise DataError(f"{source.name}: column {column!r} has type {kind.upper()}; it must hold "
                    "numbers (name the right column, or convert it)")


def _aggregate(source: Source, spec: _Columns) -> CountData:
    """One grouping pass to the sufficient statistics; rows are located only on failure."""
    entity_col, count_col, window_col = spec.entity, spec.count, spec.window
    entity, count = quote_identifier(entity_col), quote_identifier(count_col)
    value = _numeric(source, count_col, "column", BOOLEAN_COUNTS)
    # Integers and text group as they are (their text is distinct exactly when they are);
    # other types group by their text.
    key = entity if source.type_of(entity_col) in _INTEGER | {"varchar"} \
        else label_sql(entity_col)
    window = quote_identifier(window_col) if window_col else "NULL"
    exposure = (_numeric(source, spec.exposure, "exposure column", BOOLEAN_EXPOSURES)
                if spec.exposure else "1")
    columns = (f"{key} AS __key, {value} AS __value, {window} AS __window, "
               f"CAST({exposure} AS DOUBLE) AS __exposure")
    table = source.query(
        f"SELECT grouping(__key) AS by_value, {label_sql('__key')} AS label, __value, "
        "count(*) AS n, TRY_CAST(sum(TRY_CAST(__value AS BIGINT)) AS BIGINT) AS total, "
        "count(*) FILTER (WHERE __value = 0) AS zeros, "
        "count(*) FILTER (WHERE __window IS NULL) AS no_window "
        f"FROM (SELECT {columns} FROM __rows) GROUP BY GROUPING SETS ((__key), (__value))")
    entities = table[table["by_value"] == 0]
    histogram = table[table["by_value"] == 1]
    if int(entities["n"].sum()) == 0:
        raise DataError(f"{source.name} has no rows; give at least one row per entity")
    locate = Locator(source, columns)
    missing = entities["label"].isna().to_numpy()
    if missing.any():
        locate.raise_rows(f"{label_sql('__key')} IS NULL", entity, entity_col,
                          int(entities["n"][missing].sum()), *MISSING_LABELS)
    if source.type_of(count_col) == "varchar":
        _raise_if_any(locate, [(f"{count} IS NOT NULL AND __value IS NULL", count, count_col,
                                TEXT_COUNTS)])
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
    if spec.exposure:
        _check_exposure(locate, spec.exposure)
    if spec.check_duplicates:
        locate.check_duplicates(entity_col, window_col)
    log.info("aggregated %d rows of %s into %d entities and %d distinct counts",
             int(entities["n"].sum()), source.name, len(entities), len(histogram))
    data = from_aggregates(
        pd.DataFrame({"entity": entities["label"].to_numpy(dtype=object),
                      "n_windows": entities["n"].to_numpy(dtype=np.int64),
                      "total_count": entities["total"].to_numpy(dtype=np.int64)}),
        pd.DataFrame({"value": values.astype(np.int64), "frequency": freq}))
    groups = (_exposure_groups(source, columns, data.labels) if spec.exposure
              else _entity_groups(entities, data.labels))
    covariates = (_entity_covariates(source, columns, spec, data.labels)
                  if spec.covariates else None)
    return dataclasses.replace(data, groups=groups, exposure_col=spec.exposure,
                               covariates=covariates)


def _raise_if_any(locate: Locator, checks: Sequence[tuple[str, str, str, tuple[str, str]]],
                  ) -> None:
    """One pass counting the rows of each (condition, shown, name, message); the first
    condition some rows meet names them."""
    counts = locate.source.query(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE {condition}) AS __c{i}"
                              for i, (condition, *_) in enumerate(checks))
        + f" FROM {locate.unnumbered}").iloc[0]
    for i, (condition, shown, name, message) in enumerate(checks):
        if int(counts[f"__c{i}"]):
            locate.raise_rows(condition, shown, name, int(counts[f"__c{i}"]), *message)


def _check_exposure(locate: Locator, exposure_col: str) -> None:
    """The checks of `ratepool.data.validate.validate_exposure`, in SQL."""
    shown = quote_identifier(exposure_col)
    _raise_if_any(locate, [
        (f"{shown} IS NULL", shown, exposure_col, MISSING_EXPOSURES),
        ("__exposure IS NULL OR isnan(__exposure)", shown, exposure_col, TEXT_EXPOSURES),
        ("NOT (isfinite(__exposure) AND __exposure > 0)", shown, exposure_col, BAD_EXPOSURES)])


def _ordered(labels: pd.Index, group_labels: pd.Series, exposure: np.ndarray | None,
             windows: Any, zeros: Any, total: Any) -> WindowGroups:
    """Groups in `WindowGroups` order (entity index, then exposure)."""
    entity = labels.get_indexer(group_labels.to_numpy(dtype=object)).astype(np.int64)
    order = np.lexsort((exposure, entity)) if exposure is not None else np.argsort(entity)
    return WindowGroups(
        entity=entity[order], exposure=exposure[order] if exposure is not None else None,
        windows=np.asarray(windows, dtype=np.int64)[order],
        zeros=np.asarray(zeros, dtype=np.int64)[order],
        total=np.asarray(total, dtype=np.int64)[order])


def _entity_groups(entities: pd.DataFrame, labels: pd.Index) -> WindowGroups:
    """Without exposure the groups are the entities."""
    return _ordered(labels, entities["label"], None, entities["n"], entities["zeros"],
                    entities["total"])


def _exposure_groups(source: Source, columns: str, labels: pd.Index) -> WindowGroups:
    """The windows grouped by (entity, exposure): one more DuckDB pass, O(G) out."""
    table = source.query(
        f"SELECT {label_sql('__key')} AS label, __exposure, count(*) AS n, "
        "count(*) FILTER (WHERE __value = 0) AS zeros, "
        "CAST(sum(CAST(__value AS BIGINT)) AS BIGINT) AS total "
        f"FROM (SELECT {columns} FROM __rows) GROUP BY __key, __exposure")
    return _ordered(labels, table["label"], table["__exposure"].to_numpy(dtype=float),
                    table["n"], table["zeros"], table["total"])


def _entity_covariates(source: Source, columns: str, spec: _Columns, labels: pd.Index) -> Any:
    """Covariates read once per entity; if one is missing or varies within an entity, the
    rows' own check (`ratepool.data.covariates.encode_covariates`) names it."""
    names = [quote_identifier(c) for c in spec.covariates]
    checks = ", ".join(f"count(DISTINCT {c}) AS __d{i}, count(*) FILTER (WHERE {c} IS NULL) "
                       f"AS __m{i}, any_value({c}) AS {c}" for i, c in enumerate(names))
    table = source.query(f"SELECT {label_sql('__key')} AS label, {checks} "
                         f"FROM (SELECT *, {columns} FROM __rows) GROUP BY __key")
    flags = table[[f"__{k}{i}" for i in range(len(names)) for k in "dm"]].to_numpy()
    varying = (flags[:, 0::2] > 1).any() or (flags[:, 1::2] > 0).any()
    if varying:  # the rows' own check names the entity or the row
        rows = source.query(f"SELECT {label_sql(spec.entity)} AS {quote_identifier(spec.entity)},"
                            f" {', '.join(names)} FROM __rows")
        codes, row_labels = factorize_labels(rows[spec.entity])
        encode_covariates(rows, spec.covariates, spec.entity, codes, row_labels,
                          where=lambda index: source.where(None, int(index)))
    per_entity = table.set_index("label").loc[np.asarray(labels, dtype=object),
                                              list(spec.covariates)].reset_index(drop=True)
    per_entity[spec.entity] = np.asarray(labels, dtype=object)
    return encode_covariates(per_entity, spec.covariates, spec.entity,
                             np.arange(len(labels)), labels)
