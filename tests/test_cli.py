"""The ``ratepool`` command line end to end: fit, prior-check, export-data, report, diagnose."""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.cli.main import main
from ratepool.cli.parser import build_parser
from ratepool.engines.cmdstan import find_cmdstan
from ratepool.engines.cmdstan_csv import CmdStanRun
from ratepool.engines.pystan import pystan_available
from ratepool.outputs.results import FILES, load_inference_data
from ratepool.workflow.cmdstan_run import fit_result_from_run

from .conftest import CMDSTAN_SKIP_REASON, EXAMPLE_CSV

SMALL_TOML = """engine = "pystan"
[sampling]
n_samples = 300
n_tune = 300
n_chains = 2
"""
DIAGNOSTIC_KEYS = {"r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "converged",
                   "divergence_share", "prior_sensitivity",
                   "all_parameters", "ebfmi", "treedepth_hits", "max_treedepth", "grades",
                   "advice"}
PLOTS = {"trace.png", "posterior.png", "posterior_predictive.png", "entity_rates.png",
         "prior_predictive.png"}
needs_pystan = pytest.mark.skipif(not pystan_available(), reason="pystan is not installed")


def _small_config(directory: Path) -> Path:
    path = directory / "small.toml"
    path.write_text(SMALL_TOML)
    return path


# ------------------------------------------------------------------------------------------
# Help and argument errors (fast)


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_option_is_explained(capsys) -> None:
    commands = _subcommands()
    assert set(commands) == {"fit", "prior-check", "export-data", "report", "diagnose",
                             "score", "compare"}
    for name, command in commands.items():
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        for action in command._actions:
            assert action.help, f"{name}: {action.dest} has no help"
            for option in action.option_strings:
                assert option in text, f"{name} --help does not show {option}"


