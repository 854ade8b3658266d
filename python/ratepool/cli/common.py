"""What the command-line subcommands share: exit codes, reading the config and data from the
arguments, the phase progress lines, and printing and writing a fit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from ratepool._testhooks import pause_at
from ratepool.data.counts import CountData
from ratepool.data.tables import load_counts
from ratepool.errors import RatepoolError
from ratepool.model.config import ModelConfig
from ratepool.model.event_bytes import BYTES_PARAMETERS
from ratepool.posterior.diagnostic_table import format_diagnostics
from ratepool.posterior.fit_result import FitResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENGINE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class Phases:
    """One line per phase on stderr, unless quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"ratepool: {message}", file=sys.stderr, flush=True)


def config_from_args(args: argparse.Namespace) -> ModelConfig:
    config = ModelConfig.from_toml(args.config) if args.config else ModelConfig()
    overrides = {}
    if getattr(args, "seed", None) is not None:
        overrides["random_seed"] = args.seed
    if getattr(args, "engine", None) is not None:
        overrides["engine"] = args.engine
    if getattr(args, "threads_per_chain", None) is not None:
        overrides["threads_per_chain"] = args.threads_per_chain
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


def load_data(args: argparse.Namespace, config: ModelConfig | None = None) -> CountData:
    pause_at("load")
    config = config or config_from_args(args)
    return load_counts(args.data, entity_col=args.entity_col, count_col=args.count_col,
                       window_col=args.window_col,
                       allow_duplicate_windows=args.allow_duplicate_windows,
                       exposure_col=config.exposure_col,
                       covariates=list(config.covariates) or None,
                       bytes_col=config.bytes_col)


def load_data_for_fit(args: argparse.Namespace, config: ModelConfig) -> CountData:
    """The data file for a fit under ``config``: aggregated by DuckDB without holding its rows,
    unless an option needs them (`ratepool.workflow.fit.read_for_fit`)."""
    from ratepool.workflow.fit import read_for_fit

    pause_at("load")
    return read_for_fit(args.data, config, window_col=args.window_col,
                        entity_col=args.entity_col, count_col=args.count_col,
                        allow_duplicate_windows=args.allow_duplicate_windows)


def data_options(args: argparse.Namespace) -> dict[str, object]:
    return {"entity_col": args.entity_col, "count_col": args.count_col,
            "window_col": args.window_col,
            "allow_duplicate_windows": args.allow_duplicate_windows,
            "exposure_col": getattr(args, "exposure_col", None),
            "covariates": getattr(args, "covariates", None),
            **({"bytes_col": args.bytes_col} if getattr(args, "bytes_col", None) else {})}


def command_line(argv: Sequence[str] | None) -> list[str]:
    return ["ratepool", *(sys.argv[1:] if argv is None else list(argv))]


def out_dir(args: argparse.Namespace, default: Path) -> Path:
    """The results folder to write, checked before any long computation starts."""
    out = Path(args.out) if args.out else default
    if out.exists() and not out.is_dir():
        raise RatepoolError(f"--out {out} exists and is not a directory; choose another --out")
    return out


def print_result(result: FitResult) -> None:
    data = result.data
    print(f"engine: {result.engine}   entities: {data.n_entities}   "
          f"windows: {data.n_windows_total}")
    print("\nPopulation parameters (posterior mean, sd):")
    shown = [name for name in result.model.population_parameters
             if name != "beta" and name not in BYTES_PARAMETERS]  # (printed in their tables)
    for name in shown:
        if name in result.idata.posterior:
            draws = result.idata.posterior[name]
            print(f"  {name:<6}{float(draws.mean()):10.3f}{float(draws.std()):10.3f}")
    print("\nDiagnostics:")
    print(format_diagnostics(result.diagnostics()))
    if "coefficients" in result.model.tables:
        print("\nCovariate effects (rate ratio per unit on the original scale, 94% HDI):")
        with pd.option_context("display.width", 120):
            print(result.coefficients()[["per_unit", "rate_ratio_mean", "rate_ratio_hdi_low",
                                         "rate_ratio_hdi_high", "beta_mean", "beta_sd"]]
                  .round(3).to_string())
    print("\nEntities:")
    with pd.option_context("display.max_rows", 200, "display.width", 120):
        print(result.entity_summary().round(3).to_string())
    if "bytes" in result.model.tables:
        print_bytes(result)


def print_bytes(result: FitResult) -> None:
    posterior = result.idata.posterior
    print("\nBytes per event: log(bytes / events) ~ Normal(m_i - v/2, sqrt(v)), "
          "v = sigma_w^2 + log1p(expm1(sigma_e^2) / events), m_i ~ Normal(m0, tau) "
          "(posterior mean, sd):")
    for name in ("m0", "tau", "sigma_w", "sigma_e"):
        draws = posterior[name]
        print(f"  {name:<8}{float(draws.mean()):10.3f}{float(draws.std()):10.3f}")
    print("Mean bytes per event exp(m_i) and median size of one event "
          "exp(m_i - (sigma_w^2 + sigma_e^2)/2), 94% HDI:")
    with pd.option_context("display.max_rows", 200, "display.width", 120):
        print(result.bytes_summary()[["windows_with_events", "observed_mean", "mean_mean",
                                      "mean_hdi_low", "mean_hdi_high", "median_mean",
                                      "median_hdi_low", "median_hdi_high"]]
              .round(1).to_string())


def write_folder(out: Path, result: FitResult, record: dict) -> None:
    from ratepool.outputs.report import render_report
    from ratepool.outputs.results import write_results

    write_results(out, result, record=record, render_report=render_report)
    print(f"\nResults: {out}/ (open {out / 'report.html'})")
