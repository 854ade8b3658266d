"""Shared fixtures: which engines run here, the example data, small sampler settings."""

from __future__ import annotations

import gzip
import shutil
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


@pytest.fixture()
def run_dir(tmp_path: Path, monkeypatch) -> Path:
    """The CmdStan runs as CmdStan left them (CSVs decompressed), as the working directory:
    the CSV headers record ``data file=data.json`` relative to where CmdStan ran."""
    for item in CMDSTAN_FIXTURES.rglob("*"):
        target = tmp_path / item.relative_to(CMDSTAN_FIXTURES)
        if item.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif item.suffix == ".gz":
            target.with_suffix("").write_bytes(gzip.decompress(item.read_bytes()))
        else:
            shutil.copyfile(item, target)
    monkeypatch.chdir(tmp_path)
    return tmp_path
