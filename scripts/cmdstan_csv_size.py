"""CmdStan output CSVs at the benchmark sizes: file size and read time per output precision.

CmdStan writes every value with C++ ``std::setprecision(sig_figs)`` in the default float
format, which is C's ``%.<sig_figs>g``: integral values print with their own digits ("7"),
others with up to ``sig_figs`` significant digits. This script writes files in CmdStan's exact
layout (the comment header of a real CmdStan 2.35 file of ratepool's program, the column header,
the adaptation block, the draws, the timing block) for ratepool's program at J = 500 and 2,000
entities, 4 chains x 2,000 draws, with the per-row outputs on at their automatic limit
(rows x chains x draws = 2e7, i.e. N = 2,500 rows), at several ``sig_figs``, and times ratepool's
reader (``cmdstanpy.from_csv`` plus the reshaping into draws) in a fresh process.

It measures a file format; it does not run or stand in for CmdStan. The draws are simulated from
the model with magnitudes like a real run's (counts, rates, log densities, sampler columns). To
keep the writing time down, one chain's text is written four times (the reader does not care;
sizes and read times are those of four chains). It also reports what each precision loses:
the largest relative rounding error of the non-integral values, and whether every count
survives exactly.

    python scripts/cmdstan_csv_size.py                       # J = 500 and 2000; 6, 9, 17, 18
    python scripts/cmdstan_csv_size.py --entities 500 --digits 9 18 --draws 500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
HEADER_SOURCE = ROOT / "tests" / "fixtures" / "cmdstan-2.35" / "centred" / "out_1.csv.gz"
MAX_OBS_PREDICTION_VALUES = 20_000_000

READER = """
import json, resource, sys, time
from ratepool.engines.cmdstan_csv import read_cmdstan_csv
start = time.perf_counter()
run = read_cmdstan_csv(sys.argv[1:])
seconds = time.perf_counter() - start
theta = run.draws.variables["theta"]
print(json.dumps({"seconds": seconds, "peak_rss_gb": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 2**20, "shape": list(theta.shape)}))
"""


def comment_header(chains: int, draws: int, sig_figs: int) -> list[str]:
    """The ``#`` lines above the column header of a real CmdStan 2.35 CSV, with this run's
    sampler settings."""
    import gzip

    lines = []
    with gzip.open(HEADER_SOURCE, "rt") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            lines.append(line)
    settings = {"num_samples": draws, "num_chains": chains, "sig_figs": sig_figs}
    for i, line in enumerate(lines):
        key = line.lstrip("# ").split(" = ")[0]
        if key in settings:
            indent = line[: len(line) - len(line.lstrip("# "))]
            lines[i] = f"{indent}{key} = {settings[key]}\n"
    return lines


def simulate(n_entities: int, n_rows: int, draws: int, seed: int) -> tuple[list[str], np.ndarray,
                                                                            np.ndarray]:
    """Column names, one chain's draws (draw, column) and which columns hold counts."""
    rng = np.random.default_rng(seed)
    entity = np.sort(rng.integers(0, n_entities, n_rows))
    n_windows = np.bincount(entity, minlength=n_entities)
    mu = rng.normal(5.0, 0.2, draws)
    alpha = rng.normal(2.0, 0.1, draws)
    phi = rng.normal(3.0, 0.2, draws)
    base = rng.gamma(mu.mean() * alpha.mean(), 1 / alpha.mean(), n_entities)
    theta = base * rng.gamma(50.0, 1 / 50.0, (draws, n_entities))
    mean_rows = theta[:, entity]
    nb = stats.nbinom(phi[:, None], phi[:, None] / (phi[:, None] + mean_rows))
    y_obs = rng.negative_binomial(3.0, 3.0 / (3.0 + base[entity]))
    columns: list[tuple[str, np.ndarray, bool]] = [
        ("lp__", rng.normal(-1.5e4, 30, draws), False),
        ("accept_stat__", rng.uniform(0.6, 1.0, draws), False),
        ("stepsize__", np.full(draws, 0.0431302), False),
        ("treedepth__", rng.integers(3, 7, draws).astype(float), True),
        ("n_leapfrog__", rng.integers(7, 127, draws).astype(float), True),
        ("divergent__", np.zeros(draws), True),
        ("energy__", rng.normal(1.6e4, 40, draws), False),
        ("mu", mu, False), ("alpha", alpha, False), ("phi", phi, False),
    ]
    names = [name for name, _, _ in columns]
    blocks = [values[:, None] for _, values, _ in columns]
    counts = [is_count for _, _, is_count in columns]

    def add(name: str, values: np.ndarray, is_count: bool) -> None:
        values = values.reshape(draws, -1)
        names.extend(f"{name}.{i}" for i in range(1, values.shape[1] + 1))
        blocks.append(values)
        counts.extend([is_count] * values.shape[1])

    add("theta", theta, False)
    names.extend(["theta_new", "y_new"])
    blocks.append(np.column_stack([rng.gamma(10.0, 0.5, draws),
                                   rng.negative_binomial(3.0, 0.4, draws)]))
    counts.extend([False, True])
    add("y_rep", nb.rvs(random_state=rng).astype(float), True)
    add("log_lik", nb.logpmf(y_obs), False)
    totals = theta * n_windows
    add("y_pred", rng.negative_binomial(3.0, 3.0 / (3.0 + theta)).astype(float), True)
    add("y_rep_total", rng.negative_binomial(3.0 * n_windows + 1e-9,
                                             3.0 / (3.0 + theta)).astype(float), True)
    add("y_rep_zeros", rng.binomial(n_windows, 0.1, (draws, n_entities)).astype(float), True)
    add("log_lik_entity", stats.poisson.logpmf(np.rint(totals.mean(0)), totals), False)
    return names, np.hstack(blocks), np.asarray(counts)


