"""`CountData` from a pandas DataFrame of rows (`from_dataframe`) or from per-entity aggregates
(`from_aggregates`, checked against the count histogram).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ratepool.data.counts import CountData, _aggregate
from ratepool.data.covariates import encode_covariates
from ratepool.data.labels import factorize_labels, label_order
from ratepool.data.validate import (
    MISSING_LABELS,
    NO_ROWS,
    Location,
    _check_duplicate_windows,
    _check_model_needs,
    _raise_rows,
    _require_columns,
    index_location,
    reject_missing_windows,
    validate_counts,
    validate_exposure,
)
from ratepool.errors import DataError


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
        one-hot encoded against a reference level); see `ratepool.data.covariates`.
    where : callable, optional
        Names the place of a row (given its index label) in error messages; by default
        "index <label>". File readers pass one that names the line of the file.
    bytes_col : str, optional
        Column with the bytes each window moved: non-negative, 0 exactly where the count is 0
        (`ratepool.data.bytes.validate_bytes`). Adds the bytes factor to the model.

    Returns
    -------
    CountData
        Labels keep the frame's type and are ordered by `ratepool.data.labels.label_order`.

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
        from ratepool.data.bytes import validate_bytes

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
