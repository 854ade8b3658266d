"""``ratepool report`` (also ``--from-cmdstan-csv``), ``diagnose`` and ``score``: commands that
start from a results folder or CmdStan's output."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ratepool.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Phases,
    command_line,
    out_dir,
    print_result,
    write_folder,
)
from ratepool.engines.cmdstan_csv import read_cmdstan_csv
from ratepool.errors import RatepoolError
from ratepool.files import file_sha256
from ratepool.model.program import StanProgram
from ratepool.posterior.diagnostic_table import format_diagnostics
from ratepool.posterior.diagnostics import PROBLEM
from ratepool.workflow.cmdstan_files import labels_path_for
from ratepool.workflow.cmdstan_run import fit_result_from_run


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


def run_report(args: argparse.Namespace) -> int:
    from ratepool.outputs.results import run_record

    phase = Phases(args.quiet)
    phase(f"reading {len(args.csv_files)} CmdStan CSV file(s)")
    run = read_cmdstan_csv(args.csv_files)
    data_json = _resolve_data_json(args, run.data_file)
    labels = Path(args.labels) if args.labels else labels_path_for(data_json)
    result = fit_result_from_run(run, data_json, labels)
    if args.program:
        result.program = _program(args.program)
    print_result(result)
    record = run_record(
        result, source="cmdstan-csv", data_file=data_json,
        data_options={"labels_file": str(labels), "labels_sha256": file_sha256(labels)},
        command=command_line(args.argv),
        extra={"cmdstan": {
            "files": [{"file": str(p), "sha256": file_sha256(p)} for p in run.files],
            "seed": run.setting("seed"),
            "thin": run.setting("thin", 1),
            "model": run.setting("model"),
            "stanc_version": run.setting("stanc_version"),
            "settings": run.settings,
        }},
    )
    out = out_dir(args, Path("results") / f"{data_json.stem}-cmdstan")
    write_folder(out, result, record)
    return EXIT_OK


def run_diagnose(args: argparse.Namespace) -> int:
    from ratepool.outputs.results import load_results

    saved = load_results(args.results_dir)
    run = saved.run
    print(f"{saved.path}: engine {run.get('engine')}, {run.get('config', {}).get('n_chains')} "
          f"chains x {run.get('config', {}).get('n_samples')} draws, seed {run.get('seed')}, "
          f"data {run.get('data', {}).get('file')}")
    print(format_diagnostics(saved.diagnostics))
    failed = (not saved.diagnostics["converged"]
              or PROBLEM in saved.diagnostics["grades"].values())
    return EXIT_FAILED if args.strict and failed else EXIT_OK


def run_score(args: argparse.Namespace) -> int:
    from ratepool.outputs.results import load_results
    from ratepool.outputs.score_files import write_scores
    from ratepool.posterior.anomaly import AnomalyRule
    from ratepool.posterior.score import score_frame
    from ratepool.posterior.temporal_score import posterior_rates

    phase = Phases(args.quiet)
    rule = AnomalyRule.from_options(args.fdr, args.per_window_alpha)
    if args.top < 1:
        raise RatepoolError(f"--top must be at least 1, got {args.top}")
    saved = load_results(args.results_dir)
    fitted = saved.run.get("data", {})
    columns = {name: getattr(args, f"{name}_col") or fitted.get(f"{name}_col") or default
               for name, default in (("entity", "entity"), ("count", "count"),
                                     ("window", None))}
    phase(f"reading the posterior draws in {saved.path}")
    rates = posterior_rates(saved.inference_data())
    phase(f"scoring {args.new_data} against {rates.n_draws} draws")
    result = score_frame(rates, args.new_data, entity_col=columns["entity"],
                         count_col=columns["count"], window_col=columns["window"],
                         exposure_col=saved.config().exposure_col, rule=rule,
                         interval=args.interval, seed=args.seed)
    paths = write_scores(result, args.output, top=args.top, source={
        "results_dir": str(saved.path), "new_data": str(args.new_data),
        "command": command_line(args.argv)})
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
