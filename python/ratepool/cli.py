"""The ``ratepool`` command line. Printing happens here, not in the library.

Subcommands: ``fit``, ``prior-check``, ``export-data``, ``report --from-cmdstan-csv``,
``diagnose`` and ``score``; ``ratepool SUBCOMMAND --help`` explains each option. Exit codes: 0 success, 1 a
file could not be written or read (or ``diagnose --strict`` found a problem), 2 invalid
arguments, data or config, 3 the Stan engine is missing or failed (compile, sampling), 130
interrupted.

The console script and ``python -m ratepool`` enter through `ratepool.__main__`, which installs
the Ctrl-C handler before this module's imports (and overrides an inherited "ignore SIGINT";
its docstring says why); `main` turns Ctrl-C in any later phase into ``interrupted``, exit 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import __version__
from ._testhooks import pause_at
from .config import ENGINES, ModelConfig
from .data import CountData, load_counts
from .diagnostics import PROBLEM, format_diagnostics
from .engines.cmdstan_files import (
    fit_result_from_run,
    labels_path_for,
    read_cmdstan_csv,
    write_stan_data,
)
from .errors import EngineError, RatepoolError
from .files import file_sha256
from .fit import DEFAULT_PRIOR_DRAWS, FitResult, fit, sample_prior, stan_data
from .inference import PARAMETERS, TEMPORAL_PARAMETERS
from .program import StanProgram

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENGINE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

_EPILOG = """exit codes: 0 success; 1 a file could not be read or written (diagnose --strict: a
diagnostic graded Problem or no convergence); 2 invalid arguments, data or config; 3 the Stan
engine is missing or failed (compiling or sampling); 130 interrupted. Run 'ratepool SUBCOMMAND
--help' for the options of each subcommand."""

_FIT_EXAMPLE = """example:
  ratepool fit data/example_counts.csv --window-col window --out results/example
  ratepool fit counts.parquet --entity-col host --count-col alerts --config my.toml --quiet

The results folder holds inference_data.nc (arviz), entity_summary.csv, diagnostics.json,
run.json, config.toml, PNG plots and report.html. It is replaced only when the new one is
complete: a failed or interrupted run leaves an earlier folder as it was."""

_EXPORT_EXAMPLE = """example (run the compiled program with CmdStan, then read its output back):
  ratepool export-data data/example_counts.csv --window-col window -o run/data.json
  ./hierarchical_negbinom sample num_warmup=1000 num_samples=2000 num_chains=4 \\
      adapt delta=0.9 data file=run/data.json random seed=42 output file=run/out.csv
  ratepool report --from-cmdstan-csv run/out_*.csv --out results/cmdstan-run"""


# --------------------------------------------------------------------------------------------
# Parser


def _add_data_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("data", metavar="DATA",
                         help="CSV or Parquet file with one row per entity and time window")
    command.add_argument("--entity-col", default="entity", metavar="NAME",
                         help="column holding the entity label (default: entity)")
    command.add_argument("--count-col", default="count", metavar="NAME",
                         help="column holding the event count of the window (default: count)")
    command.add_argument("--window-col", default=None, metavar="NAME",
                         help="column naming the window (optional); a repeated (entity, window) "
                              "pair is then an error")
    command.add_argument("--allow-duplicate-windows", action="store_true",
                         help="with --window-col: accept repeated (entity, window) pairs, each "
                              "row counting as its own window")
    command.add_argument("--exposure-col", default=None, metavar="COL",
                         help="column with each window's exposure (population, devices, "
                              "hours; positive): the mean count is exposure x rate, so the "
                              "rates are per unit of exposure (config: [model] exposure_col)")
    command.add_argument("--covariates", default=None, metavar="COL[,COL...]",
                         help="entity covariate columns, constant within each entity; text "
                              "columns are one-hot encoded against their first level "
                              "(config: [model] covariates)")
    command.add_argument("--bytes-col", default=None, metavar="COL",
                         help="column with the bytes each window moved (0 where the count is "
                              "0): adds a joint model of log bytes per event, partially pooled "
                              "per entity (config: [model] bytes_col)")


