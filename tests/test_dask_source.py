"""`ratepool.from_dask` on a real dask.distributed LocalCluster (2 workers x 1 thread).

Reference: `from_dataframe` on the same pandas rows. The cluster is started once per module.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.data.frame import from_dataframe
from ratepool.errors import DataError, MissingDependencyError

from . import cluster_cases as cases

dd = pytest.importorskip("dask.dataframe", reason="dask is not installed (pip install "
                         "'ratepool[dask]'); the Dask source's tests need it")
distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed "
                                  "(pip install 'ratepool[dask]')")


@pytest.mark.parametrize("build, kwargs", cases.DATASET_PARAMS)
def test_same_statistics_as_from_dataframe(client, build, kwargs) -> None:
    frame = build()
    ddf = dd.from_pandas(frame, npartitions=3)
    with distributed.get_task_stream(client) as tasks:
        data = ratepool.from_dask(ddf, **kwargs)
    cases.assert_same_statistics(data, frame, **kwargs)
    workers = {task["worker"] for task in tasks.data}
    assert workers and workers <= set(client.scheduler_info()["workers"])  # ran on the cluster


def test_partitioning_does_not_change_the_statistics(client) -> None:
    frame = cases.heterogeneous_counts()
    results = [ratepool.from_dask(dd.from_pandas(frame, npartitions=n)) for n in (1, 2, 7)]
    for data in results:
        cases.assert_same_statistics(data, frame)


def test_parquet_files_read_by_dask(client, tmp_path) -> None:
    frame = cases.string_labels()
    for part, rows in enumerate(np.array_split(np.arange(len(frame)), 4)):
        frame.iloc[rows].to_parquet(tmp_path / f"part-{part}.parquet", index=False)
    ddf = dd.read_parquet(str(tmp_path / "*.parquet"))
    assert ddf.npartitions == 4
    data = ratepool.from_dask(ddf, window_col="window")
    cases.assert_same_statistics(data, frame, window_col="window")


@pytest.mark.parametrize("build, local_message, cluster_message", cases.BAD_ROW_PARAMS)
def test_bad_rows_are_refused_with_their_global_count(client, build, local_message,
                                                      cluster_message) -> None:
    frame = build()
    with pytest.raises(DataError, match=local_message):  # same problem and count as here
        from_dataframe(frame, window_col="window")
    with pytest.raises(DataError, match=cluster_message):
        ratepool.from_dask(dd.from_pandas(frame, npartitions=3), window_col="window")


def test_repeated_windows_are_found_exactly_across_partitions(client) -> None:
    frame = cases.with_repeated_windows()
    ddf = dd.from_pandas(frame, npartitions=3)
    with pytest.raises(DataError, match=cases.REPEATED_MESSAGE):
        ratepool.from_dask(ddf, window_col="window")
    allowed = ratepool.from_dask(ddf, window_col="window", allow_duplicate_windows=True)
    cases.assert_same_statistics(allowed, frame, window_col="window", allow_duplicate_windows=True)


def test_same_windows_of_different_entities_are_not_repeats(client) -> None:
    frame = pd.DataFrame({"entity": ["a", "b", "a", "b"], "count": [1, 2, 3, 4],
                          "window": [1, 1, 2, 2]})
    data = ratepool.from_dask(dd.from_pandas(frame, npartitions=2), window_col="window")
    cases.assert_same_statistics(data, frame, window_col="window")


@pytest.mark.parametrize("frame, kwargs, message", [
    (pd.DataFrame({"entity": ["a", "b"], "count": [1, 2]}), dict(count_col="n"),
     r"has no column\(s\) \['n'\]; its columns are \['entity', 'count'\]"),
    (pd.DataFrame({"entity": ["a", "b"], "count": ["1", "2"]}), {},
     r"column 'count' has type string.*astype\('int64'\)"),
    (pd.DataFrame({"entity": ["a", "b"], "count": [True, False]}), {},
     r"column 'count' holds booleans"),
    (pd.DataFrame({"entity": pd.Series([], dtype=str), "count": pd.Series([], dtype=int)}), {},
     r"the data has no rows"),
    (pd.DataFrame({"entity": ["a", "a"], "count": [1, 2]}), {},
     r"column 'entity' has a single entity \('a'\)"),
], ids=["missing column", "string counts", "boolean counts", "no rows", "single entity"])
def test_bad_tables_are_refused(client, frame, kwargs, message) -> None:
    with pytest.raises(DataError, match=message):
        ratepool.from_dask(dd.from_pandas(frame, npartitions=1), **kwargs)


def test_a_pandas_frame_is_pointed_to_from_dataframe() -> None:
    with pytest.raises(DataError, match="got DataFrame; for a pandas DataFrame use "
                                        "ratepool.from_dataframe"):
        ratepool.from_dask(cases.string_labels())


def test_without_dask_the_error_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ratepool\[dask\]'"):
        ratepool.from_dask(None)


def test_ratepool_imports_without_dask_or_pyspark() -> None:
    code = ("import sys\n"
            "for name in ('dask', 'dask.dataframe', 'distributed', 'pyspark', 'pyspark.sql'):\n"
            "    sys.modules[name] = None\n"
            "import ratepool\n"
            "assert callable(ratepool.from_dask) and callable(ratepool.from_spark)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
