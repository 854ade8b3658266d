"""The ``ratepool`` argument parser: every subcommand, its options and its examples (the docs' CLI
reference is generated from `build_parser`)."""

from __future__ import annotations

import argparse

from ratepool import __version__
from ratepool.cli.compare_command import add_compare_command
from ratepool.cli.fit_commands import run_export, run_fit, run_prior_check
from ratepool.cli.result_commands import run_diagnose, run_report, run_score
from ratepool.model.config import ENGINES
from ratepool.workflow.fit import DEFAULT_PRIOR_DRAWS

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
                              "AR(1) around its median rate (needs --window-col; integer or "
                              "date windows). Prints rho, s and sigma; the results folder adds "
                              "the latent rate paths and next-window forecasts "
                              "(config: [model] temporal)")
    command.add_argument("--zero-inflation", action="store_true", default=None,
                         help="zero-inflated likelihood: a share pi of windows are structural "
                              "zeros (config: [model] zero_inflation)")
    if seed:
        command.add_argument("--seed", type=int, default=None, metavar="N",
                             help="random seed (0 to 2^31-1); overrides the config file "
                                  "(default: the config's, 42)")
    command.add_argument("--threads-per-chain", type=int, default=None, metavar="T",
                         help="threads per chain (CmdStan; the base model's entity sum is "
                              "split over them): for many entities on more cores than chains "
                              "(config: [sampling] threads_per_chain; default 1)")


def _add_out(command: argparse.ArgumentParser, what: str, default: str) -> None:
    command.add_argument("--out", metavar="DIR", default=None,
                         help=f"{what} (default: {default}); replaced only once the new one is "
                              "complete")


def _add_quiet(command: argparse.ArgumentParser) -> None:
    loudness = command.add_mutually_exclusive_group()
    loudness.add_argument("--quiet", "-q", action="store_true",
                          help="no progress bar and no progress lines; results and errors only")
    loudness.add_argument("--verbose", "-v", action="store_true",
                          help="also the compiler's and the sampler's own messages (Stan's "
                               "informational warnings during warmup) and debug lines")


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
    fit_cmd.set_defaults(handler=run_fit)

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
    prior_cmd.set_defaults(handler=run_prior_check)

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
    export_cmd.set_defaults(handler=run_export)

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
    report_cmd.set_defaults(handler=run_report)

    diagnose_cmd = commands.add_parser(
        "diagnose", help="print the graded diagnostics of a saved results folder",
        description="Print the diagnostics (R-hat, ESS, divergences, graded Good / Warning / "
                    "Problem, with advice) stored in a results folder.")
    diagnose_cmd.add_argument("results_dir", metavar="RESULTS_DIR",
                              help="a folder written by 'ratepool fit' or 'ratepool report'")
    diagnose_cmd.add_argument("--strict", action="store_true",
                              help="exit with code 1 if any diagnostic is graded Problem or "
                                   "the chains did not converge")
    diagnose_cmd.set_defaults(handler=run_diagnose)
    _add_score_command(commands)
    add_compare_command(commands, _add_data_options, _add_out, _add_quiet)
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
    score_cmd.set_defaults(handler=run_score)
