"""The results folder (atomic writing, contents, reloading) and the data JSON for CmdStan.

These tests do not sample: the results-folder tests use synthetic draws (they test files, not
statistics); the export tests check the JSON against the Stan program's own data block.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool import DataError, ModelConfig, RatepoolError
from ratepool.cli.main import main
from ratepool.engines.base import Draws
from ratepool.files import atomic_directory, atomic_write_text
from ratepool.model.program import default_program
from ratepool.outputs import results as results_module
from ratepool.outputs.report import render_report
from ratepool.outputs.results import (
    FILES,
    json_ready,
    load_inference_data,
    load_results,
    write_results,
)
from ratepool.posterior.fit_result import FitResult
from ratepool.posterior.inference import build_inference_data
from ratepool.workflow.cmdstan_files import labels_path_for, read_stan_data

from .conftest import EXAMPLE_CSV

DIAGNOSTIC_KEYS = {"r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "converged",
                   "divergence_share",
                   "all_parameters", "grades", "advice"}  # no energy, tree depth: no E-BFMI


def synthetic_result(labels: list, seed: int = 0, prior: bool = False) -> FitResult:
    """A FitResult with random draws of the right shapes (for file tests only)."""
    rng = np.random.default_rng(seed)
    windows = [3, 1, 4, 2, 5][: len(labels)]
    rows = [(label, w) for label, n in zip(labels, windows) for w in range(n)]
    frame = pd.DataFrame(rows, columns=["entity", "window"])
    frame["count"] = rng.poisson(3.0, len(frame))
    data = ratepool.from_dataframe(frame, window_col="window")
    chains, draws, n_ent, n_obs = 2, 50, data.n_entities, data.n_windows_total

    def stan_draws(n_chains: int, n_draws: int, suffix: str = "") -> dict[str, np.ndarray]:
        shape = (n_chains, n_draws)
        values = {f"mu{suffix}": rng.gamma(9.0, 1 / 3, shape),
                  f"alpha{suffix}": rng.gamma(4.0, 0.25, shape),
                  f"phi{suffix}": rng.gamma(9.0, 1 / 3, shape),
                  f"theta{suffix}": rng.gamma(9.0, 1 / 3, (*shape, n_ent)),
                  "theta_new": rng.gamma(9.0, 1 / 3, shape),
                  "y_new": rng.poisson(3.0, shape).astype(float),
                  "y_rep": rng.poisson(3.0, (*shape, n_obs)).astype(float),
                  "y_pred": rng.poisson(3.0, (*shape, n_ent)).astype(float),
                  "y_rep_total": rng.poisson(9.0, (*shape, n_ent)).astype(float),
                  "y_rep_zeros": rng.binomial(2, 0.1, (*shape, n_ent)).astype(float)}
        if suffix:  # prior draws: scalars come as size-1 arrays
            for name in ("mu", "alpha", "phi"):
                values[name + suffix] = values[name + suffix][..., None]
        return values

    variables = stan_draws(chains, draws)
    variables["log_lik"] = -rng.gamma(2.0, 1.0, (chains, draws, n_obs))
    variables["log_lik_entity"] = -rng.gamma(2.0, 1.0, (chains, draws, n_ent))
    stats = {"lp": rng.normal(size=(chains, draws)),
             "diverging": np.zeros((chains, draws), dtype=bool)}
    prior_draws = (Draws(variables=stan_draws(1, 40, "_prior"), sample_stats={},
                         engine="pystan") if prior else None)
    idata = build_inference_data(Draws(variables=variables, sample_stats=stats,
                                       engine="pystan"), data, prior=prior_draws)
    return FitResult(idata=idata, data=data, config=ModelConfig(n_samples=draws,
                                                                  n_chains=chains),
                     engine="pystan", versions={"engine": "pystan"})


def record_for(result: FitResult) -> dict:
    return results_module.run_record(result, source="fit", command=["ratepool", "test"])


# ------------------------------------------------------------------------------------------
# Atomic writing


def test_atomic_directory_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "a.txt").write_text("second")
            raise RuntimeError("failed half way")
    assert (target / "a.txt").read_text() == "first"
    with atomic_directory(target) as staging:
        (staging / "b.txt").write_text("third")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old dirs


def test_atomic_directory_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(RatepoolError, match="not a directory"):
        with atomic_directory(target):
            pass


def test_atomic_write_text_leaves_no_temp_and_normal_permissions(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "sub" / "f.json", "{}\n")
    assert path.read_text() == "{}\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.json"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_json_ready_makes_strict_json() -> None:
    value = json_ready({"a": np.float64("nan"), "b": np.int64(3), "c": [np.inf, 1.5],
                        "d": np.bool_(True)})
    assert value == {"a": None, "b": 3, "c": [None, 1.5], "d": True}
    json.dumps(value, allow_nan=False)


# ------------------------------------------------------------------------------------------
# The folder


def test_results_folder_contents(tmp_path: Path) -> None:
    result = synthetic_result(["b", "a", "c"], prior=True)
    out = write_results(tmp_path / "res", result, record=record_for(result),
                        render_report=render_report)
    names = {p.name for p in out.iterdir()}
    expected = set(FILES.values()) | {"trace.png", "posterior.png", "posterior_predictive.png",
                                      "entity_rates.png", "prior_predictive.png"}
    assert names == expected
    diagnostics = json.loads((out / FILES["diagnostics"]).read_text())
    assert set(diagnostics) == DIAGNOSTIC_KEYS
    assert diagnostics == json_ready(result.diagnostics())
    run = json.loads((out / FILES["run"]).read_text())
    assert run["config"] == result.config.to_dict()
    assert set(run["files"]) == names
    assert run["stan_program"] == {"file": None, "sha256": None}  # synthetic: no program ran
    for package in ("ratepool", "cmdstanpy", "arviz", "numpy", "pandas"):
        assert package in run["versions"]
    assert ModelConfig.from_toml(out / FILES["config"]) == result.config
    for png in names - set(FILES.values()):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / FILES["report"]).read_text()
    assert html.count('src="data:image/png;base64,') == 5
    assert not re.search(r'src="(?!data:)', html)  # nothing to fetch: self-contained
    table = pd.read_csv(out / FILES["entities"], index_col="entity")
    pd.testing.assert_frame_equal(table, result.entity_summary(), check_dtype=False)
    saved = load_results(out)
    assert saved.config() == result.config
    assert saved.diagnostics["grades"] == result.diagnostics()["grades"]


@pytest.mark.parametrize("labels", [["host-b", "host-a", "host-c"], [30, 10, 20],
                                    [2.5, 1.5, 0.5], ["x", 7, 3.5]],
                         ids=["str", "int", "float", "mixed"])
def test_netcdf_reloads_with_the_same_labels(tmp_path: Path, labels: list) -> None:
    result = synthetic_result(labels)
    out = write_results(tmp_path / "res", result, record=record_for(result))
    expected = list(result.data.labels)
    reloaded = load_inference_data(out / FILES["idata"])
    assert list(reloaded.posterior["entity"].values) == expected
    assert [type(_py(v)) for v in reloaded.posterior["entity"].values] == \
        [type(_py(v)) for v in expected]
    np.testing.assert_array_equal(reloaded.posterior["theta"].values,
                                  result.idata.posterior["theta"].values)
    plain = az.from_netcdf(str(out / FILES["idata"]))  # arviz alone also reads it
    assert [str(v) for v in plain.posterior["entity"].values] == [str(v) for v in expected]
    assert plain.sample_stats["diverging"].dtype == bool


def _py(value: object) -> object:
    """A numpy scalar as the Python value it holds."""
    return value.item() if isinstance(value, np.generic) else value


def test_failed_write_keeps_the_earlier_folder(tmp_path: Path, monkeypatch) -> None:
    first = synthetic_result(["a", "b"], seed=1)
    out = write_results(tmp_path / "res", first, record=record_for(first))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C while plotting

    monkeypatch.setattr(results_module.plots, "fit_figures", broken)
    second = synthetic_result(["a", "b"], seed=2)
    with pytest.raises(KeyboardInterrupt):
        write_results(out, second, record=record_for(second))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def test_load_results_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(RatepoolError, match="does not exist"):
        load_results(tmp_path / "nothing")
    (tmp_path / "partial").mkdir()
    with pytest.raises(RatepoolError, match="diagnostics.json is missing"):
        load_results(tmp_path / "partial")


# ------------------------------------------------------------------------------------------
# export-data: the JSON CmdStan reads


_DECLARATION = re.compile(
    r"^\s*(?:array\[(?P<array>[^\]]+)\]\s+)?(?P<type>int|real|vector|matrix)"
    r"(?:<(?P<bounds>[^>]*)>)?(?:\[(?P<vector>[^\]]+)\])?\s+(?P<name>\w+);"
)


def data_block() -> dict[str, dict]:
    """The Stan program's data block: name -> type, size expression (or None) and bounds."""
    code = default_program().code
    block = code[code.index("\ndata {") + len("\ndata {"):]
    block = block[: block.index("\n}")]
    declarations = {}
    for line in block.splitlines():
        match = _DECLARATION.match(line)
        if match:
            bounds = dict(part.strip().split("=") for part in match["bounds"].split(",")) \
                if match["bounds"] else {}
            declarations[match["name"]] = {
                "type": match["type"], "size": match["array"] or match["vector"],
                "bounds": bounds}
    return declarations