def _add_config_options(command: argparse.ArgumentParser, *, engine: bool = True,
                        seed: bool = True) -> None:
    command.add_argument("--config", metavar="FILE", default=None,
                         help="TOML config file with [sampling], [priors] and [model] tables "
                              "(see examples/config.toml); unknown keys are errors. Default: "
                              "the ModelConfig defaults (4 chains, 1000 warmup, 2000 draws, "
                              "adapt delta 0.9, seed 42)")
    if engine:
        command.add_argument("--engine", choices=ENGINES, default=None,
                             help="Stan engine; overrides the config file. auto = CmdStan if "
                                  "found, else PyStan (default: the config's, auto)")
    command.add_argument("--temporal", choices=["ar1"], default=None,
                         help="ar1: each entity's log rate drifts from window to window as an "
                              "AR(1) around its long-run rate (needs --window-col; integer or "
                              "date windows). Prints rho and sigma; the results folder adds "
                              "the latent rate paths and next-window forecasts "
                              "(config: [model] temporal)")
    command.add_argument("--zero-inflation", action="store_true", default=None,
                         help="zero-inflated likelihood: a share pi of windows are structural "
                              "zeros (config: [model] zero_inflation)")
    if seed:
        command.add_argument("--seed", type=int, default=None, metavar="N",
                             help="random seed (0 to 2^31-1); overrides the config file "
                                  "(default: the config's, 42)")


def _add_out(command: argparse.ArgumentParser, what: str, default: str) -> None:
    command.add_argument("--out", metavar="DIR", default=None,
                         help=f"{what} (default: {default}); replaced only once the new one is "
                              "complete")


