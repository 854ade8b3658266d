"""`from_dask`: sufficient statistics of a Dask DataFrame, computed on the Dask cluster.

The checks, the per-entity windows and totals, the count histogram and the duplicate-window
group-by are computed in one ``dask.compute`` call (one read of the data) on whatever scheduler
is active — a ``dask.distributed`` ``Client`` if one is connected. Only O(J + K) numbers (and,
for an error, a few example rows) come back; see `ratepool.data.cluster_source` for the contract.
Dask is imported when `from_dask` is called (the optional extra ``ratepool[dask]``).
"""

from __future__ import annotations

import functools
import logging
import operator
from typing import Any

import numpy as np

from ratepool.data import cluster_source as contract
from ratepool.data.counts import MAX_STAN_INT, CountData
from ratepool.errors import DataError

__all__ = ["from_dask"]

log = logging.getLogger(__name__)


def from_dask(
    ddf: Any,
    *,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    allow_duplicate_windows: bool = False,
) -> CountData:
    """Aggregate the rows of a Dask DataFrame on the cluster into `CountData`.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        One row per entity and window, e.g. ``dd.read_parquet("s3://bucket/events/")``.
    entity_col, count_col, window_col, allow_duplicate_windows
        As in `ratepool.from_dataframe`. The count column must have an integer or float
        type (floats holding whole numbers). ``allow_duplicate_windows=True`` also skips the
        group-by on (entity, window).

    Returns
    -------
    CountData
        The same labels, windows, totals and histogram as
        ``from_dataframe(ddf.compute(), ...)``, without the raw rows (``has_rows`` is False):
        fit it with the default ``likelihood="sufficient"`` and ``obs_predictions=False``.

    Raises
    ------
    DataError
        With the wording of `from_dataframe`: a missing column, a count column that is not
        numeric, missing labels or windows, missing/infinite/negative/fractional counts or
        counts above 2^31 - 1 (with the number of such rows and up to five example rows),
        repeated (entity, window) pairs, no rows, a single entity.
    MissingDependencyError
        If dask is not installed (``pip install 'ratepool[dask]'``).
    """
    try:
        import dask
        import dask.dataframe as dd
    except ImportError as error:
        raise contract.missing_extra("dask", error) from None
    if not isinstance(ddf, dd.DataFrame):
        raise DataError(
            f"from_dask needs a dask.dataframe.DataFrame, got {type(ddf).__name__}; for a "
            "pandas DataFrame use ratepool.from_dataframe"
        )
    columns = contract.Columns(entity_col, count_col, window_col)
    contract.require_columns(ddf.columns, columns)
    dtype = ddf.dtypes[count_col]
    kind = contract.count_kind(count_col, None if dtype == object else dtype, str(dtype),
                      cast_hint=f"ddf[{count_col!r}] = ddf[{count_col!r}].astype('int64')")
    checks = contract.checks_for(kind, columns)
    masks = {check.key: _failing(ddf, columns, check.key).fillna(False) for check in checks}
    count_masks = [masks[check.key] for check in checks if check.role == "count"]
    bad_count = functools.reduce(operator.or_, count_masks)
    # Bad rows are zeroed only so that the cast cannot fail; their presence raises below.
    y = ddf[count_col].where(~bad_count, 0).astype("int64").rename("__y")
    frame = ddf[[entity_col]].assign(__y=y)
    graph: dict[str, Any] = {
        "failing": {key: mask.sum() for key, mask in masks.items()},
        "entities": frame.groupby(entity_col, sort=False)["__y"].agg(["size", "sum"]),
        "histogram": y.value_counts(),
    }
    check_pairs = window_col is not None and not allow_duplicate_windows
    if check_pairs:
        sizes = ddf.groupby([entity_col, window_col], sort=False).size(split_out=True)
        repeated = sizes[sizes > 1]
        graph["repeated_rows"] = repeated.sum()
        graph["repeated_pairs"] = repeated.head(contract.SHOW_ROWS, npartitions=-1,
                                                compute=False)
    elif window_col is not None:
        log.info("repeated (%s, %s) pairs are not checked (allow_duplicate_windows)",
                 entity_col, window_col)
    (result,) = dask.compute(graph)

    failed = contract.first_failure(checks, result["failing"])
    if failed is not None:
        check, n_rows = failed
        examples = ddf.loc[masks[check.key], columns.names].head(contract.SHOW_ROWS,
                                                                 npartitions=-1)
        raise contract.row_check_error(check, columns, n_rows, examples)
    if check_pairs and int(result["repeated_rows"]):
        pairs = result["repeated_pairs"].rename("__rows").reset_index()
        raise contract.duplicate_error(columns, int(result["repeated_rows"]), pairs)
    entities = result["entities"].reset_index()
    histogram = result["histogram"].reset_index()
    return contract.finish(entities, histogram, columns, source="a Dask DataFrame")


def _failing(ddf: Any, columns: contract.Columns, key: str) -> Any:
    """The Dask boolean Series of rows failing the check ``key``."""
    if key == "label_missing":
        return ddf[columns.entity].isna()
    if key == "window_missing":
        return ddf[columns.of("window")].isna()
    count = ddf[columns.count]
    return {
        "count_missing": lambda: count.isna(),
        "count_infinite": lambda: count.abs() == np.inf,
        "count_negative": lambda: count < 0,
        "count_fraction": lambda: count % 1 != 0,
        "count_too_large": lambda: count > MAX_STAN_INT,
    }[key]()
