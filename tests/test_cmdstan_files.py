"""Reading real CmdStan 2.35 output of ratepool's program back, where CmdStan is not installed.

The CSVs in ``fixtures/cmdstan-2.35`` and ``fixtures/cmdstan-2.35-50abbe5`` (both programs:
base, every count option, bytes, temporal) were written by CmdStan itself (see their READMEs).
The draws ratepool reports are checked against the CSV columns read with pandas, independently
of the cmdstanpy reader ratepool uses.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.cli.main import main
from ratepool.engines.cmdstan import CONTINUOUS_SIG_FIGS, EXACT_SIG_FIGS, output_sig_figs
from ratepool.engines.cmdstan_csv import read_cmdstan_csv
from ratepool.errors import DataError
from ratepool.model.program import default_program
from ratepool.outputs.plots import PLOT_FILES
from ratepool.outputs.results import BYTES_FILE, COEFFICIENTS_FILE, FILES, load_inference_data
from ratepool.outputs.temporal_plots import TEMPORAL_FILES
from ratepool.workflow.cmdstan_files import read_stan_data

from .conftest import CMDSTAN_FIXTURES as FIXTURES
from .conftest import EXAMPLE_CSV, ROOT

PLOTS = {"trace.png", "posterior.png", "posterior_predictive.png", "entity_rates.png"}


def _csv_columns(path: Path) -> pd.DataFrame:
    """The draws of a CmdStan CSV read directly with pandas (warmup rows included)."""
    return pd.read_csv(path, comment="#")


def _stack(frames: list[pd.DataFrame], name: str, size: int | None = None) -> np.ndarray:
    """(chain, draw[, index]) array of a scalar column or columns ``name.1..name.size``."""
    columns = [name] if size is None else [f"{name}.{i}" for i in range(1, size + 1)]
    values = np.stack([frame[columns].to_numpy() for frame in frames])
    return values[..., 0] if size is None else values


def test_report_from_the_centred_run(run_dir: Path) -> None:
    files = ["centred/out_1.csv", "centred/out_2.csv"]
    out = run_dir / "results"
    assert main(["report", "--from-cmdstan-csv", *files, "--out", str(out), "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == \
        (set(FILES.values()) - {FILES["prior_check"]}) | PLOTS
    idata = load_inference_data(out / FILES["idata"])
    example = ratepool.load_counts(EXAMPLE_CSV, window_col="window")  # what was exported
    assert list(idata.posterior["entity"].values) == list(example.labels)
    frames = [_csv_columns(run_dir / f) for f in files]
    n_entities, n_rows = example.n_entities, example.n_windows_total
    np.testing.assert_array_equal(idata.posterior["mu"].values, _stack(frames, "mu"))
    np.testing.assert_array_equal(idata.posterior["theta"].values,
                                  _stack(frames, "theta", n_entities))
    np.testing.assert_array_equal(idata.posterior_predictive["y_rep"].values,
                                  _stack(frames, "y_rep", n_rows))
    assert idata.posterior_predictive["y_rep"].dtype == np.int64
    np.testing.assert_array_equal(idata.log_likelihood["y"].values,
                                  _stack(frames, "log_lik", n_rows))
    np.testing.assert_array_equal(idata.observed_data["y"].values, example.y)
    diagnostics = json.loads((out / FILES["diagnostics"]).read_text())
    assert diagnostics["divergences"] == int(_stack(frames, "divergent__").sum())
    summary = pd.read_csv(out / FILES["entities"])
    assert summary["entity"].astype(str).tolist() == [str(v) for v in example.labels]
    record = json.loads((out / FILES["run"]).read_text())
    assert record["source"] == "cmdstan-csv"
    assert record["cmdstan"]["seed"] == 42 and record["cmdstan"]["model"] == \
        "hierarchical_negbinom_model"
    assert {key: record["config"][key] for key in
            ("n_samples", "n_tune", "n_chains", "target_accept", "random_seed",
             "parameterization")} == {"n_samples": 100, "n_tune": 300, "n_chains": 2,
                                      "target_accept": 0.9, "random_seed": 42,
                                      "parameterization": "centered"}
    assert record["engine_versions"]["stan"] == "2.35.0"
    # The CSVs do not say which source was compiled: recorded as unknown, not as ours.
    assert record["stan_program"] == {"file": None, "sha256": None}


def test_report_from_the_noncentred_run_with_saved_warmup(run_dir: Path) -> None:
    out = run_dir / "results"
    program = default_program().path
    assert main(["report", "--from-cmdstan-csv", "noncentred/out_1.csv", "--labels",
                 "data.labels.csv", "--program", str(program), "--out", str(out),
                 "--quiet"]) == 0
    idata = load_inference_data(out / FILES["idata"])
    frame = _csv_columns(run_dir / "noncentred" / "out_1.csv")
    assert len(frame) == 400  # 300 saved warmup draws, then 100 draws
    draws = frame.iloc[300:]
    assert idata.posterior["mu"].shape == (1, 100)
    np.testing.assert_array_equal(idata.posterior["mu"].values[0], draws["mu"].to_numpy())
    theta = draws[[f"theta_from_raw.{i}" for i in range(1, 41)]].to_numpy()
    np.testing.assert_array_equal(idata.posterior["theta"].values[0], theta)
    assert "theta_raw" not in idata.posterior
    example = ratepool.load_counts(EXAMPLE_CSV, window_col="window")
    assert list(idata.posterior["entity"].values) == list(example.labels)
    record = json.loads((out / FILES["run"]).read_text())
    assert record["config"]["parameterization"] == "non_centered"
    assert record["config"]["n_samples"] == 100 and record["cmdstan"]["seed"] == 7
    assert record["stan_program"] == {"file": program.name, "sha256": default_program().sha256}


@pytest.mark.parametrize(("edit", "message"), [
    (lambda values: values.pop("entity_predictions"), "has no field 'entity_predictions'"),
    (lambda values: values.update(zero_inflated=0), "has field(s) ['zero_inflated']"),
    (lambda values: values.update(K=values["K"] + 1), "inconsistent field(s) ['K']"),
], ids=["missing-field", "extra-field", "inconsistent"])
def test_a_data_json_of_another_layout_is_refused(run_dir: Path, capsys, edit,
                                                  message: str) -> None:
    """A program whose data block changed makes older exports unreadable: say so clearly."""
    path = run_dir / "data.json"
    values = json.loads(path.read_text())
    edit(values)
    path.write_text(json.dumps(values))
    with pytest.raises(DataError) as caught:
        read_stan_data(path)
    assert message in str(caught.value) and "ratepool export-data" in str(caught.value)
    assert main(["report", "--from-cmdstan-csv", "centred/out_1.csv", "--quiet",
                 "--out", str(run_dir / "results")]) == 2
    assert message in capsys.readouterr().err
    assert not (run_dir / "results").exists()


def test_csvs_of_another_data_json_are_refused(run_dir: Path, capsys) -> None:
    """Non-centred CSVs given with the centred run's data JSON: their outputs differ."""
    assert main(["report", "--from-cmdstan-csv", "noncentred/out_1.csv", "--data",
                 "data.json", "--quiet", "--out", str(run_dir / "results")]) == 2
    error = capsys.readouterr().err
    assert "not a run of ratepool's program" in error and "theta_from_raw" in error


