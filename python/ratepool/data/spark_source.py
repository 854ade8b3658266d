"""`from_spark`: sufficient statistics of a Spark DataFrame, computed by Spark.

Runs, on the session's cluster: one aggregation counting the rows that fail each check, an
exact group-by on (entity, window) when a window column is given, and two group-bys (per
entity; per count value). Each is a Spark job reading the input (cache the DataFrame first if
reading it is expensive). Only O(J + K) rows (and, for an error, a few example rows) come back
to the driver; see `ratepool.data.cluster_source` for the contract. PySpark is imported when
`from_spark` is called (the optional extra ``ratepool[spark]``).
"""

from __future__ import annotations

import logging
from typing import Any

from ratepool.data import cluster_source as contract
from ratepool.data.counts import MAX_STAN_INT, CountData
from ratepool.errors import DataError

__all__ = ["from_spark"]

log = logging.getLogger(__name__)


def from_spark(
    df: Any,
    *,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    allow_duplicate_windows: bool = False,
) -> CountData:
    """Aggregate the rows of a Spark DataFrame on the cluster into `CountData`.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One row per entity and window, e.g. ``spark.read.parquet("s3a://bucket/events/")``.
    entity_col, count_col, window_col, allow_duplicate_windows
        As in `ratepool.from_dataframe`. The count column must have an integral, floating
        or decimal type (non-integral types holding whole numbers).
        ``allow_duplicate_windows=True`` also skips the group-by on (entity, window).

    Returns
    -------
    CountData
        The same labels, windows, totals and histogram as
        ``from_dataframe(df.toPandas(), ...)``, without the raw rows (``has_rows`` is False):
        fit it with the default ``likelihood="sufficient"`` and ``obs_predictions=False``.

    Raises
    ------
    DataError
        With the wording of `from_dataframe`: a missing column, a count column that is not
        numeric, missing labels or windows (null, or NaN in a floating column),
        missing/infinite/negative/fractional counts or counts above 2^31 - 1 (with the number
        of such rows and up to five example rows), repeated (entity, window) pairs, no rows,
        a single entity.
    MissingDependencyError
        If pyspark is not installed (``pip install 'ratepool[spark]'``).
    """
    try:
        from pyspark.sql import DataFrame
        from pyspark.sql import functions as F
        from pyspark.sql import types as T
    except ImportError as error:
        raise contract.missing_extra("spark", error) from None
    if not isinstance(df, DataFrame):
        raise DataError(
            f"from_spark needs a pyspark.sql.DataFrame, got {type(df).__name__}; for a "
            "pandas DataFrame use ratepool.from_dataframe"
        )
    columns = contract.Columns(entity_col, count_col, window_col)
    contract.require_columns(df.columns, columns)
    count_type = df.schema[count_col].dataType
    kind = contract.count_kind(count_col, _pandas_dtype(count_type, T), count_type.simpleString(),
                      cast_hint=f"df.withColumn({count_col!r}, F.col({count_col!r}).cast('long'))")

    def col(name: str) -> Any:
        return F.col("`" + name.replace("`", "``") + "`")

    def missing(name: str) -> Any:
        if isinstance(df.schema[name].dataType, (T.FloatType, T.DoubleType)):
            return col(name).isNull() | F.isnan(col(name))  # pandas reads NaN as missing
        return col(name).isNull()

    count = col(count_col).cast("double") if kind == "float" else col(count_col)
    conditions = {
        "label_missing": lambda: missing(entity_col),
        "count_missing": lambda: missing(count_col),
        "count_infinite": lambda: F.abs(count) == float("inf"),
        "count_negative": lambda: count < 0,
        "count_fraction": lambda: count % 1 != 0,
        "count_too_large": lambda: count > MAX_STAN_INT,
        "window_missing": lambda: missing(columns.of("window")),
    }
    checks = contract.checks_for(kind, columns)
    failing = {check.key: conditions[check.key]() for check in checks}
    tally = df.agg(*[F.sum(F.when(condition, 1).otherwise(0)).alias(key)
                     for key, condition in failing.items()]).first().asDict()
    failed = contract.first_failure(checks, tally)
    if failed is not None:
        check, n_rows = failed
        examples = (df.filter(failing[check.key]).select(*[col(n) for n in columns.names])
                    .limit(contract.SHOW_ROWS).toPandas())
        raise contract.row_check_error(check, columns, n_rows, examples)

    rows = F.count(F.lit(1))
    if window_col is not None and not allow_duplicate_windows:
        repeated = (df.groupBy(col(entity_col), col(window_col)).agg(rows.alias("__rows"))
                    .filter(F.col("__rows") > 1))
        n_repeated = repeated.agg(F.sum("__rows")).first()[0]
        if n_repeated:
            raise contract.duplicate_error(columns, int(n_repeated),
                                  repeated.limit(contract.SHOW_ROWS).toPandas())
    elif window_col is not None:
        log.info("repeated (%s, %s) pairs are not checked (allow_duplicate_windows)",
                 entity_col, window_col)

    y = col(count_col).cast("long")
    entities = (df.groupBy(col(entity_col))
                .agg(rows.alias("n_windows"), F.sum(y).alias("total_count")).toPandas())
    histogram = df.groupBy(y.alias("value")).agg(rows.alias("frequency")).toPandas()
    return contract.finish(entities, histogram, columns, source="a Spark DataFrame")


def _pandas_dtype(spark_type: Any, T: Any) -> str | None:
    """The pandas dtype a Spark count column is checked as (None: not numeric)."""
    if isinstance(spark_type, T.BooleanType):
        return "bool"
    if isinstance(spark_type, T.IntegralType):
        return "int64"
    if isinstance(spark_type, (T.FloatType, T.DoubleType, T.DecimalType)):
        return "float64"
    return None