def _resolve(expression: str, values: dict) -> float:
    """A bound or size: a number, a data name, or a conditional like ``has_exposure ? N : 0``."""
    if "?" in expression:
        condition, choices = expression.split("?")
        when_true, when_false = choices.split(":")
        chosen = when_true if _resolve(condition.strip(), values) else when_false
        return _resolve(chosen.strip(), values)
    return float(values[expression]) if expression in values else float(expression)


def check_against_data_block(values: dict) -> None:
    declarations = data_block()
    assert set(values) == set(declarations)
    for name, spec in declarations.items():
        value = values[name]
        if spec["size"] is None:
            assert not isinstance(value, list), name
            items = [value]
        elif spec["type"] == "matrix":
            rows, columns = (_resolve(part.strip(), values) for part in spec["size"].split(","))
            assert isinstance(value, list) and len(value) == rows, name
            assert all(isinstance(row, list) and len(row) == columns for row in value), name
            items = [v for row in value for v in row]
        else:
            assert isinstance(value, list) and len(value) == _resolve(spec["size"], values), name
            items = value
        if spec["type"] == "int":
            assert all(isinstance(v, int) and not isinstance(v, bool) for v in items), name
        else:
            assert all(isinstance(v, (int, float)) for v in items), name
        if "lower" in spec["bounds"]:
            assert all(v >= _resolve(spec["bounds"]["lower"], values) for v in items), name
        if "upper" in spec["bounds"]:
            assert all(v <= _resolve(spec["bounds"]["upper"], values) for v in items), name


