"""The bytes column (for the opt-in bytes factor, see `ratepool.model.event_bytes`): validated
against the counts before anything else runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ratepool.data.validate import Location, _raise_rows, index_location
from ratepool.errors import DataError


def validate_bytes(column: pd.Series, y: np.ndarray, name: str, *,
                   where: Location = index_location) -> np.ndarray:
    """The bytes of each row as float64, or `DataError` naming the first offending rows.

    Refused: text, booleans, missing, infinite or negative values; a window without events
    carrying bytes (bytes move with events); a window with events carrying 0 bytes (its bytes
    per event would be 0, whose log the model cannot take).
    """
    if pd.api.types.is_bool_dtype(column.dtype):
        raise DataError(f"bytes column {name!r} holds true/false values; give the bytes each "
                        "window moved (non-negative numbers)")
    _raise_rows(column, column.isna(), name, "has missing bytes",
                fix="give every window the bytes it moved (0 for a window without events), "
                    "or drop those rows", where=where)
    numeric = pd.to_numeric(column, errors="coerce")
    _raise_rows(column, numeric.isna(), name, "has bytes that are not numbers",
                fix="give non-negative numbers", where=where)
    values = numeric.to_numpy(dtype=float)
    _raise_rows(column, ~np.isfinite(values), name, "has infinite bytes",
                fix="give finite numbers", where=where)
    _raise_rows(column, values < 0, name, "has negative bytes",
                fix="bytes moved in a window cannot be negative", where=where)
    _raise_rows(column, (y == 0) & (values != 0), name,
                "has bytes in windows with no events (count 0)",
                fix="a window without events moves 0 bytes: check that the bytes and count "
                    "columns describe the same windows", where=where)
    _raise_rows(column, (y > 0) & (values == 0), name,
                "has 0 bytes in windows with events",
                fix="the model needs positive bytes per event where there are events (log "
                    "bytes per event); drop those windows or correct their bytes", where=where)
    return values
