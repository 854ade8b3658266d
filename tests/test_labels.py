"""Entity labels are read from files as text exactly as written, and every path agrees.

Issue 11, defect 1: pandas' type guessing merged "007" and "7" into one entity 7 and took the
label "NA" for a missing value. Each test below names what the old code did.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.cli.main import main
from ratepool.data.labels import label_order
from ratepool.errors import DataError
from ratepool.outputs.results import FILES, load_inference_data, load_results, write_results
from ratepool.workflow.cmdstan_files import read_stan_data

from .test_results import record_for, synthetic_result

LEADING_ZERO_CSV = "entity,count,window\n007,1,1\n7,2,1\n8,3,1\n007,0,2\n7,4,2\n8,5,2\n"


def _write(tmp_path: Path, text: str, name: str = "counts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _all_readers(path: Path, **columns: str) -> dict[str, ratepool.CountData]:
    """The same file through every reading path."""
    import duckdb

    con = duckdb.connect()
    reader = ("read_parquet" if path.suffix == ".parquet"
              else "read_csv")
    types = "" if path.suffix == ".parquet" else ", all_varchar = true"
    return {
        "load_counts": ratepool.load_counts(path, **columns),
        "aggregate_file": ratepool.aggregate_file(path, **columns),
        "from_duckdb": ratepool.from_duckdb(con, f"SELECT * FROM {reader}('{path}'{types})",
                                            **columns),
    }


def test_leading_zero_labels_are_distinct_entities_with_a_window_column(tmp_path: Path) -> None:
    """Old code: refused as 'duplicate windows' (007 and 7 both became 7)."""
    path = _write(tmp_path, LEADING_ZERO_CSV)
    for how, data in _all_readers(path, window_col="window").items():
        assert list(data.labels) == ["007", "7", "8"], how
        assert all(type(label) is str for label in data.labels), how
        assert data.n_windows.tolist() == [2, 2, 2], how
        assert data.entity_total.tolist() == [1, 6, 8], how


def test_leading_zero_labels_are_not_merged_without_a_window_column(tmp_path: Path) -> None:
    """Old code: silently merged 007 and 7 into one entity 7 with 4 windows."""
    path = _write(tmp_path, "entity,count\n007,1\n7,2\n8,3\n007,0\n7,4\n8,5\n")
    for how, data in _all_readers(path).items():
        assert list(data.labels) == ["007", "7", "8"], how
        assert data.n_windows.tolist() == [2, 2, 2], how


def test_the_text_na_is_a_label_and_an_empty_cell_is_missing(tmp_path: Path) -> None:
    """Old code: 'NA' was read as a missing label and refused."""
    path = _write(tmp_path, "entity,count\nNA,1\nNA,2\nb,3\n")
    for how, data in _all_readers(path).items():
        assert list(data.labels) == ["NA", "b"], how
        assert data.entity_total.tolist() == [3, 3], how
    empty = _write(tmp_path, "entity,count\nNA,1\n,2\nb,3\n", "empty.csv")
    for read in (ratepool.load_counts, ratepool.aggregate_file):
        with pytest.raises(DataError, match=r"missing entity labels.*line 3"):
            read(empty)


def test_parquet_labels_are_text_too(tmp_path: Path) -> None:
    """A Parquet text column keeps '007'; an integer column gives the integers' text."""
    text = tmp_path / "text.parquet"
    pd.DataFrame({"entity": ["007", "7", "8", "NA"], "count": [1, 2, 3, 4]}).to_parquet(text)
    for how, data in _all_readers(text).items():
        assert list(data.labels) == ["007", "7", "8", "NA"], how
    ints = tmp_path / "ints.parquet"
    pd.DataFrame({"entity": [10, 9, 100, 9], "count": [1, 2, 3, 4]}).to_parquet(ints)
    csv = _write(tmp_path, "entity,count\n10,1\n9,2\n100,3\n9,4\n", "ints.csv")
    for path in (ints, csv):
        for how, data in _all_readers(path).items():
            assert list(data.labels) == ["9", "10", "100"], (path.name, how)  # numeric order
            assert data.n_windows.tolist() == [2, 1, 1], (path.name, how)


def test_in_memory_labels_keep_the_users_type() -> None:
    frame = pd.DataFrame({"entity": np.array([30, 4, 100, 4]), "count": [1, 2, 3, 4]})
    data = ratepool.from_dataframe(frame)
    assert list(data.labels) == [4, 30, 100]
    assert data.labels.dtype == np.int64


@pytest.mark.parametrize(("labels", "expected"), [
    (["10", "9", "100", "-3", "0"], ["-3", "0", "9", "10", "100"]),
    (["10", "9", "007"], ["007", "10", "9"]),          # a leading zero: text order
    (["1.5", "10", "2"], ["1.5", "10", "2"]),          # not all integers: text order
    (["+1", "2"], ["+1", "2"]),                        # '+1' is not canonical
    ([str(2**70), "5"], ["5", str(2**70)]),            # beyond int64 still numeric
    ([3, 1.5, 2], [1.5, 2, 3]),                        # numbers by value
    (["b", 1, "a", 0.5], [0.5, 1, "a", "b"]),          # mixed: by type name, then text
])
def test_label_order(labels: list, expected: list) -> None:
    order = label_order(labels)
    assert [labels[i] for i in order] == expected


def test_export_data_labels_file_round_trip(tmp_path: Path) -> None:
    """Old code: load_counts refused the file; read_labels turned '7' into the integer 7."""
    path = _write(tmp_path, "entity,count\n007,1\n7,2\n8,3\nNA,0\n007,5\n")
    out = tmp_path / "data.json"
    assert main(["export-data", str(path), "-o", str(out)]) == 0
    data, _ = read_stan_data(out)
    original = ratepool.load_counts(path)
    assert list(data.labels) == list(original.labels) == ["007", "7", "8", "NA"]
    ints = _write(tmp_path, "entity,count\n7,1\n30,2\n", "ints.csv")
    assert main(["export-data", str(ints), "-o", str(out)]) == 0
    data, _ = read_stan_data(out)
    assert list(data.labels) == list(ratepool.load_counts(ints).labels) == ["7", "30"]


@pytest.mark.parametrize("labels", [["007", "7", "8", "NA"], [30, 10, 20], ["x", 7, 3.5]],
                         ids=["text", "int", "mixed"])
def test_results_reload_gives_the_fits_labels(tmp_path: Path, labels: list) -> None:
    """Old code: entity_summary.csv came back with 7, 7, 8, NaN for the text labels."""
    result = synthetic_result(labels)
    out = write_results(tmp_path / "res", result, record=record_for(result))
    expected = list(result.data.labels)
    saved = load_results(out)
    assert list(saved.entity_summary.index) == expected
    assert [type(v) for v in saved.entity_summary.index] == [type(v) for v in expected]
    assert list(load_inference_data(out / FILES["idata"]).posterior["entity"].values) == expected
    pd.testing.assert_frame_equal(saved.entity_summary.reset_index(drop=True),
                                  result.entity_summary().reset_index(drop=True),
                                  check_dtype=False)