def test_files_of_two_runs_are_refused(run_dir: Path) -> None:
    with pytest.raises(DataError, match="not the output of one run"):
        read_cmdstan_csv([run_dir / "centred" / "out_1.csv", run_dir / "noncentred" / "out_1.csv"])


def test_cmdstan_prints_integral_values_short() -> None:
    """What the choice of output digits rests on (see `output_sig_figs`): in CmdStan's own CSVs
    the counts are written as plain integers, only non-integral values carry the digits."""
    with gzip.open(FIXTURES / "centred" / "out_1.csv.gz", "rt") as handle:
        frame = pd.read_csv(handle, comment="#", dtype=str)
    counts = frame[[c for c in frame.columns if c.startswith(("y_rep.", "y_pred.", "y_new"))]]
    assert counts.stack().str.fullmatch(r"\d+").all()
    assert frame["mu"].str.contains(r"\.").all()


def test_output_digits_follow_the_counts() -> None:
    small = {"y": [0, 3, 12], "entity_total": [15.0, 0.0]}
    assert output_sig_figs(small) == CONTINUOUS_SIG_FIGS
    assert output_sig_figs({"y": [], "entity_total": [2.0e9]}) == 13  # 2e12 has 13 digits
    assert output_sig_figs({"y": [], "entity_total": [1.0e18]}) == EXACT_SIG_FIGS


