"""``ratepool compare``: fit candidate models to one data file, rank them by PSIS-LOO with
predictive checks, and write the comparison folder (report.html, comparison.csv, checks.csv)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ratepool.cli.common import EXIT_OK, Phases, command_line, config_from_args, out_dir
from ratepool.errors import ConfigError
from ratepool.model.config import ModelConfig
from ratepool.posterior.model_comparison import LOO_UNITS
from ratepool.workflow.compare import CANDIDATE_NAMES

__all__ = ["add_compare_command", "run_compare"]

_EXAMPLE = """example:
  ratepool compare data/options_example.csv --exposure-col exposure --covariates x1,x2 \\
      --candidates all --out results/options-compare
  ratepool compare counts.csv --window-col day --candidates base,temporal --loo window
  ratepool compare counts.csv --config a.toml --config b.toml --out results/a-vs-b

"all": every combination of exposure, covariates and zero-inflation that the options given
allow, and the temporal model (needs --window-col). Candidates the data do not allow are
skipped with the reason; a --config the data cannot serve is refused before compiling."""


def add_compare_command(commands: argparse._SubParsersAction,
                        add_data_options: Callable[[argparse.ArgumentParser], None],
                        add_out: Callable[[argparse.ArgumentParser, str, str], None],
                        add_quiet: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``compare`` with the parser's shared option builders (passed in: the parser
    module imports this one)."""
    command = commands.add_parser(
        "compare", help="fit candidate models and rank them by PSIS-LOO, with predictive checks",
        description="Fit each candidate model the data allow, rank them by PSIS-LOO (ArviZ), "
                    "grade the Pareto k, check zero share, variance-to-mean ratio and largest "
                    "window against the replicated data, and recommend the simplest model "
                    "within 2 standard errors of the best.",
        epilog=_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_options(command)
    which = command.add_mutually_exclusive_group()
    which.add_argument("--candidates", default="all", metavar="NAME[,NAME...]",
                       help=f"named candidates: {', '.join(CANDIDATE_NAMES)} (default: all)")
    which.add_argument("--config", action="append", default=None, metavar="FILE",
                       dest="configs",
                       help="a TOML config per candidate (repeat the option); the label is "
                            "the file name without extension")
    command.add_argument("--sampling-config", metavar="FILE", default=None,
                         help="TOML config whose sampler settings and priors the named "
                              "candidates share (default: the ModelConfig defaults)")
    command.add_argument("--loo", choices=sorted(LOO_UNITS), default="entity",
                         help="what LOO leaves out. entity (default): all windows of an "
                              "entity, scored by their marginal likelihood with the entity's "
                              "rate integrated out: 'is a new entity predicted well?'; it "
                              "checks the whole hierarchical model (population law, "
                              "covariates), and its PSIS estimate is reliable except at "
                              "outlying entities. window: one window of "
                              "a known entity given its rate ('the next window of a known "
                              "entity'); it cannot see entity-level structure once entities "
                              "have many windows, and is the only unit for temporal "
                              "candidates (skipped by entity LOO). The report shows both "
                              "rankings")
    command.add_argument("--engine", choices=("auto", "cmdstan", "pystan"), default=None,
                         help="Stan engine (default: the config's, auto)")
    command.add_argument("--seed", type=int, default=None, metavar="N",
                         help="random seed of every fit (default: the config's, 42)")
    add_out(command, "comparison folder to write", "results/<DATA file name>-compare")
    add_quiet(command)
    command.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from ratepool.outputs.comparison_report import COMPARISON_FILES, write_comparison
    from ratepool.workflow.compare import compare

    phase = Phases(args.quiet)
    args.config = args.sampling_config
    shared = config_from_args(args)
    covariates = [c.strip() for c in (args.covariates or "").split(",") if c.strip()] or None
    if args.configs:
        labels = [Path(p).stem for p in args.configs]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"--config files must have distinct names, got {labels}")
        overrides = {**({"engine": args.engine} if args.engine else {}),
                     **({"random_seed": args.seed} if args.seed is not None else {})}
        candidates: object = {label: ModelConfig.from_toml(p).replace(**overrides)
                              for label, p in zip(labels, args.configs)}
    else:
        candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
    out = out_dir(args, Path("results") / f"{Path(args.data).stem}-compare")
    phase(f"comparing candidates on {args.data}")
    result = compare(args.data, candidates,  # type: ignore[arg-type]
                     config=shared.replace(exposure_col=None, covariates=(), bytes_col=None),
                     entity_col=args.entity_col, count_col=args.count_col,
                     window_col=args.window_col,
                     allow_duplicate_windows=args.allow_duplicate_windows,
                     exposure_col=args.exposure_col, covariates=covariates, unit=args.loo,
                     show_progress=not args.quiet)
    print(result.summary())
    write_comparison(result, out, title=f"ratepool compare: {Path(args.data).name}",
                     record={"command": command_line(args.argv), "data_file": args.data})
    print(f"\nResults: {out}/ (open {out / COMPARISON_FILES['report']}; the ranking is "
          f"{COMPARISON_FILES['table']})")
    return EXIT_OK
