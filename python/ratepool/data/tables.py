"""`CountData` from a CSV or Parquet file (`load_counts`, read through DuckDB by `read_table`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from ratepool.data.counts import CountData
from ratepool.data.frame import from_dataframe
from ratepool.errors import DataError


def read_table(
    path: str | Path,
    columns: Sequence[str] | None = None,
    *,
    entity_col: str | None = None,
    window_col: str | None = None,
) -> pd.DataFrame:
    """The rows of a CSV or Parquet file (or glob), read through DuckDB in file order.

    ``entity_col`` is read as text labels (`ratepool.data.labels`); in a CSV, ``window_col`` is
    read as text too. The index is the 0-based data row; `ratepool.data.duckdb_read.read_rows`
    also gives the function that names a row's line in the file.
    """
    from ratepool.data.duckdb_read import read_rows

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

    Files are read through DuckDB (`ratepool.data.duckdb_read.read_rows`): entity labels as text
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
    from ratepool.data.duckdb_read import read_rows

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