def test_export_with_every_option_is_read_back_as_the_same_data(tmp_path: Path) -> None:
    """export-data with exposure, covariates (numeric and categorical) and zero-inflation writes
    the rows and the entity covariates; read_stan_data rebuilds the same data (exposures,
    covariate encoding) and the same Stan data, which is what 'report' needs."""
    from ratepool.model.simulate import simulate_counts

    frame = simulate_counts(n_entities=6, windows=(2, 5), mu=3.0, alpha=1.0, phi=2.0, seed=4,
                            exposure=(0.5, 5.0), covariate_effects={"x1": 0.1},
                            zero_inflation=0.3).frame
    frame["arm"] = np.where(frame["entity"].isin(["entity-001", "entity-004"]), "a", "b")
    source = tmp_path / "rows.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "run" / "data.json"
    assert main(["export-data", str(source), "--window-col", "window", "--exposure-col",
                 "exposure", "--covariates", "x1,arm", "--zero-inflation", "-o", str(out)]) == 0
    values = json.loads(out.read_text())
    assert values["has_exposure"] == 1 and values["zero_inflation"] == 1 and values["P"] == 2
    assert values["N"] == len(frame)
    data, read_values = read_stan_data(out)
    original = ratepool.load_counts(source, window_col="window", exposure_col="exposure",
                                    covariates=["x1", "arm"])
    np.testing.assert_array_equal(data.exposure, original.exposure)
    assert data.covariates.names == original.covariates.names == ("x1", "arm[b]")
    np.testing.assert_array_equal(data.covariates.scaled, original.covariates.scaled)
    assert list(data.labels) == list(original.labels)
    assert read_values == values


def test_expected_outputs_follow_the_options() -> None:
    """What a run of the program with the options must hold: beta[P], pi, and no entity-total
    log likelihood with grouped statistics (its law has no closed form there)."""
    from ratepool.workflow.cmdstan_run import _expected_outputs

    base = {"J": 3, "N": 0, "non_centered": 0, "obs_predictions": 0, "entity_predictions": 1}
    assert _expected_outputs(base)["log_lik_entity"] == (3,)
    options = _expected_outputs({**base, "G": 4, "P": 2, "zero_inflation": 1})
    assert options["beta"] == (2,) and options["pi"] == (1,)
    assert "log_lik_entity" not in options
    # Zero-inflated (centred): the rates through log_theta_events, log_g and neg_log_u.
    zi = _expected_outputs({**base, "G": 4, "P": 0, "zero_inflation": 1,
                            "entity_total": [0, 5, 0]})
    assert zi["log_theta_events"] == (1,) and zi["log_g"] == zi["neg_log_u"] == (2,)
    assert zi["theta_from_raw"] == (3,) and "theta" not in zi


# --------------------------------------------------------------------------------------------
# Runs of both programs at commit 50abbe5 (fixtures/cmdstan-2.35-50abbe5)

#: Per run: the source data and load_counts options 'export-data' was given, the chains kept.
RUNS = {
    "base": ("example_counts.csv", {}, 1),
    "options": ("options_example.csv", {"exposure_col": "exposure", "covariates": ["x1", "x2"]},
                1),
    "bytes": ("bytes_example.csv", {"bytes_col": "bytes"}, 2),
    "temporal": ("temporal_example.csv", {}, 2),
}
#: Per run: the files beyond those of every results folder.
EXTRA_FILES = {
    "base": set(),
    "options": {COEFFICIENTS_FILE, PLOT_FILES["coefficients"]},
    "bytes": {BYTES_FILE},
    "temporal": set(TEMPORAL_FILES.values()),
}
#: Per run: posterior variable -> (its dims after chain and draw, the CSV's column stem).
POSTERIOR = {
    "base": {},
    "options": {"beta": (("covariate",), "beta"), "pi": ((), "pi")},
    "bytes": {"m0": ((), "m0"), "tau": ((), "tau"), "sigma_w": ((), "sigma_w"),
              "sigma_e": ((), "sigma_e"), "m": (("entity",), "m"), "m_new": ((), "m_new")},
    "temporal": {"rho": ((), "rho"), "s": ((), "s"), "sigma": ((), "sigma"),
                 "lambda": (("obs",), "lambda")},
}


