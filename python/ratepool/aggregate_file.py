"""Aggregate a CSV or Parquet file larger than memory into `CountData`, chunk by chunk.

The file is streamed (pandas ``read_csv(chunksize=...)`` reading only the needed columns, or
pyarrow ``ParquetFile.iter_batches``); each chunk is validated with the same rules as
`ratepool.data.from_dataframe` and folded into per-entity windows and totals (exact int64)
and the global count histogram. Memory is O(J + K) plus one chunk — plus 8 bytes per row when
duplicate (entity, window) pairs are checked (see `aggregate_file`). The raw rows are not kept,
so the result supports the sufficient-statistics likelihood with entity-level predictions
(``likelihood="sufficient"``, ``obs_predictions=False``), like `ratepool.from_aggregates`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .data import (
    CountData,
    _exact_bincount,
    _reject_missing_labels,
    _require_columns,
    count_histogram,
    from_aggregates,
    reject_missing_windows,
    validate_counts,
)
from .errors import DataError

__all__ = ["DEFAULT_CHUNKSIZE", "aggregate_file"]

log = logging.getLogger(__name__)

#: Rows per chunk: about 100 MB of pandas memory for typical (label, count) rows.
DEFAULT_CHUNKSIZE = 1_000_000
_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".txt", ".gz")


def aggregate_file(
    path: str | Path,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    *,
    chunksize: int = DEFAULT_CHUNKSIZE,
    allow_duplicate_windows: bool = False,
    check_windows: bool = True,
) -> CountData:
    """Stream a CSV or Parquet file into per-entity sufficient statistics and a count histogram.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.csv`` (optionally ``.gz``) or ``.parquet`` file, one row per entity-window.
    entity_col, count_col : str
        Column names of the entity label and the event count.
    window_col : str, optional
        Column naming the window. With ``check_windows`` (the default) a repeated
        (entity, window) pair is an error unless ``allow_duplicate_windows`` is true.
    chunksize : int
        Rows read and validated at a time; peak memory grows with it.
    allow_duplicate_windows : bool
        Accept repeated (entity, window) pairs (each row counts as its own window).
    check_windows : bool
        Whether to look for repeated (entity, window) pairs. This is the one check that cannot
        run in O(J) memory: it keeps a 64-bit hash of each row's pair (8 bytes per row, plus
        8 more during the final sort), so 10 million rows cost about 160 MB at the end. Two
        different pairs share a hash with probability below N^2 / 2^65 (about 3e-6 for
        N = 1e7); the offending rows are named so that a report can be checked. Set it to
        false to keep memory at O(J + K) plus one chunk; duplicates then go undetected.

    Returns
    -------
    CountData
        Built with `ratepool.from_aggregates`, hence without raw rows (``has_rows`` is False).
        Labels, windows, totals and histogram equal those of
        ``from_dataframe(read_table(path))`` on the same file.

    Raises
    ------
    DataError
        For a missing file or column, an unreadable file, or bad values. Row numbers in the
        message count data rows from 0 (header excluded), as ``from_dataframe`` on the whole
        file would report them; for a CSV the line in the file is that number + 2.

    Notes
    -----
    CSV entity labels are read as text in every chunk (so that a chunk cannot guess a
    different type than another) and converted to numbers at the end if every label is
    numeric — the type pandas would infer when reading the whole column at once.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise DataError(f"chunksize must be a positive integer, got {chunksize!r}")
    columns = [entity_col, count_col] + ([window_col] if window_col else [])
    check = window_col is not None and check_windows and not allow_duplicate_windows
    if window_col is not None and not check:
        log.info("repeated (%s, %s) pairs are not checked in %s", entity_col, window_col, path)

    state = _Accumulator()
    hashes: list[np.ndarray] = []
    try:
        for chunk in _chunks(path, columns, chunksize):
            state.add(chunk, entity_col, count_col)
            if window_col is not None:  # as from_dataframe: every row names its window
                reject_missing_windows(chunk[window_col], window_col)
            if check:
                hashes.append(pd.util.hash_pandas_object(
                    chunk[[entity_col, window_col]], index=False).to_numpy())
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    if state.rows == 0:
        raise DataError(f"data file {path} has no rows; give at least one row per entity")
    if check:
        _check_hashed_windows(hashes, entity_col, window_col, path)
    log.info("aggregated %d rows of %s into %d entities and %d distinct counts", state.rows,
             path, len(state.labels), len(state.hist_value))
    entities, histogram = state.tables(numeric_labels=path.suffix.lower() not in _PARQUET)
    return from_aggregates(entities, histogram)


