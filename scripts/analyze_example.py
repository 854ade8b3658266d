"""Reproducible end-to-end analysis of the bundled example data: one command, fixed seed.

    python scripts/analyze_example.py                  # engine: auto (CmdStan if found)
    python scripts/analyze_example.py --engine pystan --out results/example

Regenerates every artefact under OUT (default ``results/example``):

    prior-check/   prior predictive check of the priors in examples/config.toml (JSON + PNG)
    fit/           the results folder of ``ratepool fit`` (netCDF, tables, diagnostics,
                   run record, PNG plots, report.html)
    cmdstan/       data.json + data.labels.csv for running the Stan program with CmdStan
    truth_check.csv  posterior against the true values that simulated the data
                   (data/example_truth.json)

The config is examples/config.toml with seed 42, so two runs with the same engine produce
identical numbers (the run records differ only in their timestamps and timings).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ratepool import cli
from ratepool.files import atomic_write_text
from ratepool.outputs.results import load_results

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "example_counts.csv"
TRUTH = ROOT / "data" / "example_truth.json"
CONFIG = ROOT / "examples" / "config.toml"
SEED = 42


def truth_check(fit_dir: Path) -> pd.DataFrame:
    """Posterior mean and 94% HDI against the true value: mu, alpha, phi, then every theta."""
    truth = json.loads(TRUTH.read_text())
    population = pd.read_csv(fit_dir / "population_summary.csv", index_col="parameter")
    rows = [{"quantity": name, "truth": truth[name],
             "posterior_mean": population.loc[name, "mean"],
             "hdi_low": population.loc[name, "hdi_3%"],
             "hdi_high": population.loc[name, "hdi_97%"], "raw_rate": np.nan}
            for name in ("mu", "alpha", "phi")]
    entities = load_results(fit_dir).entity_summary
    for label, row in entities.iterrows():
        rows.append({"quantity": f"theta[{label}]", "truth": truth["theta"][str(label)],
                     "posterior_mean": row["theta_mean"], "hdi_low": row["theta_hdi_low"],
                     "hdi_high": row["theta_hdi_high"], "raw_rate": row["raw_rate"]})
    table = pd.DataFrame(rows).set_index("quantity")
    table["truth_in_hdi"] = table["truth"].between(table["hdi_low"], table["hdi_high"])
    return table


def print_truth_check(table: pd.DataFrame) -> None:
    theta = table[table.index.str.startswith("theta[")]
    print("\nPosterior against the simulation truth (data/example_truth.json):")
    with pd.option_context("display.width", 120):
        print(table.iloc[:3].drop(columns="raw_rate").round(3).to_string())
    print(f"theta: {theta['truth_in_hdi'].mean():.0%} of the {len(theta)} true entity rates lie "
          "in their 94% HDI")
    print(f"theta: mean |raw rate - truth| {(theta['raw_rate'] - theta['truth']).abs().mean():.3f}"
          f", mean |pooled estimate - truth| "
          f"{(theta['posterior_mean'] - theta['truth']).abs().mean():.3f}")


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["auto", "cmdstan", "pystan"], default="auto",
                        help="Stan engine (default: auto)")
    parser.add_argument("--out", type=Path, default=Path("results") / "example",
                        help="folder for all artefacts (default: results/example)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    common = ["--window-col", "window", "--config", str(CONFIG)]
    quiet = ["--quiet"] if args.quiet else []
    steps = [
        ["prior-check", str(DATA), *common, "--engine", args.engine, "--seed", str(SEED),
         "--out", str(args.out / "prior-check"), *quiet],
        ["fit", str(DATA), *common, "--engine", args.engine, "--seed", str(SEED),
         "--out", str(args.out / "fit"), *quiet],
        ["export-data", str(DATA), *common, "-o", str(args.out / "cmdstan" / "data.json")],
    ]
    for step in steps:
        print(f"\n$ ratepool {' '.join(step)}", flush=True)
        code = cli.main(step)
        if code != 0:
            return code
    table = truth_check(args.out / "fit")
    atomic_write_text(args.out / "truth_check.csv", table.to_csv())
    print_truth_check(table)
    print(f"\nAll artefacts are in {args.out}/; the report is {args.out / 'fit' / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