def test_installed_console_command() -> None:
    script = Path(sys.executable).with_name("ratepool")
    if not script.exists():
        pytest.skip(f"no ratepool console script next to {sys.executable}")
    done = subprocess.run([str(script), "fit", "--help"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0
    assert "--entity-col" in done.stdout and "--config" in done.stdout


@pytest.mark.parametrize(("argv", "message"), [
    (["fit", "no/such/file.csv", "--quiet"], "does not exist"),
    (["fit", str(EXAMPLE_CSV), "--count-col", "events", "--quiet"], "'events'"),
    (["fit", str(EXAMPLE_CSV), "--seed", "-4", "--quiet"], "random_seed"),
    (["fit", str(EXAMPLE_CSV), "--prior-draws", "-1", "--quiet"], "--prior-draws"),
    (["prior-check", str(EXAMPLE_CSV), "--draws", "0", "--quiet"], "--draws"),
    (["diagnose", "no/such/results"], "does not exist"),
    (["report", "--from-cmdstan-csv", "no/such/out_1.csv"], "does not exist"),
])
def test_errors_exit_2_with_a_message(tmp_path: Path, monkeypatch, capsys, argv: list[str],
                                      message: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_engine_failures_exit_3(tmp_path: Path, monkeypatch, capsys) -> None:
    """Not 2 ("invalid arguments, data or config"): the engine is missing or failed."""
    monkeypatch.setenv("CMDSTAN", str(tmp_path / "no-such-cmdstan"))
    assert main(["fit", str(EXAMPLE_CSV), "--engine", "cmdstan", "--quiet",
                 "--out", str(tmp_path / "out")]) == 3
    assert "CmdStan was not found" in capsys.readouterr().err

    def failing(*args, **kwargs):
        raise ratepool.SamplingError("the sampler failed: Initialization failed")

    monkeypatch.setattr("ratepool.cli.fit_commands.fit", failing)
    assert main(["fit", str(EXAMPLE_CSV), "--quiet", "--out", str(tmp_path / "out")]) == 3
    assert "Initialization failed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused_before_sampling(tmp_path: Path, capsys) -> None:
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    assert main(["fit", str(EXAMPLE_CSV), "--out", str(taken), "--quiet"]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert taken.read_text() == "keep me"


def test_report_refuses_a_csv_that_is_not_cmdstan_output(tmp_path: Path, capsys) -> None:
    path = tmp_path / "draws.csv"
    pd.DataFrame({"mu": [1.0, 2.0]}).to_csv(path, index=False)
    assert main(["report", "--from-cmdstan-csv", str(path)]) == 2
    assert "'sample' method" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["fit"])
    assert done.value.code == 2
    with pytest.raises(SystemExit) as done:
        main(["fit", str(EXAMPLE_CSV), "--engine", "stan"])
    assert done.value.code == 2


# ------------------------------------------------------------------------------------------
# diagnose on saved folders, old and new diagnostics.json (fast)

OLD_DIAGNOSTICS = {  # a diagnostics.json written before the checks over every parameter
    "r_hat_max": 1.002, "ess_bulk_min": 1500.0, "ess_tail_min": 1400.0, "divergences": 0,
    "converged": True, "advice": [],
    "grades": {"r_hat": "Good", "ess_bulk": "Good", "ess_tail": "Good", "divergences": "Good"},
}


def _saved_folder(directory: Path, diagnostics: dict) -> Path:
    directory.mkdir()
    (directory / FILES["diagnostics"]).write_text(json.dumps(diagnostics))
    (directory / FILES["run"]).write_text(json.dumps({"engine": "pystan", "seed": 1,
                                                       "config": {}, "data": {}}))
    pd.DataFrame({"entity": ["a"], "theta_mean": [1.0]}).to_csv(directory / FILES["entities"],
                                                                index=False)
    return directory


def test_diagnose_reads_an_old_diagnostics_file(tmp_path: Path, capsys) -> None:
    folder = _saved_folder(tmp_path / "old", OLD_DIAGNOSTICS)
    assert main(["diagnose", str(folder), "--strict"]) == 0
    text = capsys.readouterr().out
    assert "1.0020" in text and "1500" in text and "E-BFMI" not in text


@pytest.mark.parametrize("failing", ["ebfmi", "r_hat_all", "ess_tail_all"])
def test_diagnose_strict_fails_on_a_problem_outside_mu_alpha_phi(tmp_path: Path, capsys,
                                                                  failing: str) -> None:
    grades = {**OLD_DIAGNOSTICS["grades"], "r_hat_all": "Good", "ess_bulk_all": "Good",
              "ess_tail_all": "Good", "ebfmi": "Good", "treedepth": "Warning"}
    grades[failing] = "Problem"
    diagnostics = {**OLD_DIAGNOSTICS, "grades": grades, "ebfmi": [0.9, None],
                   "treedepth_hits": 3, "max_treedepth": 10,
                   "all_parameters": {"r_hat_max": 1.2, "r_hat_where": "theta[b]",
                                      "ess_bulk_min": 30.0, "ess_bulk_where": "theta[c]",
                                      "ess_tail_min": None, "ess_tail_where": "theta[a]"}}
    folder = _saved_folder(tmp_path / "new", diagnostics)
    assert main(["diagnose", str(folder)]) == 0
    assert main(["diagnose", str(folder), "--strict"]) == 1
    text = capsys.readouterr().out
    assert "E-BFMI per chain" in text and "0.90 n/a" in text and "tree depth 10 hits" in text
    assert "theta[b]" in text and "n/a" in text


# ------------------------------------------------------------------------------------------
# fit end to end with PyStan (slow)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> dict:
    """One small ``ratepool fit`` of the example data with the PyStan engine."""
    if not pystan_available():
        pytest.skip("pystan is not installed")
    directory = tmp_path_factory.mktemp("cli")
    out = directory / "results"
    argv = ["fit", str(EXAMPLE_CSV), "--window-col", "window", "--config",
            str(_small_config(directory)), "--prior-draws", "200", "--out", str(out)]
    code = main(argv)
    return {"code": code, "out": out, "argv": argv, "directory": directory}


@pytest.mark.slow
def test_fit_writes_the_results_folder(fitted: dict) -> None:
    assert fitted["code"] == 0
    out = fitted["out"]
    names = {p.name for p in out.iterdir()}
    assert names == set(FILES.values()) | PLOTS
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_fit_netcdf_reloads_with_labels(fitted: dict, example_data: ratepool.CountData) -> None:
    path = fitted["out"] / FILES["idata"]
    plain = az.from_netcdf(str(path))
    for group in ("posterior", "posterior_predictive", "log_likelihood", "sample_stats",
                  "observed_data", "constant_data", "prior", "prior_predictive"):
        assert group in plain.groups(), group
    assert list(plain.posterior["entity"].values) == list(example_data.labels)
    assert plain.posterior["theta"].shape == (2, 300, example_data.n_entities)
    np.testing.assert_array_equal(plain.observed_data["y"].values, example_data.y)
    assert list(load_inference_data(path).posterior["entity"].values) == \
        list(example_data.labels)


@pytest.mark.slow
def test_fit_diagnostics_and_run_record(fitted: dict) -> None:
    out = fitted["out"]
    diagnostics = json.loads((out / FILES["diagnostics"]).read_text())
    assert set(diagnostics) == DIAGNOSTIC_KEYS
    idata = az.from_netcdf(str(out / FILES["idata"]))
    assert diagnostics["r_hat_max"] == pytest.approx(
        float(max(az.rhat(idata.posterior[["mu", "alpha", "phi"]]).max().to_array())))
    assert diagnostics["divergences"] == int(idata.sample_stats["diverging"].sum())
    run = json.loads((out / FILES["run"]).read_text())
    assert run["source"] == "fit" and run["engine"] == "pystan" and run["seed"] == 42
    assert run["config"] == ratepool.ModelConfig(n_samples=300, n_tune=300, n_chains=2,
                                                 engine="pystan").to_dict()
    assert run["data"]["sha256"] == hashlib.sha256(EXAMPLE_CSV.read_bytes()).hexdigest()
    assert run["data"]["window_col"] == "window"
    assert run["command"] == ["ratepool", *fitted["argv"]]
    for name in ("ratepool", "pystan", "cmdstanpy", "arviz", "numpy", "pandas"):
        assert run["versions"][name], name
    assert run["engine_versions"]["stan"] not in ("", "unknown")
    table = pd.read_csv(out / FILES["entities"], index_col="entity")
    assert table.index.tolist() == sorted(pd.read_csv(EXAMPLE_CSV)["entity"].unique())
    html = (out / FILES["report"]).read_text()
    assert html.count("data:image/png;base64,") == len(PLOTS)


@pytest.mark.slow
def test_diagnose_reprints_the_saved_diagnostics(fitted: dict, capsys) -> None:
    assert main(["diagnose", str(fitted["out"])]) == 0
    text = capsys.readouterr().out
    saved = json.loads((fitted["out"] / FILES["diagnostics"]).read_text())
    assert f"{saved['r_hat_max']:.4f}" in text
    assert f"{saved['ess_bulk_min']:.0f}" in text
    expected = 0 if saved["converged"] and "Problem" not in saved["grades"].values() else 1
    assert main(["diagnose", str(fitted["out"]), "--strict"]) == expected


@pytest.mark.slow
def test_same_seed_same_numbers_and_failed_rerun_keeps_folder(fitted: dict, capsys) -> None:
    again = fitted["directory"] / "again"
    code = main(fitted["argv"][:-1] + [str(again), "--quiet"])
    assert code == 0
    for name in (FILES["entities"], FILES["diagnostics"], FILES["population"]):
        assert (again / name).read_bytes() == (fitted["out"] / name).read_bytes(), name
    first = az.from_netcdf(str(fitted["out"] / FILES["idata"]))
    second = az.from_netcdf(str(again / FILES["idata"]))
    np.testing.assert_array_equal(first.posterior["theta"].values,
                                  second.posterior["theta"].values)
    before = {p.name: p.read_bytes() for p in again.iterdir()}
    bad = fitted["directory"] / "bad.csv"
    pd.DataFrame({"entity": ["a", "b"], "count": [1, -1]}).to_csv(bad, index=False)
    assert main(["fit", str(bad), "--out", str(again), "--quiet"]) == 2
    assert {p.name: p.read_bytes() for p in again.iterdir()} == before
    capsys.readouterr()


@pytest.mark.slow
@needs_pystan
def test_fit_prints_results_and_progress_unless_quiet(tmp_path: Path, capfd) -> None:
    argv = ["fit", str(EXAMPLE_CSV), "--window-col", "window", "--config",
            str(_small_config(tmp_path)), "--prior-draws", "0", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    loud = capfd.readouterr()
    assert "max R-hat" in loud.out and "host-01" in loud.out
    assert "ratepool: reading" in loud.err and "Sampling" in loud.err
    assert main(argv + ["--quiet"]) == 0
    quiet = capfd.readouterr()
    assert quiet.err == ""
    assert "max R-hat" in quiet.out
    assert not (tmp_path / "r" / "prior_predictive.png").exists()


# ------------------------------------------------------------------------------------------
# prior-check


def _numpy_prior_shares(n_draws: int, n_entities: int, seed: int, low: int = 0,
                        high: int = 50) -> np.ndarray:
    """Per prior draw, the share of its entities' counts in low..high, simulated with numpy
    (independent of Stan): mu ~ Exp(0.1), alpha, phi ~ HalfNormal(2), theta ~ Gamma(mu alpha,
    alpha), y ~ NB2(theta, phi) as a Gamma-Poisson mixture."""
    rng = np.random.default_rng(seed)
    mu = rng.exponential(1 / 0.1, n_draws)[:, None]
    alpha = np.abs(rng.normal(0, 2.0, n_draws))[:, None]
    phi = np.abs(rng.normal(0, 2.0, n_draws))[:, None]
    theta = rng.gamma(mu * alpha, 1 / alpha, (n_draws, n_entities))
    lam = rng.gamma(phi, theta / phi)
    counts = rng.poisson(np.minimum(lam, 1e12))
    return np.mean((counts >= low) & (counts <= high), axis=1)


@pytest.mark.slow
@needs_pystan
def test_prior_check_agrees_with_an_independent_simulation(tmp_path: Path, capsys) -> None:
    out = tmp_path / "prior"
    draws = 1000
    code = main(["prior-check", str(EXAMPLE_CSV), "--window-col", "window", "--engine",
                 "pystan", "--draws", str(draws), "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["prior_check.json", "prior_predictive.png"]
    check = json.loads((out / "prior_check.json").read_text())
    assert check["n_draws"] == draws
    observed = pd.read_csv(EXAMPLE_CSV)["count"]
    assert (check["observed_min"], check["observed_max"]) == (observed.min(), observed.max())
    assert "share in 0-50" in printed and f"{check['share_0_50']:.1%}" in printed
    assert f"share in the observed range {observed.min()}-{observed.max()}" in printed
    assert f"{check['share_observed_range']:.1%}" in printed
    for key, (low, high) in {"share_0_50": (0, 50),
                             "share_observed_range": (observed.min(), observed.max())}.items():
        shares = _numpy_prior_shares(20_000, 40, seed=1, low=low, high=high)
        # The draws are independent, the entities within a draw are not: the standard error
        # of either overall share is the spread of the per-draw shares over sqrt(draws).
        se = shares.std() * np.sqrt(1 / draws + 1 / len(shares))
        assert abs(check[key] - shares.mean()) < 4 * se, key
    assert check["q05"] <= check["q50"] <= check["q95"] <= check["max"]


# ------------------------------------------------------------------------------------------
# The CmdStan round trip


@pytest.mark.slow
@needs_pystan
def test_report_labels_logic_with_draws_from_pystan(tmp_path: Path) -> None:
    """Exported JSON + label table -> FitResult: labels, data and config come back.

    Not a CmdStan test: the draws are PyStan's, run on the exported JSON itself; reading
    CmdStan's CSVs is tested with real CmdStan output in the test below.
    """
    data_json = tmp_path / "data.json"
    assert main(["export-data", str(EXAMPLE_CSV), "--window-col", "window", "-o",
                 str(data_json)]) == 0
    from ratepool.engines import get_engine
    from ratepool.engines.base import SamplerSettings
    from ratepool.model.program import default_program

    settings = SamplerSettings(chains=2, warmup=200, draws=200, adapt_delta=0.9, seed=3)
    draws = get_engine("pystan").sample(default_program(), json.loads(data_json.read_text()),
                                        settings)
    result = fit_result_from_run(CmdStanRun(draws=draws, settings={}), data_json)
    expected = ratepool.load_counts(EXAMPLE_CSV, window_col="window")
    assert list(result.idata.posterior["entity"].values) == list(expected.labels)
    np.testing.assert_array_equal(result.data.y, expected.y)
    np.testing.assert_array_equal(result.idata.posterior["theta"].values, draws.variables["theta"])
    assert result.config.n_chains == 2 and result.config.n_samples == 200
    assert result.entity_summary().index.tolist() == list(expected.labels)


@pytest.mark.slow
@pytest.mark.cmdstan
@pytest.mark.skipif(find_cmdstan() is None, reason=CMDSTAN_SKIP_REASON)
def test_report_from_real_cmdstan_output(tmp_path: Path) -> None:
    import cmdstanpy

    from ratepool.model.program import default_program

    data_json = tmp_path / "run" / "data.json"
    assert main(["export-data", str(EXAMPLE_CSV), "--window-col", "window", "-o",
                 str(data_json)]) == 0
    stan_file = tmp_path / "hierarchical_negbinom.stan"
    stan_file.write_text(default_program().code)
    model = cmdstanpy.CmdStanModel(stan_file=str(stan_file))
    run = model.sample(data=str(data_json), chains=2, iter_warmup=300, iter_sampling=300,
                       seed=7, adapt_delta=0.9, output_dir=str(tmp_path / "csv"),
                       show_progress=False)
    files = [str(f) for f in run.runset.csv_files]  # in chain order
    out = tmp_path / "results"
    # The data JSON is found through the path CmdStan recorded in the CSV header.
    assert main(["report", "--from-cmdstan-csv", *files, "--out", str(out), "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == (set(FILES.values()) - {FILES["prior_check"]}) \
        | (PLOTS - {"prior_predictive.png"})
    idata = az.from_netcdf(str(out / FILES["idata"]))
    expected = ratepool.load_counts(EXAMPLE_CSV, window_col="window")
    assert list(idata.posterior["entity"].values) == list(expected.labels)
    np.testing.assert_allclose(idata.posterior["mu"].values.ravel(),
                               run.stan_variable("mu").ravel())
    np.testing.assert_allclose(idata.posterior["theta"].values.reshape(-1, 40),
                               run.stan_variable("theta"))
    diagnostics = json.loads((out / FILES["diagnostics"]).read_text())
    assert set(diagnostics) == DIAGNOSTIC_KEYS
    assert diagnostics["divergences"] == int(run.method_variables()["divergent__"].sum())
    record = json.loads((out / FILES["run"]).read_text())
    assert record["source"] == "cmdstan-csv" and record["cmdstan"]["seed"] == 7
    assert record["config"]["n_samples"] == 300 and record["config"]["target_accept"] == 0.9