def _csv_values(frames: list[pd.DataFrame], stem: str, dims: tuple[str, ...],
                sizes: dict[str, int]) -> np.ndarray:
    """(chain, draw[, index]) values of a CSV output; a size-1 array counts as a scalar."""
    if not dims:
        name = stem if stem in frames[0] else f"{stem}.1"
        return np.stack([frame[name].to_numpy() for frame in frames])
    return _stack(frames, stem, sizes[dims[0]])


def _rate_stem(frames: list[pd.DataFrame], stem: str) -> str:
    """The CSV's column stem of ``stem``: a zero-inflated run of the static program prints the
    entity rates as ``theta_from_raw`` (it samples them in other coordinates)."""
    if stem == "theta" and "theta.1" not in frames[0] and "theta_from_raw.1" in frames[0]:
        return "theta_from_raw"
    return stem


@pytest.mark.parametrize("run", list(RUNS))
def test_report_reads_back_every_program(runs_50abbe5: Path, run: str) -> None:
    """'report --from-cmdstan-csv' on real CmdStan output of each program and option set:
    the results folder of that program, the entity labels of the exported data, and draws
    equal to the CSV's text."""
    source, options, chains = RUNS[run]
    files = [f"{run}/out_{chain}.csv" for chain in range(1, chains + 1)]
    out = runs_50abbe5 / "results"
    assert main(["report", "--from-cmdstan-csv", *files, "--out", str(out), "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == \
        (set(FILES.values()) - {FILES["prior_check"]}) | PLOTS | EXTRA_FILES[run]
    original = ratepool.load_counts(ROOT / "data" / source, window_col="window", **options)
    idata = load_inference_data(out / FILES["idata"])
    assert list(idata.posterior["entity"].values) == list(original.labels)
    frames = [_csv_columns(runs_50abbe5 / f) for f in files]
    sizes = {"entity": original.n_entities, "obs": original.n_windows_total,
             "covariate": len(options.get("covariates", ()))}
    variables = {"mu": ((), "mu"), "theta": (("entity",), "theta"), **POSTERIOR[run]}
    # A program that saw exposure / exposure_scale (recorded in its data JSON) prints rates per
    # that internal unit; the InferenceData holds them per the user's unit: CSV / scale.
    data_json = json.loads((runs_50abbe5 / run / "data.json").read_text())
    scale = float(data_json.get("exposure_scale", 1.0))
    for name, (dims, stem) in variables.items():
        values = idata.posterior[name]
        assert values.dims == ("chain", "draw", *dims), name
        assert values.shape == (chains, 100, *(sizes[d] for d in dims)), name
        expected = _csv_values(frames, _rate_stem(frames, stem), dims, sizes)
        np.testing.assert_array_equal(values.to_numpy(),
                                      expected / scale if name in ("mu", "theta") else expected,
                                      err_msg=name)
    assert "z" not in idata.posterior  # the temporal program's latent normals are dropped
    y_rep = idata.posterior_predictive["y_rep"]
    assert y_rep.dims == ("chain", "draw", "obs") and y_rep.dtype == np.int64
    np.testing.assert_array_equal(y_rep.to_numpy(), _stack(frames, "y_rep", sizes["obs"]))
    np.testing.assert_array_equal(idata.log_likelihood["y"].to_numpy(),
                                  _stack(frames, "log_lik", sizes["obs"]))
    record = json.loads((out / FILES["run"]).read_text())
    assert record["config"]["temporal"] == ("ar1" if run == "temporal" else None)
    diagnostics = json.loads((out / FILES["diagnostics"]).read_text())
    assert diagnostics["divergences"] == int(_stack(frames, "divergent__").sum())
    if run == "temporal":
        assert record["cmdstan"]["model"] == "temporal_negbinom_model"
    else:
        # Static rows are in the source file's order, as a fit keeps them.
        np.testing.assert_array_equal(idata.observed_data["y"].to_numpy(), original.y)


def test_bytes_run_rebuilds_the_bytes_and_their_summary(runs_50abbe5: Path) -> None:
    out = runs_50abbe5 / "results"
    files = ["bytes/out_1.csv", "bytes/out_2.csv"]
    assert main(["report", "--from-cmdstan-csv", *files, "--out", str(out), "--quiet"]) == 0
    original = ratepool.load_counts(ROOT / "data" / "bytes_example.csv", window_col="window",
                                    bytes_col="bytes")
    idata = load_inference_data(out / FILES["idata"])
    np.testing.assert_array_equal(idata.observed_data["bytes"].to_numpy(),
                                  original.window_bytes)
    frames = [_csv_columns(runs_50abbe5 / f) for f in files]
    n_rows, n_entities = original.n_windows_total, original.n_entities
    np.testing.assert_array_equal(idata.posterior_predictive["bytes_rep"].to_numpy(),
                                  _stack(frames, "bytes_rep", n_rows))
    np.testing.assert_array_equal(idata.log_likelihood["bytes"].to_numpy(),
                                  _stack(frames, "bytes_log_lik", n_rows))
    summary = pd.read_csv(out / BYTES_FILE, index_col="entity")
    assert summary.index.astype(str).tolist() == [str(v) for v in original.labels]
    m = _stack(frames, "m", n_entities)
    # Written with pandas' shortest round-trip text: equal to the CSV's draws' mean up to the
    # last bits of the float sum.
    np.testing.assert_allclose(summary["m_mean"].to_numpy(), m.mean(axis=(0, 1)), rtol=1e-12)
    spread = _stack(frames, "sigma_w", 1) ** 2 + _stack(frames, "sigma_e", 1) ** 2
    np.testing.assert_allclose(summary["mean_mean"].to_numpy(), np.exp(m).mean(axis=(0, 1)),
                               rtol=1e-12)
    np.testing.assert_allclose(summary["median_mean"].to_numpy(),
                               np.exp(m - spread / 2).mean(axis=(0, 1)), rtol=1e-12)
    events = original.y > 0
    windows = np.bincount(original.entity_index[events], minlength=n_entities)
    np.testing.assert_array_equal(summary["windows_with_events"].to_numpy(), windows)
    config = (out / FILES["config"]).read_text()
    assert 'bytes_col = "bytes"' in config


def test_temporal_run_rebuilds_the_windows_and_the_forecast(runs_50abbe5: Path) -> None:
    """The temporal JSON holds gaps, not windows: each entity's windows come back as days since
    its first window (the source's dates), and the forecast table follows from the CSV."""
    out = runs_50abbe5 / "results"
    files = ["temporal/out_1.csv", "temporal/out_2.csv"]
    assert main(["report", "--from-cmdstan-csv", *files, "--out", str(out), "--quiet"]) == 0
    source = pd.read_csv(ROOT / "data" / "temporal_example.csv", parse_dates=["window"])
    source = source.sort_values(["entity", "window"], kind="stable")
    days = (source["window"] - source.groupby("entity")["window"].transform("min")).dt.days
    forecast = pd.read_csv(out / TEMPORAL_FILES["forecast"], index_col="entity")
    last = days.groupby(source["entity"]).max()
    assert forecast.index.tolist() == last.index.tolist()
    np.testing.assert_array_equal(forecast["last_window"].to_numpy(), last.to_numpy())
    frames = [_csv_columns(runs_50abbe5 / f) for f in files]
    n_entities = source["entity"].nunique()
    y_next = _stack(frames, "y_next", n_entities).reshape(-1, n_entities)
    np.testing.assert_allclose(forecast["y_next_mean"].to_numpy(), y_next.mean(axis=0),
                               rtol=1e-12)
    lam = _stack(frames, "lambda", len(source)).reshape(-1, len(source))
    rows = np.r_[np.flatnonzero(np.diff(pd.factorize(source["entity"])[0])), len(source) - 1]
    np.testing.assert_allclose(forecast["lambda_last_mean"].to_numpy(),
                               lam[:, rows].mean(axis=0), rtol=1e-12)
    population = pd.read_csv(out / FILES["population"], index_col=0)
    assert {"rho", "s", "sigma"} <= set(population.index)


@pytest.mark.parametrize(("csvs", "data", "program"), [
    ("temporal", "base", "stan/temporal_negbinom.stan"),
    ("base", "temporal", "stan/hierarchical_negbinom.stan"),
])
def test_csvs_of_the_other_program_are_refused_naming_both(runs_50abbe5: Path, capsys,
                                                           csvs: str, data: str,
                                                           program: str) -> None:
    assert main(["report", "--from-cmdstan-csv", f"{csvs}/out_1.csv", "--data",
                 f"{data}/data.json", "--quiet", "--out", str(runs_50abbe5 / "results")]) == 2
    error = capsys.readouterr().err
    assert f"the CSVs are a run of {program}" in error
    assert "stan/temporal_negbinom.stan" in error and "stan/hierarchical_negbinom.stan" in error
    assert not (runs_50abbe5 / "results").exists()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda values: values.update(s_sd="wide"), "invalid settings"),
    (lambda values: values.update(K=3), "has field(s) ['K']"),
    (lambda values: values.update(y=[values["y"][0] + 1, *values["y"][1:]]),
     "'total_count' column differs"),
], ids=["bad-setting", "extra-field", "other-rows"])
def test_an_edited_temporal_json_is_refused_naming_its_program(runs_50abbe5: Path, edit,
                                                               message: str) -> None:
    path = runs_50abbe5 / "temporal" / "data.json"
    values = json.loads(path.read_text())
    edit(values)
    path.write_text(json.dumps(values))
    with pytest.raises(DataError) as caught:
        read_stan_data(path)
    assert message in str(caught.value)
    assert "stan/temporal_negbinom.stan" in str(caught.value) or "label table" in str(
        caught.value)


