"""`ratepool.from_spark` on a real local PySpark session (``local[2]``).

Reference: `from_dataframe` on the same pandas rows. The session is started once per module
(about 5 s) and stopped after. Its settings keep tiny jobs fast on 2 cores:
``spark.sql.shuffle.partitions=2`` (instead of 200 tasks per group-by),
``spark.default.parallelism=2``, ``spark.ui.enabled=false`` (no web UI thread and port) and
Arrow for ``createDataFrame``/``toPandas``.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.data.frame import from_dataframe
from ratepool.errors import DataError, MissingDependencyError

from . import cluster_cases as cases

pyspark_sql = pytest.importorskip("pyspark.sql", reason="pyspark is not installed (pip install "
                                  "'ratepool[spark]'); the Spark source's tests need it")
F = pyspark_sql.functions

# PySpark 4.x warns on pandas conversions that it does not yet fully support pandas 3.
pytestmark = [
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.mark.parametrize("build, kwargs", cases.DATASET_PARAMS)
def test_same_statistics_as_from_dataframe(spark, build, kwargs) -> None:
    frame = build()
    df = spark.createDataFrame(frame).repartition(3)
    data = ratepool.from_spark(df, **kwargs)
    cases.assert_same_statistics(data, frame, **kwargs)


@pytest.mark.parametrize("spark_type", ["int", "decimal(20,0)"])
def test_integer_and_decimal_count_columns(spark, spark_type) -> None:
    frame = cases.heterogeneous_counts()
    df = spark.createDataFrame(frame).withColumn("count", F.col("count").cast(spark_type))
    cases.assert_same_statistics(ratepool.from_spark(df), frame)


def test_parquet_files_read_by_spark(spark, tmp_path) -> None:
    frame = cases.string_labels()
    for part, rows in enumerate(np.array_split(np.arange(len(frame)), 4)):
        frame.iloc[rows].to_parquet(tmp_path / f"part-{part}.parquet", index=False)
    df = spark.read.parquet(str(tmp_path))
    cases.assert_same_statistics(ratepool.from_spark(df, window_col="window"), frame,
                           window_col="window")


@pytest.mark.parametrize("build, local_message, cluster_message", cases.BAD_ROW_PARAMS)
def test_bad_rows_are_refused_with_their_global_count(spark, build, local_message,
                                                      cluster_message) -> None:
    frame = build()
    with pytest.raises(DataError, match=local_message):  # same problem and count as here
        from_dataframe(frame, window_col="window")
    with pytest.raises(DataError, match=cluster_message):
        ratepool.from_spark(spark.createDataFrame(frame).repartition(3), window_col="window")


def test_repeated_windows_are_found_exactly(spark) -> None:
    frame = cases.with_repeated_windows()
    df = spark.createDataFrame(frame).repartition(3)
    with pytest.raises(DataError, match=cases.REPEATED_MESSAGE):
        ratepool.from_spark(df, window_col="window")
    allowed = ratepool.from_spark(df, window_col="window", allow_duplicate_windows=True)
    cases.assert_same_statistics(allowed, frame, window_col="window", allow_duplicate_windows=True)


def test_odd_column_names_are_quoted(spark) -> None:
    frame = cases.string_labels().rename(columns={"entity": "host.name", "count": "n`events"})
    data = ratepool.from_spark(spark.createDataFrame(frame), entity_col="host.name",
                               count_col="n`events")
    cases.assert_same_statistics(data, frame, entity_col="host.name", count_col="n`events")


@pytest.mark.parametrize("rows, schema, kwargs, message", [
    ([("a", 1), ("b", 2)], "entity string, count long", dict(count_col="n"),
     r"has no column\(s\) \['n'\]; its columns are \['entity', 'count'\]"),
    ([("a", "1"), ("b", "2")], "entity string, count string", {},
     r"column 'count' has type string.*cast\('long'\)"),
    ([("a", True), ("b", False)], "entity string, count boolean", {},
     r"column 'count' holds booleans"),
    ([], "entity string, count long", {}, r"the data has no rows"),
    ([("a", 1), ("a", 2)], "entity string, count long", {},
     r"column 'entity' has a single entity \('a'\)"),
], ids=["missing column", "string counts", "boolean counts", "no rows", "single entity"])
def test_bad_tables_are_refused(spark, rows, schema, kwargs, message) -> None:
    with pytest.raises(DataError, match=message):
        ratepool.from_spark(spark.createDataFrame(rows, schema), **kwargs)


def test_a_pandas_frame_is_pointed_to_from_dataframe() -> None:
    with pytest.raises(DataError, match="got DataFrame; for a pandas DataFrame use "
                                        "ratepool.from_dataframe"):
        ratepool.from_spark(pd.DataFrame({"entity": ["a"], "count": [1]}))


def test_without_pyspark_the_error_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ratepool\[spark\]'"):
        ratepool.from_spark(None)