def write_chain(path: Path, header: list[str], names: list[str], values: np.ndarray,
                sig_figs: int) -> None:
    fmt = ",".join([f"%.{sig_figs}g"] * values.shape[1]) + "\n"
    with open(path, "w", encoding="ascii") as handle:
        handle.writelines(header)
        handle.write(",".join(names) + "\n")
        handle.write("# Adaptation terminated\n# Step size = 0.0431302\n"
                     "# Diagonal elements of inverse mass matrix:\n# "
                     + ", ".join(["0.0134487"] * (3 + values.shape[1] // 6)) + "\n")
        for row in values:
            handle.write(fmt % tuple(row))
        handle.write("# \n#  Elapsed Time: 100.1 seconds (Warm-up)\n#                200.2 seconds "
                     "(Sampling)\n#                300.3 seconds (Total)\n# \n")


def rounding(values: np.ndarray, counts: np.ndarray, sig_figs: int) -> tuple[float, bool]:
    """Largest relative error of the non-integral values and whether all counts stay exact."""
    printed = np.array([float(f"%.{sig_figs}g" % v) for v in values[:50].ravel()]).reshape(
        values[:50].shape)
    continuous = ~counts
    relative = np.abs(printed[:, continuous] - values[:50, continuous]) / np.maximum(
        np.abs(values[:50, continuous]), 1e-300)
    exact = bool(np.all(printed[:, counts] == values[:50, counts]))
    return float(relative.max()), exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--digits", type=int, nargs="+", default=[6, 9, 17, 18])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=None,
                        help="rows N (default: the automatic limit 2e7 / (chains x draws))")
    args = parser.parse_args()
    n_rows = args.rows or MAX_OBS_PREDICTION_VALUES // (args.chains * args.draws)
    print(f"{args.chains} chains x {args.draws} draws, N = {n_rows} rows (y_rep, log_lik on)")
    print("| J | sig_figs | values/draw | CSV size (4 files) | read s | reader peak RSS GB "
          "| max rel. error (non-integral) | counts exact |")
    print("|---|---|---|---|---|---|---|---|")
    for n_entities in args.entities:
        names, values, counts = simulate(n_entities, n_rows, args.draws, seed=n_entities)
        for sig_figs in args.digits:
            directory = Path(tempfile.mkdtemp(prefix="rp-csv-size-"))
            try:
                first = directory / "out_1.csv"
                write_chain(first, comment_header(args.chains, args.draws, sig_figs), names,
                            values, sig_figs)
                files = [first] + [directory / f"out_{c}.csv" for c in
                                   range(2, args.chains + 1)]
                for other in files[1:]:
                    shutil.copyfile(first, other)
                size = sum(f.stat().st_size for f in files)
                done = subprocess.run([sys.executable, "-c", READER, *map(str, files)],
                                      capture_output=True, text=True, check=True,
                                      env=dict(os.environ, PYTHONPATH=str(ROOT / "python")))
                read = json.loads(done.stdout.strip().splitlines()[-1])
                error, exact = rounding(values, counts, sig_figs)
                print(f"| {n_entities:,} | {sig_figs} | {values.shape[1]:,} | "
                      f"{size / 1e6:,.0f} MB | {read['seconds']:.1f} | "
                      f"{read['peak_rss_gb']:.1f} | {error:.1e} | {'yes' if exact else 'no'} |",
                      flush=True)
            finally:
                shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