def test_a_bytes_json_without_rows_is_refused(runs_50abbe5: Path) -> None:
    path = runs_50abbe5 / "bytes" / "data.json"
    values = json.loads(path.read_text())
    values.update(N=0, entity=[], y=[], bytes=[], obs_predictions=0)
    path.write_text(json.dumps(values))
    with pytest.raises(DataError, match="bytes factor on without the rows"):
        read_stan_data(path)


def test_a_bytes_json_of_the_single_spread_model_is_refused(runs_50abbe5: Path) -> None:
    """The bytes factor's data changed (issue 17, item 8): a JSON with the old per-entity
    bytes fields and the bytes on is refused, naming the fields; with the bytes off the old
    fields mean nothing and the base run's JSON (which has them) reads back (see
    test_report_reads_back_every_program)."""
    path = runs_50abbe5 / "bytes" / "data.json"
    values = json.loads(path.read_text())
    for name in [name for name in values if name.startswith("bytes_group") or name == "BG"]:
        del values[name]
    values.update(bytes_windows=[1] * values["J"], bytes_log_mean=[0.0] * values["J"],
                  bytes_log_ss=[0.0] * values["J"], sigma_b_sd=1.5)
    path.write_text(json.dumps(values))
    with pytest.raises(DataError, match="bytes_log_mean.*export-data"):
        read_stan_data(path)
    base = json.loads((runs_50abbe5 / "base" / "data.json").read_text())
    assert {"bytes_windows", "sigma_b_sd"} <= set(base) and base["has_bytes"] == 0
    read_stan_data(runs_50abbe5 / "base" / "data.json")