class _Accumulator:
    """Running per-entity windows/totals (int64) and global count histogram."""

    def __init__(self) -> None:
        self.labels = pd.Index([])
        self.n_windows = np.zeros(0, dtype=np.int64)
        self.totals = np.zeros(0, dtype=np.int64)
        self.hist_value = np.zeros(0, dtype=np.int64)
        self.hist_freq = np.zeros(0, dtype=np.int64)
        self.rows = 0

    def add(self, chunk: pd.DataFrame, entity_col: str, count_col: str) -> None:
        _reject_missing_labels(chunk[entity_col], entity_col)
        y = validate_counts(chunk[count_col], count_col)
        codes, uniques = pd.factorize(chunk[entity_col], sort=False)
        uniques = pd.Index(np.asarray(uniques))
        position = self.labels.get_indexer(uniques) if len(self.labels) else np.full(
            len(uniques), -1)
        new = position < 0
        position[new] = len(self.labels) + np.arange(int(new.sum()))
        if new.any():
            self.labels = self.labels.append(uniques[new])
        size = len(self.labels)
        index = position[codes]
        self.n_windows = _grow(self.n_windows, size) + np.bincount(index, minlength=size)
        self.totals = _grow(self.totals, size) + _exact_bincount(index, y, size)
        value, freq = count_histogram(y)
        self.hist_value, self.hist_freq = _merge_histograms(
            self.hist_value, self.hist_freq, value, freq)
        self.rows += len(chunk)

    def tables(self, *, numeric_labels: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
        labels, n_windows, totals = self.labels, self.n_windows, self.totals
        if numeric_labels:
            labels, n_windows, totals = _numeric_labels(labels, n_windows, totals)
        entities = pd.DataFrame({"entity": labels, "n_windows": n_windows,
                                 "total_count": totals})
        histogram = pd.DataFrame({"value": self.hist_value, "frequency": self.hist_freq})
        return entities, histogram


def _chunks(path: Path, columns: Sequence[str], chunksize: int) -> Iterator[pd.DataFrame]:
    """Chunks of the file's ``columns``, each indexed by its 0-based data row numbers."""
    suffix = path.suffix.lower()
    if suffix in _PARQUET:
        yield from _parquet_chunks(path, columns, chunksize)
    elif suffix in _CSV:
        yield from _csv_chunks(path, columns, chunksize, count_col=columns[1])
    else:
        raise DataError(f"data file {path}: unknown format {suffix!r}; use .csv or .parquet")


def _csv_chunks(path: Path, columns: Sequence[str], chunksize: int,
                count_col: str) -> Iterator[pd.DataFrame]:
    header = pd.read_csv(path, nrows=0)
    _require_columns(header, columns)
    text = {name: str for name in columns if name != count_col}  # labels and windows as text
    try:
        reader = pd.read_csv(path, usecols=list(columns), dtype=text, chunksize=chunksize)
        with reader:
            yield from reader  # pandas numbers chunk rows consecutively from 0
    except (ValueError, pd.errors.ParserError) as error:
        raise DataError(f"could not read {path}: {error}") from None


def _parquet_chunks(path: Path, columns: Sequence[str],
                    chunksize: int) -> Iterator[pd.DataFrame]:
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise DataError(f"reading {path} needs pyarrow (pip install pyarrow): {error}") from None
    parquet = pq.ParquetFile(path)
    _require_columns(pd.DataFrame(columns=parquet.schema_arrow.names), columns)
    start = 0
    for batch in parquet.iter_batches(batch_size=chunksize, columns=list(columns)):
        chunk = batch.to_pandas()
        chunk.index = pd.RangeIndex(start, start + len(chunk))
        start += len(chunk)
        yield chunk


def _grow(values: np.ndarray, size: int) -> np.ndarray:
    if len(values) == size:
        return values
    return np.concatenate([values, np.zeros(size - len(values), dtype=values.dtype)])


def _merge_histograms(value_a: np.ndarray, freq_a: np.ndarray, value_b: np.ndarray,
                      freq_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The histogram of two histograms' union (exact int64 frequencies, sorted values)."""
    value, inverse = np.unique(np.concatenate([value_a, value_b]), return_inverse=True)
    freq = np.zeros(len(value), dtype=np.int64)
    np.add.at(freq, inverse, np.concatenate([freq_a, freq_b]))
    return value, freq


def _numeric_labels(labels: pd.Index, n_windows: np.ndarray,
                    totals: np.ndarray) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """Text labels as numbers when all are numeric ("7" and "07" then become one entity 7)."""
    numeric = pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce")
    if numeric.isna().any():
        return labels, n_windows, totals
    codes, uniques = pd.factorize(numeric, sort=False)
    merged_windows = np.zeros(len(uniques), dtype=np.int64)
    merged_totals = np.zeros(len(uniques), dtype=np.int64)
    np.add.at(merged_windows, codes, n_windows)
    np.add.at(merged_totals, codes, totals)
    return pd.Index(uniques), merged_windows, merged_totals


def _check_hashed_windows(hashes: list[np.ndarray], entity_col: str, window_col: str,
                          path: Path) -> None:
    """Raise `DataError` naming rows whose (entity, window) hashes repeat."""
    flat = np.concatenate(hashes)
    hashes.clear()
    order = np.argsort(flat, kind="stable")
    sorted_hashes = flat[order]
    repeat = np.flatnonzero(sorted_hashes[1:] == sorted_hashes[:-1])
    if repeat.size == 0:
        return
    rows = np.unique(np.concatenate([order[repeat], order[repeat + 1]]))
    shown = ", ".join(f"row {row}" for row in rows[:5])
    raise DataError(
        f"{path}: {rows.size} rows repeat an ({entity_col!r}, {window_col!r}) pair, e.g. "
        f"{shown} (0-based data rows). Sum them per window first, or pass "
        "allow_duplicate_windows=True if each row really is a separate window"
    )
