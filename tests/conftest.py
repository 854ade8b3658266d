"""Shared fixtures: which engines run here, the example data, small sampler settings."""

from __future__ import annotations

import gzip
import os
import shutil
import sys
from pathlib import Path

import pytest

import ratepool
from ratepool.engines.cmdstan import find_cmdstan
from ratepool.engines.pystan import pystan_available

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CSV = ROOT / "data" / "example_counts.csv"
EXAMPLE_TRUTH = ROOT / "data" / "example_truth.json"
#: Real CmdStan 2.35 output of ratepool's program (see its README), CSVs gzipped.
CMDSTAN_FIXTURES = ROOT / "tests" / "fixtures" / "cmdstan-2.35"
#: Real CmdStan 2.35 runs of both programs as of commit 50abbe5 (base, options, bytes, temporal).
CMDSTAN_RUNS = ROOT / "tests" / "fixtures" / "cmdstan-2.35-50abbe5"

CMDSTAN_SKIP_REASON = (
    "CmdStan is not installed on this machine (no CMDSTAN variable and no ~/.cmdstan); "
    "the CmdStan engine's tests run wherever it is installed"
)


def engine_params() -> list:
    """One pytest param per engine; the CmdStan one skips with a reason when absent."""
    return [
        pytest.param("pystan", marks=pytest.mark.skipif(not pystan_available(),
                                                        reason="pystan is not installed")),
        pytest.param("cmdstan", marks=[pytest.mark.cmdstan, pytest.mark.skipif(
            find_cmdstan() is None, reason=CMDSTAN_SKIP_REASON)]),
    ]


@pytest.fixture(scope="session")
def example_data() -> ratepool.CountData:
    return ratepool.load_counts(EXAMPLE_CSV, window_col="window")


def unpack_cmdstan_runs(source: Path, target: Path) -> Path:
    """Copy a fixture folder of CmdStan runs to ``target`` with the CSVs decompressed."""
    for item in sorted(source.rglob("*")):
        path = target / item.relative_to(source)
        if item.is_dir():
            path.mkdir(parents=True, exist_ok=True)
        elif item.suffix == ".gz":
            path.with_suffix("").write_bytes(gzip.decompress(item.read_bytes()))
        else:
            shutil.copyfile(item, path)
    return target


@pytest.fixture()
def run_dir(tmp_path: Path, monkeypatch) -> Path:
    """The CmdStan runs as CmdStan left them (CSVs decompressed), as the working directory:
    the CSV headers record ``data file=data.json`` relative to where CmdStan ran."""
    monkeypatch.chdir(unpack_cmdstan_runs(CMDSTAN_FIXTURES, tmp_path))
    return tmp_path


@pytest.fixture()
def runs_50abbe5(tmp_path: Path, monkeypatch) -> Path:
    """`CMDSTAN_RUNS` unpacked as the working directory (the CSV headers record
    ``data file=FOLDER/data.json`` relative to the folder above the four runs)."""
    monkeypatch.chdir(unpack_cmdstan_runs(CMDSTAN_RUNS, tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def client():
    """A real Dask local cluster: 2 worker processes x 1 thread, no dashboard; closed after."""
    pytest.importorskip("dask.dataframe", reason="dask is not installed (pip install "
                        "'ratepool[dask]'); the Dask tests need it")
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not "
                                      "installed (pip install 'ratepool[dask]')")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as dask_client:
            yield dask_client


@pytest.fixture(scope="module")
def spark():
    """A local Spark session on 2 cores, quiet and sized for tiny data; stopped after.

    ``spark.sql.shuffle.partitions=2`` (instead of 200 tasks per group-by),
    ``spark.default.parallelism=2``, no web UI, Arrow for ``createDataFrame``/``toPandas``,
    and this interpreter for the Python workers (they import ratepool to map over entities).
    """
    pyspark_sql = pytest.importorskip("pyspark.sql", reason="pyspark is not installed (pip "
                                      "install 'ratepool[spark]'); the Spark tests need it")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime found (Spark needs Java 17+; e.g. apt-get install "
                    "default-jre-headless); the Spark tests need it")
    previous = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # the session's config key is not honoured
    session = (pyspark_sql.SparkSession.builder.master("local[2]")
               .appName("ratepool-tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    if previous is None:
        os.environ.pop("PYSPARK_PYTHON", None)
    else:
        os.environ["PYSPARK_PYTHON"] = previous
