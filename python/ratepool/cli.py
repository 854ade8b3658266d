"""The ``ratepool`` command line. Printing happens here, not in the library."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

import pandas as pd

from . import __version__
from .config import ENGINES, ModelConfig
from .data import load_counts
from .diagnostics import format_diagnostics
from .errors import RatepoolError
from .fit import fit

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="ratepool",
        description="Partially pooled event rates per entity (hierarchical Gamma-NegBinomial).",
    )
    parser.add_argument("--version", action="version", version=f"ratepool {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    fit_cmd = commands.add_parser("fit", help="fit the model to a CSV or Parquet file",
                                  description="Fit the model and print diagnostics and the "
                                              "entity table.")
    fit_cmd.add_argument("data", help="CSV or Parquet file, one row per entity and window")
    fit_cmd.add_argument("--entity-col", default="entity", help="entity label column "
                         "(default: entity)")
    fit_cmd.add_argument("--count-col", default="count", help="event count column "
                         "(default: count)")
    fit_cmd.add_argument("--window-col", default=None, help="window column (optional); "
                         "repeated (entity, window) pairs are then an error")
    fit_cmd.add_argument("--engine", choices=ENGINES, default=None,
                         help="Stan engine (default: auto = CmdStan if found, else PyStan)")
    fit_cmd.add_argument("--seed", type=int, default=None, help="random seed (default: 42)")
    fit_cmd.add_argument("--quiet", action="store_true", help="no progress output")
    fit_cmd.set_defaults(handler=_run_fit)
    return parser


def _run_fit(args: argparse.Namespace) -> int:
    config = ModelConfig()
    if args.seed is not None:
        config = config.replace(random_seed=args.seed)
    if args.engine is not None:
        config = config.replace(engine=args.engine)
    data = load_counts(args.data, entity_col=args.entity_col, count_col=args.count_col,
                       window_col=args.window_col)
    result = fit(data, config, show_progress=not args.quiet)
    print(f"engine: {result.engine}   entities: {data.n_entities}   "
          f"windows: {data.n_windows_total}")
    print("\nPopulation parameters (posterior mean, sd):")
    for name in ("mu", "alpha", "phi"):
        draws = result.idata.posterior[name]
        print(f"  {name:<6}{float(draws.mean()):10.3f}{float(draws.std()):10.3f}")
    print("\nDiagnostics:")
    print(format_diagnostics(result.diagnostics()))
    print("\nEntities:")
    with pd.option_context("display.max_rows", 200, "display.width", 120):
        print(result.entity_summary().round(3).to_string())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ratepool`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
                        format="%(message)s")
    for noisy in ("aiohttp", "httpstan", "arviz", "cmdstanpy", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.handler(args)
    except RatepoolError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