def test_export_with_bytes_keeps_the_rows_and_reads_back(tmp_path: Path, capsys) -> None:
    """Without per-row outputs the static JSON drops the rows, but a bytes export keeps them
    (they carry the bytes): read_stan_data rebuilds the same bytes and the same Stan data; the
    export then names the report command."""
    source = ROOT / "data" / "bytes_example.csv"
    config = tmp_path / "config.toml"
    config.write_text("obs_predictions = false\n")
    out = tmp_path / "data.json"
    assert main(["export-data", str(source), "--window-col", "window", "--bytes-col", "bytes",
                 "--config", str(config), "-o", str(out)]) == 0
    assert "ratepool report --from-cmdstan-csv" in capsys.readouterr().out
    values = json.loads(out.read_text())
    assert values["obs_predictions"] == 0 and values["has_bytes"] == 1
    original = ratepool.load_counts(source, window_col="window", bytes_col="bytes")
    assert values["N"] == original.n_windows_total
    data, read_values = read_stan_data(out)
    np.testing.assert_array_equal(data.window_bytes, original.window_bytes)
    assert read_values == values


def test_temporal_export_names_the_report_command(tmp_path: Path, capsys) -> None:
    assert main(["export-data", str(ROOT / "data" / "temporal_example.csv"), "--window-col",
                 "window", "--temporal", "ar1", "-o", str(tmp_path / "data.json")]) == 0
    printed = capsys.readouterr().out
    assert "./temporal_negbinom sample" in printed
    assert "ratepool report --from-cmdstan-csv" in printed