@pytest.mark.parametrize("options", [[], ["--prior-only"]], ids=["posterior", "prior-only"])
def test_export_data_matches_the_stan_data_block(tmp_path: Path, options: list[str],
                                                 capsys) -> None:
    out = tmp_path / "run" / "data.json"
    code = main(["export-data", str(EXAMPLE_CSV), "--window-col", "window", "-o", str(out),
                 *options])
    assert code == 0
    values = json.loads(out.read_text())
    check_against_data_block(values)
    assert values["prior_only"] == (1 if options else 0)
    assert sorted(p.name for p in out.parent.iterdir()) == ["data.json", "data.labels.csv"]
    assert "data file=" in capsys.readouterr().out


def test_export_data_takes_priors_and_switches_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[priors]\nmu_prior_rate = 0.5\nalpha_prior_sd = 3.0\n'
                      '[model]\nparameterization = "non_centered"\nlikelihood = "observation"\n'
                      'obs_predictions = false\n')
    out = tmp_path / "data.json"
    assert main(["export-data", str(EXAMPLE_CSV), "--window-col", "window", "--config",
                 str(config), "-o", str(out)]) == 0
    values = json.loads(out.read_text())
    check_against_data_block(values)
    frame = pd.read_csv(EXAMPLE_CSV)
    assert (values["mu_rate"], values["alpha_sd"], values["phi_sd"]) == (0.5, 3.0, 2.0)
    assert (values["non_centered"], values["use_sufficient_stats"],
            values["obs_predictions"]) == (1, 0, 0)
    assert values["N"] == len(frame) and sum(values["y"]) == frame["count"].sum()


@pytest.mark.parametrize("labels", [["h-2", "h-10", "h-1"], [30, 4, 100]], ids=["str", "int"])
def test_data_json_and_labels_give_back_the_data(tmp_path: Path, labels: list) -> None:
    frame = pd.DataFrame({"entity": np.repeat(labels, [2, 3, 1]), "count": [0, 5, 1, 2, 9, 4]})
    source = tmp_path / "counts.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "data.json"
    assert main(["export-data", str(source), "-o", str(out),
                 "--config", str(_obs_on(tmp_path))]) == 0
    data, values = read_stan_data(out)
    original = ratepool.load_counts(source)
    assert list(data.labels) == list(original.labels)
    for name in ("n_windows", "entity_total", "count_value", "count_freq", "y",
                 "entity_index"):
        np.testing.assert_array_equal(getattr(data, name), getattr(original, name))
    table = pd.read_csv(labels_path_for(out), dtype={"entity": str})  # labels are text
    assert data.labels_of(table["stan_index"]).tolist() == table["entity"].tolist()


def _obs_on(tmp_path: Path) -> Path:
    path = tmp_path / "obs.toml"
    path.write_text("[model]\nobs_predictions = true\n")
    return path


def test_labels_that_do_not_belong_to_the_json_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "data.json"
    assert main(["export-data", str(EXAMPLE_CSV), "--window-col", "window", "-o",
                 str(out)]) == 0
    labels = labels_path_for(out)
    table = pd.read_csv(labels)
    table.loc[0, "n_windows"] += 1
    table.to_csv(labels, index=False)
    with pytest.raises(DataError, match="does not match"):
        read_stan_data(out)
    table.iloc[:-1].to_csv(labels, index=False)
    with pytest.raises(DataError, match="stan_index 1..40"):
        read_stan_data(out)
    labels.unlink()
    with pytest.raises(DataError, match="does not exist"):
        read_stan_data(out)


def test_run_record_names_the_program_that_ran(tmp_path: Path) -> None:
    """Not the packaged program when another one ran (defect: run.json always hashed it)."""
    other = tmp_path / "my_variant.stan"
    other.write_text(default_program().code + "\n// a variant\n")
    result = synthetic_result(["a", "b"])
    result.program = ratepool.model.program.StanProgram.from_file(other)
    record = record_for(result)
    assert record["stan_program"] == {"file": "my_variant.stan",
                                      "sha256": result.program.sha256}
    assert record["stan_program"]["sha256"] != default_program().sha256
