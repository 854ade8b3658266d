"""Calibration of `ratepool score` on data simulated from a fit's own posterior predictive.

    python scripts/score_calibration.py [RESULTS_DIR] [--repeats 2000] [--seed 1]

Fits the bundled example (PyStan or CmdStan, 4 chains x 500 draws, seed 123) unless a results
folder is given, then prints three tables (the README quotes them):

1. uniformity: KS test of the randomised PIT (and, for contrast, of the mid-p value's
   non-randomised version, the mid-PIT P(Y < y) + P(Y = y) / 2) on 50 windows per entity plus 5 unseen entities;
2. false discovery rate: over REPEATS anomaly-free data sets of 10 windows per entity, how often
   Benjamini-Hochberg flags anything (with no anomalies that is the FDR), per q;
3. power: 5x and 10x spikes injected into 5% of 200 windows per entity, share flagged at
   q = 0.01, overall and by the entity's posterior mean rate.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

import ratepool
from ratepool.outputs.results import load_results
from ratepool.posterior.predictive import PosteriorRates
from ratepool.posterior.score import score_rows
from ratepool.posterior.score_check import null_flag_rates, predictive_rows, spike_power


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", nargs="?", default=None)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.results_dir:
        rates = PosteriorRates.from_idata(load_results(args.results_dir).inference_data())
        source = args.results_dir
    else:
        data = ratepool.load_counts("data/example_counts.csv", window_col="window")
        fit = ratepool.fit(data, ratepool.ModelConfig(n_chains=4, n_tune=500, n_samples=500,
                                                      random_seed=123))
        rates = PosteriorRates.from_idata(fit.idata)
        source = f"example data, {fit.engine}, 4 x 500 draws, seed 123"
    print(f"fit: {source}; {rates.n_draws} draws, {rates.n_entities} entities\n")

    rng = np.random.default_rng(args.seed)
    frame, _ = predictive_rows(rates, 50, rng, n_new=5)
    table = score_rows(rates, frame["entity"], frame["count"].to_numpy(), seed=args.seed).table
    mid_one_sided = 1 - table["p_upper"] + (table["p_upper"] + table["p_lower"] - 1) / 2
    print(f"1. uniformity on {len(table)} posterior predictive rows "
          f"({int(table['unseen'].sum())} of unseen entities)")
    print("| p-value | KS statistic | KS p |\n|---|---|---|")
    for name, values in (("randomised PIT", table["pit"]),
                         ("mid-PIT P(Y < y) + P(Y = y) / 2 (not randomised)", mid_one_sided)):
        ks = stats.kstest(values, "uniform")
        print(f"| {name} | {ks.statistic:.4f} | {ks.pvalue:.3g} |")

    start = time.perf_counter()
    null = null_flag_rates(rates, n_repeats=args.repeats, n_windows=10,
                           fdr_levels=(0.01, 0.05, 0.1), seed=args.seed)
    print(f"\n2. false flags over {args.repeats} anomaly-free data sets of "
          f"{null['rows_per_repeat'].iloc[0]} rows ({time.perf_counter() - start:.0f} s)")
    print("| q | data sets with any flag (= FDR) | MCSE | false flags per row |\n|---|---|---|---|")
    for row in null.itertuples():
        print(f"| {row.q:g} | {row.any_flag_rate:.4f} | {row.mcse:.4f} | "
              f"{row.flags_per_row:.2e} |")

    for factor in (5.0, 10.0):
        found = spike_power(rates, n_windows=200, factor=factor, share=0.05, fdr=0.01,
                            seed=args.seed)
        print(f"\n3. power: {found['spikes']} spikes ({factor:g}x the rate) in {found['rows']} "
              f"rows, BH at q = 0.01: {found['power']:.2f} flagged; {found['false_flags']} "
              f"false flags of {found['flags']} (false share {found['fdp']:.3f})")
        print("| entity posterior mean rate | spikes | power |\n|---|---|---|")
        for band, row in found["by_rate"].iterrows():
            print(f"| {band} | {int(row['spikes'])} | {row['power']:.2f} |")

if __name__ == "__main__":
    main()
