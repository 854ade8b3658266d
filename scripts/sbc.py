"""Simulation-based calibration of ratepool's model, default priors and sampler (Talts et al. 2018).

Each simulation draws mu, alpha, phi and theta from the prior (numpy), simulates a dataset of
8 entities x 6 windows, fits it with PyStan, thins the posterior to 99 draws and ranks each true
value among them. Prints, as Markdown: a uniformity test per parameter, the rank histograms and
the share of fits with divergences by where in the prior the truth fell.

    python scripts/sbc.py --simulations 500 --seed 2018 --out sbc_ranks.csv
    python scripts/sbc.py --from-csv sbc_ranks.csv          # summarise a saved run again

A run can be split: ``--first 500 --simulations 500`` runs simulations 500..999 of the same
seed, and ``--from-csv a.csv --from-csv b.csv`` summarises the parts together.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ratepool.errors import RatepoolError
from ratepool.files import atomic_write_text
from ratepool.posterior.diagnostics import MAX_TREEDEPTH
from ratepool.posterior.sbc_checks import (
    TEMPORAL_REGIONS,
    divergence_breakdown,
    fit_ran,
    rank_histograms,
    uniformity_tests,
)
from ratepool.workflow.sbc import SBCPrior, SBCSettings, run_sbc
from ratepool.workflow.sbc_temporal import run_temporal_sbc

BARS = " ▁▂▃▄▅▆▇█"
_ENGINE_NAMES = {"pystan": "PyStan", "cmdstan": "CmdStan"}
#: Rewrite the CSV after this many simulations, so that a long run's progress is kept.
SAVE_EVERY = 25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SBCSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulations", type=int, default=200, help="number of simulations")
    parser.add_argument("--first", type=int, default=0, help="index of the first simulation")
    parser.add_argument("--seed", type=int, default=2018, help="master seed")
    parser.add_argument("--out", type=Path, help="write the per-simulation table (CSV) here")
    parser.add_argument("--from-csv", type=Path, action="append", default=[],
                        help="summarise saved table(s) instead of running (give the run's "
                             "sampler options too: they label the report)")
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=CSV",
                        help="compare saved runs (same seed, other settings) by region")
    parser.add_argument("--bins", type=int, default=20, help="rank histogram bins")
    parser.add_argument("--entities", type=int, default=defaults.n_entities)
    parser.add_argument("--windows", type=int, default=defaults.n_windows)
    parser.add_argument("--chains", type=int, default=defaults.n_chains)
    parser.add_argument("--warmup", type=int, default=defaults.n_tune)
    parser.add_argument("--samples", type=int, default=defaults.n_samples,
                        help="post-warmup draws per chain, before thinning")
    parser.add_argument("--ranked-draws", type=int, default=defaults.n_ranked_draws,
                        help="L, thinned draws each truth is ranked among")
    parser.add_argument("--target-accept", type=float, default=defaults.target_accept)
    parser.add_argument("--parameterization", default=defaults.parameterization,
                        choices=["centered", "non_centered"])
    parser.add_argument("--exposure", action="store_true",
                        help="model option: per-window exposures (log-uniform in [0.25, 4])")
    parser.add_argument("--covariates", type=int, default=0, metavar="P",
                        help="model option: P entity covariates (beta ranked)")
    parser.add_argument("--zero-inflation", action="store_true",
                        help="model option: structural zeros (pi ranked)")
    parser.add_argument("--temporal", action="store_true",
                        help="the AR(1) temporal program (rho, the stationary sd s and sigma "
                             "ranked; consecutive windows; no other option)")
    parser.add_argument("--engine", default="pystan", choices=["pystan", "cmdstan"],
                        help="Stan engine (CmdStan is faster; labels the report)")
    return parser.parse_args(argv)


def _options_text(settings: SBCSettings, temporal: bool = False) -> str:
    if temporal:
        return ", temporal AR(1) program"
    options = ((["exposure"] if settings.exposure else [])
               + ([f"{settings.n_covariates} covariate(s)"] if settings.n_covariates else [])
               + (["zero-inflation"] if settings.zero_inflation else []))
    return f", options: {', '.join(options)}" if options else ""


def sparkline(counts: np.ndarray) -> str:
    top = max(int(counts.max()), 1)
    return "".join(BARS[int(round(c / top * (len(BARS) - 1)))] for c in counts)


def markdown_table(frame: pd.DataFrame, formats: dict[str, str]) -> str:
    columns = [frame.index.name or ""] + list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for index in frame.index:
        cells = [str(index)]
        for column in frame.columns:
            value, spec = frame.at[index, column], formats.get(column, "")
            if pd.isna(value):
                cells.append("–")
            else:
                cells.append(format(int(value) if spec == "d" else value, spec))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(table: pd.DataFrame, settings: SBCSettings, args: argparse.Namespace,
           seconds: float | None) -> str:
    n = len(table)
    ran = fit_ran(table)
    divergent = ran & (table["divergences"] > 0)
    lines = [
        f"SBC: {n} simulations (seed {args.seed}), {settings.n_entities} entities x "
        f"{settings.n_windows} windows each; {_ENGINE_NAMES[args.engine]}, {settings.n_chains} chains x "
        f"({settings.n_tune} warmup + {settings.n_samples} draws), target_accept "
        f"{settings.target_accept}, {settings.parameterization} parameterization"
        f"{_options_text(settings, args.temporal)}; each truth "
        f"ranked among {settings.n_ranked_draws} thinned draws (ranks 0..{settings.n_ranked_draws}).",
        "",
        f"- fits that ran: {int(ran.sum())} of {n}; failed: {int((~ran).sum())}",
        f"- fits with at least one divergence: {int(divergent.sum())} of {int(ran.sum())} "
        f"({divergent.sum() / max(int(ran.sum()), 1):.1%}); divergent transitions: "
        f"{table.loc[ran, 'divergences'].sum() / (int(ran.sum()) * settings.n_chains * settings.n_samples):.3%} "
        f"of all, median {table.loc[divergent, 'divergences'].median():.0f} per divergent fit",
        f"- fits hitting the maximum tree depth ({MAX_TREEDEPTH}) at least once: "
        f"{int((table.loc[ran, 'max_treedepth_hits'] > 0).sum())}",
        f"- fits with R-hat > 1.01 on mu, alpha, phi"
        f"{', rho, s or sigma' if args.temporal else ''}: "
        f"{int((table.loc[ran, 'r_hat_max'] > 1.01).sum())}; median smallest bulk ESS "
        f"{table.loc[ran, 'ess_bulk_min'].median():.0f} of "
        f"{settings.n_chains * settings.n_samples} draws",
    ]
    lines.append(f"- simulate + fit time: {table['seconds'].sum() / 60:.1f} min in all, median "
                 f"{table['seconds'].median():.1f} s per fit"
                 + (f" (wall time {seconds / 60:.1f} min)" if seconds is not None else ""))
    tests = uniformity_tests(table, settings.n_ranked_draws, args.bins)
    tests = tests.rename(columns={"chi2": f"chi2 ({args.bins - 1} df)"})
    lines += ["", "### Rank uniformity per parameter", "",
              f"chi2: Pearson test of {args.bins} equal rank bins; tail: share of ranks in the "
              "outer 10% on either side (0.2 expected) and its one-sided binomial p-value; "
              "mean rank scaled to 0..1 (0.5 expected).", "",
              markdown_table(tests, {"n": "d", f"chi2 ({args.bins - 1} df)": ".1f",
                                     "chi2_p": ".3f", "tail_share": ".3f", "tail_p": ".3f",
                                     "mean_rank": ".3f"})]
    histograms = rank_histograms(table, settings.n_ranked_draws, args.bins)
    lines += ["", "### Rank histograms", "",
              f"{args.bins} bins from rank 0 (left) to {settings.n_ranked_draws} (right); "
              f"{int(ran.sum()) / args.bins:.1f} fits per bin expected.", "",
              "| parameter | histogram | counts per bin |", "|---|---|---|"]
    for name, counts in histograms.items():
        lines.append(f"| {name} | `{sparkline(counts)}` | {' '.join(map(str, counts))} |")
    breakdown = divergence_breakdown(table, TEMPORAL_REGIONS if args.temporal else None)
    lines += ["", "### Divergences by where the prior draw fell", "",
              markdown_table(breakdown, {"simulations": "d", "prior_share": ".3f",
                                         "failed": "d", "divergent_fits": "d",
                                         "divergent_share": ".3f", "share_of_divergent": ".3f",
                                         "median_ess_bulk_min": ".0f"})]
    if divergent.sum():
        among = uniformity_tests(table[divergent], settings.n_ranked_draws, 4)
        lines += ["", f"Ranks of the {int(divergent.sum())} divergent fits alone (4 bins): "
                  + ", ".join(f"{name} tail share {row.tail_share:.2f} (p {row.tail_p:.2f})"
                              for name, row in among.iterrows())]
    failed = table.loc[~ran, ["simulation", "true_mu", "true_alpha", "true_phi", "error"]]
    if len(failed):
        lines += ["", "### Failed fits", ""]
        for _, row in failed.iterrows():
            temporal = (f", rho={table.at[_, 'true_rho']:.3g}, sigma="
                        f"{table.at[_, 'true_sigma']:.3g}, s={table.at[_, 'true_s']:.3g}"
                        if args.temporal else "")
            lines.append(f"- simulation {row['simulation']}: mu={row['true_mu']:.3g}, "
                         f"alpha={row['true_alpha']:.3g}, phi={row['true_phi']:.3g}"
                         f"{temporal}: {row['error']}")
    return "\n".join(lines)


def compare(runs: list[str]) -> str:
    """Fits with divergences (and their share) per region, one column per saved run."""
    columns = {}
    for spec in runs:
        label, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--compare expects LABEL=CSV, got {spec!r}")
        table = pd.read_csv(path, dtype={"error": str})
        table["error"] = table["error"].fillna("")
        breakdown = divergence_breakdown(table)
        columns[label] = [f"{int(row.divergent_fits)}/{int(row.simulations - row.failed)} "
                          f"({row.divergent_share:.1%})" if row.simulations > row.failed
                          else "–" for row in breakdown.itertuples()]
        index = breakdown.index
    frame = pd.DataFrame(columns, index=index)
    return markdown_table(frame, {})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("ratepool.workflow.sbc").setLevel(logging.INFO)
    logging.getLogger("ratepool.workflow.sbc_temporal").setLevel(logging.INFO)
    try:
        settings = SBCSettings(
            n_entities=args.entities, n_windows=args.windows, n_ranked_draws=args.ranked_draws,
            n_chains=args.chains, n_tune=args.warmup, n_samples=args.samples,
            target_accept=args.target_accept, parameterization=args.parameterization,
            exposure=args.exposure, n_covariates=args.covariates,
            zero_inflation=args.zero_inflation)
        if args.temporal and (args.exposure or args.covariates or args.zero_inflation):
            raise SystemExit("--temporal takes no other model option")
        if args.compare:
            print(compare(args.compare))
            return 0
        if args.from_csv:
            table = pd.concat([pd.read_csv(path, dtype={"error": str})
                               for path in args.from_csv], ignore_index=True)
            table["error"] = table["error"].fillna("")
            print(report(table, settings, args, seconds=None))
            return 0
        rows: list[dict] = []

        def save(row: dict) -> None:
            rows.append(row)
            if args.out is not None and len(rows) % SAVE_EVERY == 0:
                atomic_write_text(args.out, pd.DataFrame(rows).to_csv(index=False))

        start = time.perf_counter()
        if args.temporal:
            table = run_temporal_sbc(args.simulations, seed=args.seed, settings=settings,
                                     engine=args.engine, progress=save,
                                     first_simulation=args.first)
        else:
            table = run_sbc(args.simulations, seed=args.seed, settings=settings,
                            simulator_prior=SBCPrior(), model_prior=SBCPrior(), progress=save,
                            first_simulation=args.first, engine=args.engine)
        seconds = time.perf_counter() - start
        if args.out is not None:
            atomic_write_text(args.out, table.to_csv(index=False))
        print(report(table, settings, args, seconds))
    except RatepoolError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
