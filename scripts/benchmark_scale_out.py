#!/usr/bin/env python
"""Benchmark: `ratepool.fit_scaled` on a local Dask cluster, J = 1e5 to 1e7 entities.

Rows are generated on the cluster itself (``dask.dataframe.from_map``, one seeded block of
entities per partition; nothing is written to disk): entity i has 1 + Poisson(w - 1) windows
(w = ``--mean-windows``, 5 by default),
theta_i ~ Gamma(mu alpha, alpha) with mu = 4, alpha = 1.5, and NB2(theta_i, phi = 3) counts.
The cluster is a ``LocalCluster`` of 2 worker processes x 1 thread. Each J is one run of
`fit_scaled` (``--hyperparameters all``, the default: from every entity by importance
sampling; ``subsample``: NUTS on 20,000 entities, CmdStan 4 chains x 1000 + 1000; 1000 draws
kept); each record gives the total time (the INFO log lines time the steps: aggregate,
hyperparameters, per-entity map), the number of distinct (windows, total) pairs, the
importance sampler's Pareto k and ESS or the subsample fit's largest R-hat and smallest bulk
ESS over mu, alpha, phi, and the peak RSS summed over the process tree (driver, workers,
CmdStan; polled every 0.1 s).

``--compare-full`` also fits all entities with NUTS (CmdStan, ``--full-chains`` chains x
``--full-iterations`` warmup + draws; warm start on) and reports the issue's criteria: the
share of entities whose scale-out mean is within 3 Monte Carlo standard errors of the full
fit's theta mean, and whether each hyperparameter's full-fit mean lies in the scale-out 90%
interval.

Usage::

    python scripts/benchmark_scale_out.py --entities 100000 --compare-full \
        --full-cache full-1e5.npz
    python scripts/benchmark_scale_out.py --entities 100000 --compare-full \
        --full-cache full-1e5.npz --hyperparameters subsample --subsample 2000
    python scripts/benchmark_scale_out.py --entities 1000000 10000000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import TreeMemory  # noqa: E402

TRUTH = {"mu": 4.0, "alpha": 1.5, "phi": 3.0}
ENTITIES_PER_PARTITION = 250_000


def entity_block(block: int, n_entities: int, seed: int, mean_windows: float = 5.0,
                 truth: dict | None = None) -> pd.DataFrame:
    """The rows of entities [block * ENTITIES_PER_PARTITION, ...), seeded by (seed, block);
    mu, alpha, phi from ``truth`` (default ``TRUTH``)."""
    truth = truth or TRUTH
    rng = np.random.default_rng([seed, block])
    first = block * ENTITIES_PER_PARTITION
    ids = np.arange(first, min(first + ENTITIES_PER_PARTITION, n_entities), dtype=np.int64)
    windows = 1 + rng.poisson(mean_windows - 1.0, ids.size)
    theta = rng.gamma(truth["mu"] * truth["alpha"], 1.0 / truth["alpha"], ids.size)
    mean = np.repeat(theta, windows)
    phi = truth["phi"]
    counts = rng.negative_binomial(phi, phi / (phi + mean))
    return pd.DataFrame({"entity": np.repeat(ids, windows), "count": counts.astype(np.int64)})


def rows_on_cluster(n_entities: int, seed: int, mean_windows: float,
                    truth: dict | None = None) -> Any:
    """`entity_block` over the cluster: a lazy Dask DataFrame of all J entities' rows."""
    import dask.dataframe as dd

    blocks = range(-(-n_entities // ENTITIES_PER_PARTITION))
    meta = pd.DataFrame({"entity": pd.Series(dtype=np.int64),
                         "count": pd.Series(dtype=np.int64)})
    return dd.from_map(entity_block, blocks, n_entities=n_entities, seed=seed,
                       mean_windows=mean_windows, truth=truth, meta=meta)


@contextlib.contextmanager
def local_cluster() -> Iterator[None]:
    """A Dask ``LocalCluster`` of 2 worker processes x 1 thread, with its client."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        yield


def measure(n_entities: int, *, subsample: int, draws: int, seed: int, mean_windows: float,
            truth: dict | None = None, engine: str | None = None,
            hyperparameters: str = "all") -> tuple[dict, Any]:
    """One `fit_scaled` run on rows generated on the current Dask cluster.

    Parameters
    ----------
    n_entities : int
        J.
    subsample, draws : int
        As in `fit_scaled` (the subsample fit: 4 chains x 1000 warmup + 1000 draws).
    seed : int
        Seeds the rows (and nothing else: the subsample is drawn by the config's seed).
    mean_windows : float
        Mean windows per entity (1 + Poisson(mean_windows - 1)).
    truth : dict, optional
        mu, alpha, phi of the rows (default ``TRUTH``).
    engine : str, optional
        Engine of the subsample fit (default: `ratepool.fit`'s).
    hyperparameters : str
        As in `fit_scaled`: ``"all"`` (every entity, importance sampling) or ``"subsample"``.

    Returns
    -------
    tuple of (dict, ScaledFit)
        The record (J, rows, seconds, distinct pairs, peak tree RSS, the subsample fit's
        hyperparameter R-hat and ESS) and the fit.
    """
    import ratepool
    from ratepool.workflow.scale_out import fit_scaled

    rows = rows_on_cluster(n_entities, seed, mean_windows, truth)
    config = ratepool.ModelConfig(n_chains=4, n_tune=1000, n_samples=1000,
                                  obs_predictions=False)
    start = time.perf_counter()
    with TreeMemory() as memory:
        scaled = fit_scaled(rows, config, hyperparameters=hyperparameters,
                            subsample=subsample, draws=draws, engine=engine)
    record = {
        "entities": n_entities, "mean_windows": mean_windows,
        "rows": int(scaled.entities["n_windows"].sum()),
        "subsample": scaled.n_subsample, "draws": scaled.draws.n_draws,
        "seconds": round(time.perf_counter() - start, 1),
        "distinct_pairs": int(scaled.entities[["n_windows", "total"]]
                              .drop_duplicates().shape[0]),
        "peak_tree_rss_gb": round(memory.peak_bytes / 2**30, 2),
        "hyperparameters": scaled.method,
        "hyper_mean_90": {name: [round(float(f(getattr(scaled.draws, name))), 4)
                                 for f in (np.mean, lambda v: np.quantile(v, 0.05),
                                           lambda v: np.quantile(v, 0.95))]
                          for name in ("mu", "alpha", "phi")},
        **(hyper_checks(scaled.hyper.idata.posterior) if scaled.hyper is not None else
           {"pareto_k": round(scaled.marginal.pareto_k, 3),
            "importance_ess": round(scaled.marginal.ess)}),
    }
    return record, scaled


def full_fit(n_entities: int, seed: int, mean_windows: float, chains: int, iterations: int,
             cache: Path | None = None) -> dict:
    """The full NUTS fit's entity means and MCSEs and hyperparameter means, R-hat and time;
    read from / written to ``cache`` (a ``.npz``) so that scale-out variants can be compared
    with one full fit."""
    import arviz as az

    import ratepool

    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            return {key: saved[key] for key in saved.files}
    rows = pd.concat([entity_block(b, n_entities, seed, mean_windows)
                      for b in range(-(-n_entities // ENTITIES_PER_PARTITION))])
    config = ratepool.ModelConfig(n_chains=chains, n_tune=iterations, n_samples=iterations,
                                  warm_start="on", obs_predictions=False)
    start = time.perf_counter()
    full = ratepool.fit(ratepool.from_dataframe(rows), config, engine="cmdstan")
    seconds = time.perf_counter() - start
    posterior = full.idata.posterior
    names = ["mu", "alpha", "phi"]
    result = {
        "labels": np.asarray(posterior["entity"].values).astype(str),
        "means": posterior["theta"].mean(("chain", "draw")).values,
        "mcse": az.mcse(posterior, var_names=["theta"])["theta"].values,
        "hyper_means": np.array([float(posterior[name].mean()) for name in names]),
        "rhat_max": np.array(float(az.rhat(posterior, var_names=names).to_array().max())),
        "seconds": np.array(seconds),
        "setting": np.array([n_entities, seed, mean_windows, chains, iterations]),
    }
    if cache is not None:
        partial = cache.with_suffix(".partial.npz")
        np.savez(partial, **result)
        partial.replace(cache)
    return result


def full_fit_agreement(n_entities: int, seed: int, mean_windows: float, scaled, chains: int,
                       iterations: int, cache: Path | None = None) -> dict:
    full = full_fit(n_entities, seed, mean_windows, chains, iterations, cache)
    setting = [n_entities, seed, mean_windows, chains, iterations]
    if not np.allclose(full["setting"], setting):
        raise SystemExit(f"{cache} holds a full fit of {full['setting'].tolist()}, not {setting}")
    entities = scaled.entities.assign(entity=scaled.entities["entity"].astype(str))
    ours = entities.set_index("entity").loc[full["labels"], "mean"].to_numpy()
    z = np.abs(ours - full["means"]) / full["mcse"]
    hyper = {}
    for name, value in zip(("mu", "alpha", "phi"), full["hyper_means"].tolist()):
        draws = getattr(scaled.draws, name)
        lo, hi = np.quantile(draws, [0.05, 0.95])
        hyper[name] = {"full_mean": value, "scaled_90": [float(lo), float(hi)],
                       "inside": bool(lo <= value <= hi)}
    return {"full_fit_s": round(float(full["seconds"]), 1),
            "share_within_3_mcse": float((z <= 3).mean()),
            "z_quantiles_50_99_max": [float(np.quantile(z, q)) for q in (0.5, 0.99, 1.0)],
            "hyper": hyper, "full_rhat_max": float(full["rhat_max"])}


def hyper_checks(posterior) -> dict:
    import arviz as az

    names = ["mu", "alpha", "phi"]
    return {"hyper_rhat_max": round(float(az.rhat(posterior, var_names=names)
                                          .to_array().max()), 4),
            "hyper_ess_bulk_min": round(float(az.ess(posterior, var_names=names)
                                              .to_array().min()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--hyperparameters", choices=["all", "subsample"], default="all",
                        help="as in fit_scaled: from every entity (importance sampling) or "
                             "from a NUTS fit of --subsample entities")
    parser.add_argument("--subsample", type=int, default=20_000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--mean-windows", type=float, default=5.0)
    parser.add_argument("--compare-full", action="store_true")
    parser.add_argument("--full-chains", type=int, default=2)
    parser.add_argument("--full-iterations", type=int, default=500)
    parser.add_argument("--full-cache", type=Path, default=None,
                        help="with --compare-full: a .npz the full fit is read from if it "
                             "exists, else written to (one J only)")
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    with local_cluster():
        for n_entities in args.entities:
            record, scaled = measure(n_entities, subsample=args.subsample, draws=args.draws,
                                     seed=args.seed, mean_windows=args.mean_windows,
                                     hyperparameters=args.hyperparameters)
            if args.compare_full:
                record["full"] = full_fit_agreement(n_entities, args.seed, args.mean_windows,
                                                    scaled,
                                                    args.full_chains, args.full_iterations,
                                                    args.full_cache)
            print(json.dumps(record), flush=True)
            if args.out:
                with args.out.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