def _add_quiet(command: argparse.ArgumentParser) -> None:
    command.add_argument("--quiet", "-q", action="store_true",
                         help="no progress bar and no progress lines; results and errors only")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="ratepool",
        description="Partially pooled event rates per entity: a hierarchical "
                    "Gamma-Negative-Binomial model fitted with Stan.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"ratepool {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    raw = argparse.RawDescriptionHelpFormatter

    fit_cmd = commands.add_parser(
        "fit", help="fit the model to a CSV or Parquet file and write a results folder",
        description="Fit the model, print the population parameters, graded diagnostics and\n"
                    "the entity table, and write the results folder.",
        epilog=_FIT_EXAMPLE, formatter_class=raw)
    _add_data_options(fit_cmd)
    _add_config_options(fit_cmd)
    _add_out(fit_cmd, "results folder to write", "results/<DATA file name without extension>")
    fit_cmd.add_argument("--prior-draws", type=int, default=DEFAULT_PRIOR_DRAWS, metavar="N",
                         help="exact prior predictive draws stored with the fit and checked in "
                              f"the report; 0 for none (default: {DEFAULT_PRIOR_DRAWS})")
    _add_quiet(fit_cmd)
    fit_cmd.set_defaults(handler=_run_fit)

    prior_cmd = commands.add_parser(
        "prior-check", help="prior predictive draws: are the counts the priors imply plausible?",
        description="Draw counts from the priors alone (exact ancestral sampling) for the "
                    "entities in DATA, print the share of counts in 0-50 and their quantiles, "
                    "and write prior_check.json and prior_predictive.png.")
    _add_data_options(prior_cmd)
    _add_config_options(prior_cmd)
    prior_cmd.add_argument("--draws", type=int, default=DEFAULT_PRIOR_DRAWS, metavar="N",
                           help=f"number of prior draws (default: {DEFAULT_PRIOR_DRAWS})")
    _add_out(prior_cmd, "folder for the check's JSON and plot",
             "results/<DATA file name without extension>-prior-check")
    _add_quiet(prior_cmd)
    prior_cmd.set_defaults(handler=_run_prior_check)

    export_cmd = commands.add_parser(
        "export-data", help="write the data JSON for running the Stan program with CmdStan",
        description="Write exactly the JSON that the compiled Stan program's 'data file=' "
                    "takes (priors and switches from the config included), and the entity "
                    "label <-> Stan index table next to it.",
        epilog=_EXPORT_EXAMPLE, formatter_class=raw)
    _add_data_options(export_cmd)
    _add_config_options(export_cmd, engine=False, seed=False)
    export_cmd.add_argument("-o", "--output", required=True, metavar="FILE",
                            help="the data JSON to write, e.g. data.json")
    export_cmd.add_argument("--labels", metavar="FILE", default=None,
                            help="the label table to write (default: <FILE stem>.labels.csv "
                                 "next to the JSON)")
    export_cmd.add_argument("--prior-only", action="store_true",
                            help="set prior_only = 1: the program then ignores the likelihood "
                                 "(run it with CmdStan's fixed_param sampler for prior draws)")
    export_cmd.set_defaults(handler=_run_export)

    report_cmd = commands.add_parser(
        "report", help="build a results folder from CmdStan's own output CSVs",
        description="Read the output CSVs of a CmdStan 'sample' run of the program on a JSON "
                    "written by 'ratepool export-data', restore the entity labels and write "
                    "the same results folder as 'ratepool fit'.")
    report_cmd.add_argument("--from-cmdstan-csv", nargs="+", required=True, metavar="FILE",
                            dest="csv_files",
                            help="CmdStan output CSV files, one per chain (chain order as given)")
    report_cmd.add_argument("--data", metavar="FILE", default=None,
                            help="the data JSON CmdStan read (default: the 'data file' recorded "
                                 "in the CSV header, relative to the current directory or the "
                                 "CSV's)")
    report_cmd.add_argument("--labels", metavar="FILE", default=None,
                            help="the label table written by export-data (default: <data JSON "
                                 "stem>.labels.csv next to the JSON)")
    report_cmd.add_argument("--program", metavar="FILE", default=None,
                            help="the .stan file CmdStan compiled, recorded (name, SHA-256) in "
                                 "run.json; CmdStan's CSVs name the model but hold no source "
                                 "(default: recorded as unknown)")
    _add_out(report_cmd, "results folder to write", "results/<data JSON name>-cmdstan")
    _add_quiet(report_cmd)
    report_cmd.set_defaults(handler=_run_report)

    diagnose_cmd = commands.add_parser(
        "diagnose", help="print the graded diagnostics of a saved results folder",
        description="Print the diagnostics (R-hat, ESS, divergences, graded Good / Warning / "
                    "Problem, with advice) stored in a results folder.")
    diagnose_cmd.add_argument("results_dir", metavar="RESULTS_DIR",
                              help="a folder written by 'ratepool fit' or 'ratepool report'")
    diagnose_cmd.add_argument("--strict", action="store_true",
                              help="exit with code 1 if any diagnostic is graded Problem or "
                                   "the chains did not converge")
    diagnose_cmd.set_defaults(handler=_run_diagnose)
    _add_score_command(commands)
    return parser


_SCORE_EXAMPLE = """example:
  ratepool fit data/example_counts.csv --window-col window --out results/example
  ratepool score results/example data/example_spiked.csv -o scores.csv

Writes scores.csv (one row per input row: predictive mean and interval, p_upper = P(Y >= y),
p_lower = P(Y <= y), two-sided p_value and mid-p, randomised PIT, anomaly), and next to it
scores.summary.json (the rule and counts) and scores.anomalies.png. Entities the fit has not
seen are scored with the population predictive and marked unseen. Column names default to the
ones the fit was run with (run.json)."""


def _add_score_command(commands: argparse._SubParsersAction) -> None:
    score_cmd = commands.add_parser(
        "score", help="score new windows against a saved fit: tail probabilities, anomalies",
        description="Score each row of NEW_DATA (CSV or Parquet, one row per entity and\n"
                    "window) against the posterior predictive of a saved fit: exact tail\n"
                    "probabilities averaged over the posterior draws, a predictive interval,\n"
                    "and an anomaly flag decided at a false discovery rate (Benjamini-Hochberg)\n"
                    "or a per-window threshold.",
        epilog=_SCORE_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    score_cmd.add_argument("results_dir", metavar="RESULTS_DIR",
                           help="a folder written by 'ratepool fit' or 'ratepool report'")
    score_cmd.add_argument("new_data", metavar="NEW_DATA",
                           help="CSV or Parquet file of new rows to score")
    score_cmd.add_argument("-o", "--output", required=True, metavar="FILE",
                           help="scored table to write (.csv, or .parquet)")
    for name, what in (("entity", "the entity label"), ("count", "the event count"),
                       ("window", "the window label (optional)")):
        score_cmd.add_argument(f"--{name}-col", default=None, metavar="NAME",
                               help=f"column holding {what} (default: the fit's, from run.json; "
                                    f"else {name if name != 'window' else 'none'})")
    rule = score_cmd.add_mutually_exclusive_group()
    rule.add_argument("--fdr", type=float, default=None, metavar="Q",
                      help="flag anomalies by Benjamini-Hochberg at false discovery rate Q "
                           "over all rows (default: 0.01)")
    rule.add_argument("--per-window-alpha", type=float, default=None, metavar="ALPHA",
                      help="instead flag every row whose two-sided p-value is <= ALPHA (no "
                           "correction for the number of rows)")
    score_cmd.add_argument("--interval", type=float, default=0.9, metavar="P",
                           help="probability of the predictive interval (default: 0.9)")
    score_cmd.add_argument("--top", type=int, default=20, metavar="N",
                           help="rows printed and shown in the figure (default: 20)")
    score_cmd.add_argument("--seed", type=int, default=0, metavar="N",
                           help="seed of the randomised PIT column (default: 0)")
    _add_quiet(score_cmd)
    score_cmd.set_defaults(handler=_run_score)


# --------------------------------------------------------------------------------------------
# Helpers


class _Phases:
    """One line per phase on stderr, unless quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"ratepool: {message}", file=sys.stderr, flush=True)


def _config(args: argparse.Namespace) -> ModelConfig:
    config = ModelConfig.from_toml(args.config) if args.config else ModelConfig()
    overrides = {}
    if getattr(args, "seed", None) is not None:
        overrides["random_seed"] = args.seed
    if getattr(args, "engine", None) is not None:
        overrides["engine"] = args.engine
    if getattr(args, "zero_inflation", None):
        overrides["zero_inflation"] = True
    if getattr(args, "temporal", None):
        overrides["temporal"] = args.temporal
    if getattr(args, "exposure_col", None):
        overrides["exposure_col"] = args.exposure_col
    if getattr(args, "covariates", None):
        overrides["covariates"] = tuple(c.strip() for c in args.covariates.split(",")
                                        if c.strip())
    if getattr(args, "bytes_col", None):
        overrides["bytes_col"] = args.bytes_col
    return config.replace(**overrides) if overrides else config


def _load(args: argparse.Namespace, config: ModelConfig | None = None) -> CountData:
    pause_at("load")
    config = config or _config(args)
    return load_counts(args.data, entity_col=args.entity_col, count_col=args.count_col,
                       window_col=args.window_col,
                       allow_duplicate_windows=args.allow_duplicate_windows,
                       exposure_col=config.exposure_col,
                       covariates=list(config.covariates) or None,
                       bytes_col=config.bytes_col)


def _data_options(args: argparse.Namespace) -> dict[str, object]:
    return {"entity_col": args.entity_col, "count_col": args.count_col,
            "window_col": args.window_col,
            "allow_duplicate_windows": args.allow_duplicate_windows,
            "exposure_col": getattr(args, "exposure_col", None),
            "covariates": getattr(args, "covariates", None),
            **({"bytes_col": args.bytes_col} if getattr(args, "bytes_col", None) else {})}


def _command(argv: Sequence[str] | None) -> list[str]:
    return ["ratepool", *(sys.argv[1:] if argv is None else list(argv))]


def _out_dir(args: argparse.Namespace, default: Path) -> Path:
    """The results folder to write, checked before any long computation starts."""
    out = Path(args.out) if args.out else default
    if out.exists() and not out.is_dir():
        raise RatepoolError(f"--out {out} exists and is not a directory; choose another --out")
    return out


def _print_result(result: FitResult) -> None:
    data = result.data
    print(f"engine: {result.engine}   entities: {data.n_entities}   "
          f"windows: {data.n_windows_total}")
    print("\nPopulation parameters (posterior mean, sd):")
    for name in PARAMETERS + ("pi",) + TEMPORAL_PARAMETERS:
        if name in result.idata.posterior:
            draws = result.idata.posterior[name]
            print(f"  {name:<6}{float(draws.mean()):10.3f}{float(draws.std()):10.3f}")
    print("\nDiagnostics:")
    print(format_diagnostics(result.diagnostics()))
    if data.covariates is not None:
        print("\nCovariate effects (rate ratio per unit on the original scale, 94% HDI):")
        with pd.option_context("display.width", 120):
            print(result.coefficients()[["per_unit", "rate_ratio_mean", "rate_ratio_hdi_low",
                                         "rate_ratio_hdi_high", "beta_mean", "beta_sd"]]
                  .round(3).to_string())
    print("\nEntities:")
    with pd.option_context("display.max_rows", 200, "display.width", 120):
        print(result.entity_summary().round(3).to_string())
    if data.window_bytes is not None:
        _print_bytes(result)


def _print_bytes(result: FitResult) -> None:
    posterior = result.idata.posterior
    print("\nBytes per event: log(bytes / events) ~ Normal(m_i, sigma_b), m_i ~ Normal(m0, "
          "tau) (posterior mean, sd):")
    for name in ("m0", "tau", "sigma_b"):
        draws = posterior[name]
        print(f"  {name:<8}{float(draws.mean()):10.3f}{float(draws.std()):10.3f}")
    print("Median bytes per event exp(m_i) and mean exp(m_i + sigma_b^2/2), 94% HDI:")
    with pd.option_context("display.max_rows", 200, "display.width", 120):
        print(result.bytes_summary()[["windows_with_events", "observed_median", "median_mean",
                                      "median_hdi_low", "median_hdi_high", "mean_mean",
                                      "mean_hdi_low", "mean_hdi_high"]]
              .round(1).to_string())


def _write(out: Path, result: FitResult, record: dict) -> None:
    from .report import render_report  # matplotlib and netCDF load only when needed
    from .results import write_results

    write_results(out, result, record=record, render_report=render_report)
    print(f"\nResults: {out}/ (open {out / 'report.html'})")


# --------------------------------------------------------------------------------------------
# Subcommands


def _run_fit(args: argparse.Namespace) -> int:
    from .results import run_record

    phase = _Phases(args.quiet)
    config = _config(args)
    if args.prior_draws < 0:
        raise RatepoolError(f"--prior-draws must be 0 or more, got {args.prior_draws}")
    phase(f"reading {args.data}")
    data = _load(args, config)
    out = _out_dir(args, Path("results") / Path(args.data).stem)
    phase(f"sampling {config.n_chains} chains x ({config.n_tune} warmup + {config.n_samples} "
          f"draws) for {data.n_entities} entities, {data.n_windows_total} windows")
    result = fit(data, config, prior_draws=args.prior_draws, show_progress=not args.quiet)
    _print_result(result)
    record = run_record(result, source="fit", data_file=args.data,
                        data_options=_data_options(args), command=_command(args.argv))
    _write(out, result, record)
    return EXIT_OK


def _run_prior_check(args: argparse.Namespace) -> int:
    from .plots import PLOT_FILES, png_bytes, prior_check_figure
    from .prior import prior_predictive_check
    from .results import atomic_directory, dump_json

    phase = _Phases(args.quiet)
    if args.draws < 1:
        raise RatepoolError(f"--draws must be at least 1, got {args.draws}")
    config = _config(args)
    out = _out_dir(args, Path("results") / f"{Path(args.data).stem}-prior-check")
    phase(f"reading {args.data}")
    data = _load(args, config)
    phase(f"drawing {args.draws} prior predictive draws for {data.n_entities} entities")
    idata = sample_prior(data, config, draws=args.draws)
    check = prior_predictive_check(idata, data)
    rows = [("share in 0-50", f"{check['share_0_50']:.1%}"),
            (f"share in the observed range {check['observed_min']}-{check['observed_max']}",
             f"{check['share_observed_range']:.1%}"),
            ("share zero", f"{check['share_zero']:.1%}"),
            *((key, f"{check[key]:.4g}") for key in ("q05", "q25", "q50", "q75", "q95", "q99",
                                                     "max"))]
    width = max(len(label) for label, _ in rows)
    print(f"Prior predictive check ({check['n_draws']} draws x {data.n_entities} entities, "
          "count in one window):")
    for label, value in rows:
        print(f"  {label:<{width}}{value:>10}")
    with atomic_directory(out) as staging:
        (staging / "prior_check.json").write_text(
            dump_json({**check, "config": config.to_dict(), "data_file": args.data}),
            encoding="utf-8")
        (staging / PLOT_FILES["prior"]).write_bytes(
            png_bytes(prior_check_figure(idata, check, data.y)))
    print(f"\nWritten: {out / 'prior_check.json'}, {out / PLOT_FILES['prior']}")
    return EXIT_OK


def _run_export(args: argparse.Namespace) -> int:
    config = _config(args)
    data = _load(args, config)
    if config.temporal is not None:
        from .temporal import temporal_stan_data

        values = temporal_stan_data(data, config, prior_only=args.prior_only)
    else:
        # With exposure, zero-inflation or bytes the rows go into the JSON too, so that
        # 'report' can rebuild the data (per-window exposures, zeros and bytes) from it.
        values = stan_data(data, config, prior_only=args.prior_only,
                           keep_rows=(data.exposure is not None or config.zero_inflation
                                      or data.window_bytes is not None))
    json_path, labels_path = write_stan_data(values, data, args.output, args.labels)
    shape = (f"K = {values['K']} distinct counts" if "K" in values
             else "rows ordered by entity and window")
    print(f"Wrote {json_path} (J = {values['J']} entities, N = {values['N']} rows, "
          f"{shape}) and the label table {labels_path}.")
    sampler = "sample algorithm=fixed_param" if args.prior_only else (
        f"sample num_warmup={config.n_tune} num_samples={config.n_samples} "
        f"num_chains={config.n_chains} adapt delta={config.target_accept}")
    print("Run the compiled program with CmdStan, e.g.\n"
          f"  ./{'temporal' if config.temporal else 'hierarchical'}_negbinom {sampler} "
          f"data file={json_path} "
          f"random seed={config.random_seed} output file=out.csv")
    if not args.prior_only:
        print("then read its output back with\n"
              "  ratepool report --from-cmdstan-csv out_*.csv "
              f"--data {json_path} --labels {labels_path}")
    return EXIT_OK


def _resolve_data_json(args: argparse.Namespace, recorded: str | None) -> Path:
    if args.data:
        return Path(args.data)
    if recorded is None:
        raise RatepoolError("the CSV header records no data file; give the data JSON with --data")
    candidates = [Path(recorded), Path(args.csv_files[0]).parent / recorded]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise RatepoolError(f"the data file recorded in the CSV header, {recorded}, was not found "
                        f"(looked at {[str(c) for c in candidates]}); give it with --data")


def _program(path: str) -> StanProgram:
    try:
        return StanProgram.from_file(path)
    except (OSError, UnicodeDecodeError) as error:
        raise RatepoolError(f"--program {path} cannot be read: {error}") from None


def _run_report(args: argparse.Namespace) -> int:
    from .results import run_record

    phase = _Phases(args.quiet)
    phase(f"reading {len(args.csv_files)} CmdStan CSV file(s)")
    run = read_cmdstan_csv(args.csv_files)
    data_json = _resolve_data_json(args, run.data_file)
    labels = Path(args.labels) if args.labels else labels_path_for(data_json)
    result = fit_result_from_run(run, data_json, labels)
    if args.program:
        result.program = _program(args.program)
    _print_result(result)
    record = run_record(
        result, source="cmdstan-csv", data_file=data_json,
        data_options={"labels_file": str(labels), "labels_sha256": file_sha256(labels)},
        command=_command(args.argv),
        extra={"cmdstan": {
            "files": [{"file": str(p), "sha256": file_sha256(p)} for p in run.files],
            "seed": run.setting("seed"),
            "thin": run.setting("thin", 1),
            "model": run.setting("model"),
            "stanc_version": run.setting("stanc_version"),
            "settings": run.settings,
        }},
    )
    out = _out_dir(args, Path("results") / f"{data_json.stem}-cmdstan")
    _write(out, result, record)
    return EXIT_OK


def _run_diagnose(args: argparse.Namespace) -> int:
    from .results import load_results

    saved = load_results(args.results_dir)
    run = saved.run
    print(f"{saved.path}: engine {run.get('engine')}, {run.get('config', {}).get('n_chains')} "
          f"chains x {run.get('config', {}).get('n_samples')} draws, seed {run.get('seed')}, "
          f"data {run.get('data', {}).get('file')}")
    print(format_diagnostics(saved.diagnostics))
    failed = (not saved.diagnostics["converged"]
              or PROBLEM in saved.diagnostics["grades"].values())
    return EXIT_FAILED if args.strict and failed else EXIT_OK


def _run_score(args: argparse.Namespace) -> int:
    from .predictive import PosteriorRates
    from .results import load_results
    from .score import AnomalyRule, score_frame, write_scores

    phase = _Phases(args.quiet)
    rule = AnomalyRule.from_options(args.fdr, args.per_window_alpha)
    if args.top < 1:
        raise RatepoolError(f"--top must be at least 1, got {args.top}")
    saved = load_results(args.results_dir)
    fitted = saved.run.get("data", {})
    columns = {name: getattr(args, f"{name}_col") or fitted.get(f"{name}_col") or default
               for name, default in (("entity", "entity"), ("count", "count"),
                                     ("window", None))}
    phase(f"reading the posterior draws in {saved.path}")
    rates = PosteriorRates.from_idata(saved.inference_data())
    phase(f"scoring {args.new_data} against {rates.n_draws} draws")
    result = score_frame(rates, args.new_data, entity_col=columns["entity"],
                         count_col=columns["count"], window_col=columns["window"],
                         exposure_col=saved.config().exposure_col, rule=rule,
                         interval=args.interval, seed=args.seed)
    paths = write_scores(result, args.output, top=args.top, source={
        "results_dir": str(saved.path), "new_data": str(args.new_data),
        "command": _command(args.argv)})
    summary = result.summary()
    print(f"Scored {summary['rows']} rows against {summary['posterior_draws']} posterior draws; "
          f"{summary['unseen_rows']} rows of {summary['unseen_entities']} entities the fit has "
          "not seen were scored with the population predictive.")
    print(f"Anomaly rule: {rule.describe()}.")
    print(f"Flagged: {summary['anomalies']} ({summary['anomalies_high']} high, "
          f"{summary['anomalies_low']} low).")
    flagged = result.anomalies().head(args.top)
    if len(flagged):
        shown = [c for c in (columns["entity"], columns["window"], columns["count"],
                             "pred_mean", "pred_lower", "pred_upper", "p_value", "direction",
                             "unseen") if c is not None]
        print(f"\nMost surprising flagged rows (up to {args.top}):")
        with pd.option_context("display.width", 120):
            print(flagged[shown].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nWritten: {paths['table']}, {paths['summary']}, {paths['figure']}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# Entry point


class _StderrHandler(logging.Handler):
    """Writes records to the current ``sys.stderr`` (looked up at each record)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _configure_logging(*, quiet: bool) -> None:
    """Show the library's INFO lines (engine choice, compiling, writing) unless quiet, and only
    cmdstanpy's warnings (it logs every chain's start and end at INFO).

    The ``ratepool`` and ``cmdstanpy`` loggers get a handler once per process (cmdstanpy adds
    its own INFO handler only to a logger without one); each call sets their levels, so repeated
    `main` calls in one process honour their own ``--quiet``.
    """
    for name, level in (("ratepool", logging.WARNING if quiet else logging.INFO),
                        ("cmdstanpy", logging.WARNING)):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter(f"{name}: %(message)s"))
            logger.addHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (``sys.argv[1:]`` by default); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        _configure_logging(quiet=getattr(args, "quiet", False))
        return args.handler(args)
    except EngineError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ENGINE
    except RatepoolError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # prefer python -m ratepool: its handler is in place before imports
    from .__main__ import main as _entry

    sys.exit(_entry())
