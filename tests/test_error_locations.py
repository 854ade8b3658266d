"""Error messages name plain values and where the row is: the line in the user's CSV (header =
line 1), the 1-based row of a Parquet file, or the index label of an in-memory DataFrame.

Issue 11, defect 8: messages showed ``np.int64(7)`` and 0-based row numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.errors import DataError


def _frame(n_rows: int = 80) -> pd.DataFrame:
    entity = np.array([f"e{i % 4}" for i in range(n_rows)], dtype=object)
    return pd.DataFrame({"entity": entity, "day": np.arange(n_rows) // 4,
                         "count": np.arange(n_rows, dtype=np.int64) % 5})


def _message(call, *args, **kwargs) -> str:
    with pytest.raises(DataError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize("read", [ratepool.load_counts, ratepool.aggregate_file],
                         ids=["load_counts", "aggregate_file"])
@pytest.mark.parametrize(("bad", "problem"), [(-7, "negative"), (2.5, "non-integer"),
                                              (None, "missing")])
def test_csv_errors_name_the_line_of_the_file(tmp_path: Path, read, bad, problem) -> None:
    frame = _frame().astype({"count": object})
    frame.loc[57, "count"] = bad
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    message = _message(read, path, window_col="day")
    assert problem in message and "'count'" in message
    assert "line 59" in message            # data row 57 (0-based) is line 59 of the file
    assert "np." not in message and "row 57" not in message


@pytest.mark.parametrize("read", [ratepool.load_counts, ratepool.aggregate_file],
                         ids=["load_counts", "aggregate_file"])
def test_parquet_errors_name_the_1_based_row(tmp_path: Path, read) -> None:
    frame = _frame()
    frame.loc[57, "count"] = -7
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path, index=False)
    message = _message(read, path)
    assert "row 58: -7" in message and "np." not in message


@pytest.mark.parametrize("read", [ratepool.load_counts, ratepool.aggregate_file],
                         ids=["load_counts", "aggregate_file"])
def test_duplicate_windows_name_both_lines(tmp_path: Path, read) -> None:
    frame = _frame(40)
    frame.loc[33, ["entity", "day"]] = frame.loc[2, ["entity", "day"]].to_numpy()
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    message = _message(read, path, window_col="day")
    assert "2 rows repeat" in message
    assert "line 4: ('e2', '0')" in message and "line 35: ('e2', '0')" in message


def test_dataframe_errors_name_the_index_label_and_plain_values() -> None:
    frame = _frame(12).set_axis([f"r{i}" for i in range(12)])
    frame["count"] = frame["count"].to_numpy(dtype=np.int64)
    frame.loc["r5", "count"] = -7
    message = _message(ratepool.from_dataframe, frame)
    assert "index 'r5': -7" in message and "np." not in message


def test_single_entity_message_shows_a_plain_label() -> None:
    frame = pd.DataFrame({"entity": np.array([7, 7], dtype=np.int64), "count": [1, 2]})
    message = _message(ratepool.from_dataframe, frame)
    assert "single entity (7)" in message and "np." not in message


def test_duplicate_window_message_shows_plain_values() -> None:
    frame = pd.DataFrame({"entity": np.array([7, 7, 8], dtype=np.int64),
                          "window": np.array([1, 1, 1], dtype=np.int64), "count": [1, 2, 3]})
    message = _message(ratepool.from_dataframe, frame, window_col="window")
    assert "index 0: (7, 1), index 1: (7, 1)" in message and "np." not in message
