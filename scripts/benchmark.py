#!/usr/bin/env python
"""Benchmark: ratepool's fit against the bare sampler, phase by phase, with memory and ESS/s.

One table, one row per (engine, J, N, run). For each case ``N:J`` (default 50,000 x 500 and
1,000,000 x 2,000) simulated data (seeded, numpy-vectorised: N windows split unequally among J
entities, counts NB2(theta_i, phi) with theta_i ~ Gamma(mu * alpha, alpha), mu = 4, alpha = 2,
phi = 3) are fitted twice, each in a fresh process:

- ``ratepool``: `ratepool.fit` with the DEFAULT `ModelConfig` (4 chains, 1000 warmup, 2000
  draws; `obs_predictions` and `entity_predictions` automatic), then the summaries the command
  line computes (`FitResult.diagnostics`, `FitResult.entity_summary`,
  `ratepool.outputs.results.population_summary`) and, with ``--write``, the results folder
  (`ratepool.outputs.results.write_results`: netCDF, CSVs, figures; no HTML report);
- ``bare``: ``stan/bench_bare.stan`` — the same priors and sufficient-statistics likelihood
  with only mu, alpha, phi and theta and no generated quantities — on the same engine, same
  data, seed and sampler settings, through the same engine code (its draws come back the same
  way). ``ratio`` = ratepool's (sample + build + summarise) seconds / bare's sample seconds
  (``ratio+write`` adds the write phase).

Columns: ``read`` — for ``--input csv`` / ``--input parquet`` (the same simulated rows written
once, by DuckDB, to ``--file-dir``, default the system temp dir, and reused), how the file was
read as `ratepool.fit(path)` reads it: ``aggregates`` (`ratepool.workflow.fit.read_for_fit`:
DuckDB's aggregates, no rows in memory), ``rows`` (an option needs them) or ``load_counts``
(ratepool before issue 18, which always held the rows); ``aggregate s`` — that read, or
`ratepool.from_dataframe` on the in-memory rows (``--input rows``), or "—" for ``--input
aggregates`` (per-entity windows and totals and the count histogram simulated directly in
chunks and given to `ratepool.from_aggregates`, for N beyond memory);
``compile s`` — once up front (0 when the program was in the cache); ``sample s`` — the
engine's run (data binding, all chains, transferring the draws back); ``build s`` — the rest
of `ratepool.fit` (InferenceData); ``summarise s`` — the summaries; ``write s`` — the results
folder; ESS/s — min arviz bulk ESS over mu, alpha, phi and over all theta_i, divided by
``sample s``; ``peak RSS tree`` — peak of the summed RSS of the worker process and every
process it started (the PyStan child and its chain processes), polled every 0.1 s, from before
the data are simulated to the end (the CSV also has the peak after the data phase and per
phase: fit, summarise, write); ``peak PSS tree`` — the same with PSS, which splits pages the
forked chain processes share instead of counting them in each; ``CPU s`` — user + system CPU
seconds of the tree after the data phase (ratepool: fit, summaries and write; bare: the
sampling run), which a shared machine inflates far less than wall time; ``ratio CPU`` —
ratepool's CPU s / bare's. CmdStan rows need CmdStan; without it they say so. A run that
fails (e.g. killed for memory) still reports its peak memory.

Usage::

    python scripts/benchmark.py                                  # both cases, both runs
    python scripts/benchmark.py --cases 10000000:2000 --no-bare  # memory at N = 1e7
    python scripts/benchmark.py --cases 10000000:2000 --no-bare --input parquet \
        --draws 200 --warmup 200                                 # a fit from a 1e7-row file
    python scripts/benchmark.py --cases 100000000:20000 --input aggregates --draws 500 \
        --warmup 500                                             # big J
    python scripts/benchmark.py --likelihood observation --cases 10000:2000 --time-cap 1800
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import TRUTH, data_file, simulate_aggregates, simulate_rows  # noqa: E402
from bench_memory import TreeMemory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BARE_PROGRAM = ROOT / "stan" / "bench_bare.stan"
DEFAULT_CASES = ("50000:500", "1000000:2000")
#: Data fields the bare program reads (the rest of ratepool's data dict is dropped).
BARE_FIELDS = ("J", "n_windows", "entity_total", "K", "count_value", "count_freq", "mu_rate",
               "alpha_sd", "phi_sd")


def _read_file(path: str, config: object) -> tuple[object, str]:
    """The data of a file as `ratepool.fit(path)` reads it: `read_for_fit` where this ratepool
    has it (aggregates unless an option needs the rows), else `load_counts` (the rows)."""
    import ratepool

    try:
        from ratepool.workflow.fit import read_for_fit
    except ImportError:  # ratepool before issue 18
        return ratepool.load_counts(path), "load_counts"
    data = read_for_fit(path, config)
    return data, "rows" if data.has_rows else "aggregates"


def load_data(spec: dict) -> tuple[object, float | None]:
    """The case's `CountData` and the aggregation seconds (None for simulated aggregates)."""
    import ratepool

    if spec["input"] in ("csv", "parquet"):
        start = time.perf_counter()
        data, spec["reader"] = _read_file(spec["file"], _config(spec))
        return data, time.perf_counter() - start
    if spec["input"] == "aggregates":
        entities, histogram = simulate_aggregates(spec["N"], spec["J"], spec["seed"])
        return ratepool.from_aggregates(entities, histogram), None
    frame = simulate_rows(spec["N"], spec["J"], spec["seed"])
    start = time.perf_counter()
    data = ratepool.from_dataframe(frame, entity_col="entity", count_col="count")
    return data, time.perf_counter() - start


def _config(spec: dict) -> object:
    import ratepool

    changes = {key: spec[key] for key in ("n_samples", "n_tune", "n_chains")
               if spec.get(key) is not None}
    predictions = spec.get("entity_predictions")
    if predictions is not None:
        changes["entity_predictions"] = predictions
    return ratepool.ModelConfig(likelihood=spec["likelihood"], engine=spec["engine"],
                                **changes)


def _ess_per_s(posterior: object, seconds: float) -> dict:
    import arviz as az

    hyper = az.ess(posterior[["mu", "alpha", "phi"]], method="bulk")
    theta = az.ess(posterior[["theta"]], method="bulk")
    rhat = az.rhat(posterior[["mu", "alpha", "phi"]])
    return {
        "ess_s_hyper": min(float(hyper[v]) for v in ("mu", "alpha", "phi")) / seconds,
        "ess_s_theta": float(theta["theta"].min()) / seconds,
        "rhat_max_hyper": max(float(rhat[v]) for v in ("mu", "alpha", "phi")),
    }


def run_worker(spec: dict) -> dict:
    """One row: a ratepool fit or a bare sampling run; runs inside a fresh subprocess."""
    with TreeMemory() as tree:
        data, aggregation = load_data(spec)
        time.sleep(0.25)  # one poll after the data phase
        data_peak, data_cpu = tree.peak_bytes, tree.cpu_seconds()
        tree.phase_peak()
        try:
            row = (run_bare if spec["run"] == "bare" else run_ratepool)(spec, data, tree)
        except Exception as error:  # noqa: BLE001 - the row reports it, with the memory so far
            row = {"status": f"failed: {type(error).__name__}: {str(error).splitlines()[0]}"}
        time.sleep(0.25)
        fit_cpu = tree.cpu_seconds() - data_cpu
    return dict(row, aggregate_s=aggregation, reader=spec.get("reader"), peak_rss_tree_mb=tree.peak_bytes / 2**20,
                peak_pss_tree_mb=tree.peak_pss_bytes / 2**20,
                rss_tree_after_data_mb=data_peak / 2**20, cpu_s=fit_cpu)


def run_ratepool(spec: dict, data: object, tree: TreeMemory) -> dict:
    import ratepool
    from ratepool.outputs.results import population_summary

    config = _config(spec)
    start = time.perf_counter()
    result = ratepool.fit(data, config)
    fit_s = time.perf_counter() - start
    peaks = {"fit": tree.phase_peak()}
    start = time.perf_counter()
    result.diagnostics()
    result.entity_summary()
    population_summary(result.idata)
    summarise = time.perf_counter() - start
    peaks["summarise"] = tree.phase_peak()
    write = None
    if spec.get("write"):
        from ratepool.outputs.results import write_results

        with tempfile.TemporaryDirectory(prefix="ratepool-bench-") as out:
            start = time.perf_counter()
            write_results(Path(out) / "results", result, record={})
            write = time.perf_counter() - start
        peaks["write"] = tree.phase_peak()
    idata = result.idata
    predictive = idata.get("posterior_predictive")
    return {
        "engine": result.engine,
        "sample_s": result.sampling_seconds,
        "build_s": fit_s - result.sampling_seconds,
        "summarise_s": summarise,
        "write_s": write,
        "entity_predictions": predictive is not None and "y_pred" in predictive,
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "draws": config.total_draws,
        "phase_peak_rss_tree_gb": peaks,
        **_ess_per_s(idata.posterior, result.sampling_seconds),
    }


def run_bare(spec: dict, data: object, tree: TreeMemory) -> dict:
    import arviz as az

    import ratepool
    from ratepool.engines.base import SamplerSettings
    from ratepool.model.program import StanProgram

    config = _config(spec)
    from ratepool.model.standata import stan_data

    values = stan_data(data, config)
    runner = ratepool.get_engine(config.engine)
    settings = SamplerSettings(chains=config.n_chains, warmup=config.n_tune,
                               draws=config.n_samples, adapt_delta=config.target_accept,
                               seed=config.random_seed)
    draws = runner.sample(StanProgram.from_file(BARE_PROGRAM),
                          {name: values[name] for name in BARE_FIELDS}, settings)
    posterior = az.from_dict(posterior=draws.variables).posterior
    return {
        "engine": runner.name,
        "sample_s": draws.elapsed_seconds,
        "divergences": int(draws.sample_stats["diverging"].sum()),
        "draws": config.total_draws,
        **_ess_per_s(posterior, draws.elapsed_seconds),
    }


def compile_once(engine: str) -> dict:
    """Compile the packaged and the bare program (or find them cached)."""
    import ratepool
    from ratepool.model.program import StanProgram, default_program

    runner = ratepool.get_engine(engine)
    seconds = {}
    for name, program in (("ratepool", default_program()),
                          ("bare", StanProgram.from_file(BARE_PROGRAM))):
        start = time.perf_counter()
        compiled = runner.compile(program)
        seconds[name] = time.perf_counter() - start if compiled else 0.0
    return {"compile_s": seconds, "engine": runner.name, "versions": runner.versions()}


def in_subprocess(args: list[str], timeout: float | None) -> dict | None:
    """Run ``args`` in a new process group; its last stdout line is JSON. None on timeout."""
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                               start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the worker and the sampler processes it started
        process.communicate()
        return None
    if process.returncode != 0:
        return {"status": f"failed (exit code {process.returncode})"}
    return json.loads(out.decode().strip().splitlines()[-1])


COLUMNS = (("engine", "engine"), ("J", "J"), ("N", "N"), ("run", "run"),
           ("status", "status"), ("read", "reader"), ("aggregate s", "aggregate_s"), ("compile s", "compile_s"),
           ("sample s", "sample_s"), ("build s", "build_s"), ("summarise s", "summarise_s"),
           ("write s", "write_s"), ("ESS/s mu,alpha,phi", "ess_s_hyper"),
           ("ESS/s theta", "ess_s_theta"), ("R-hat max", "rhat_max_hyper"),
           ("div", "divergences"), ("entity preds", "entity_predictions"),
           ("peak RSS tree GB", "peak_rss_tree_gb"), ("peak PSS tree GB", "peak_pss_tree_gb"),
           ("CPU s", "cpu_s"), ("ratio", "ratio"), ("ratio CPU", "ratio_cpu"),
           ("ratio+write", "ratio_write"))


def _cell(key: str, value: object) -> str:
    if value is None or value == "":
        return "—"
    if key in ("N", "J"):
        return f"{value:,}"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if key in ("aggregate_s", "rhat_max_hyper"):
        return f"{value:.3f}"
    if key in ("ratio", "ratio_write", "ratio_cpu", "peak_rss_tree_gb", "peak_pss_tree_gb"):
        return f"{value:.2f}"
    return f"{value:,.1f}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(key, row.get(key)) for _, key in COLUMNS) + " |")
    return "\n".join(lines)


def add_ratios(rows: list[dict]) -> None:
    """ratepool's (sample + build + summarise) / bare sample seconds, per (engine, J, N)."""
    done = [r for r in rows if r["run"] == "bare" and r.get("status") == "ok"]
    bare = {(r["engine"], r["J"], r["N"]): r["sample_s"] for r in done}
    bare_cpu = {(r["engine"], r["J"], r["N"]): r.get("cpu_s") for r in done}
    for row in rows:
        key = (row["engine"], row["J"], row["N"])
        base = bare.get(key)
        if row["run"] != "ratepool" or row.get("status") != "ok" or not base:
            continue
        total = row["sample_s"] + row["build_s"] + row["summarise_s"]
        row["ratio"] = total / base
        if row.get("write_s") is not None:
            row["ratio_write"] = (total + row["write_s"]) / base
        if bare_cpu.get(key):
            row["ratio_cpu"] = row["cpu_s"] / bare_cpu[key]


def machine() -> str:
    load = os.getloadavg()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GB RAM, Python "
            f"{platform.python_version()}; load average {load[0]:.1f} / {load[1]:.1f} / "
            f"{load[2]:.1f} (1/5/15 min)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), metavar="N:J")
    parser.add_argument("--engines", nargs="+", default=["pystan", "cmdstan"],
                        choices=("cmdstan", "pystan"))
    parser.add_argument("--input", choices=("rows", "aggregates", "csv", "parquet"),
                        default="rows")
    parser.add_argument("--file-dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where --input csv/parquet writes (once) and reads the data file")
    parser.add_argument("--likelihood", choices=("sufficient", "observation"),
                        default="sufficient")
    parser.add_argument("--no-bare", dest="bare", action="store_false",
                        help="skip the bare-sampler runs")
    parser.add_argument("--write", action="store_true",
                        help="also time writing the results folder, as `ratepool fit` does")
    parser.add_argument("--entity-predictions", choices=("auto", "on", "off"), default=None,
                        help="override ModelConfig's default")
    parser.add_argument("--draws", type=int, help="draws per chain (default: ModelConfig's)")
    parser.add_argument("--warmup", type=int, help="warmup per chain (default: ModelConfig's)")
    parser.add_argument("--chains", type=int, help="chains (default: ModelConfig's)")
    parser.add_argument("--time-cap", type=float, default=None,
                        help="seconds allowed for one run (whole subprocess)")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--out", type=Path, help="also write the rows to this CSV")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0

    print(f"machine: {machine()}", flush=True)
    predictions = {None: None, "auto": "auto", "on": True, "off": False}[args.entity_predictions]
    rows: list[dict] = []
    for engine in args.engines:
        code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"import benchmark; print(json.dumps(benchmark.compile_once({engine!r})))")
        info = in_subprocess(["-c", code], None)
        if info is None or "status" in info:
            print(f"{engine}: not measured (no {engine}: {info and info['status']})", flush=True)
            for case in args.cases:
                n_rows, n_entities = (int(float(x)) for x in case.split(":"))
                rows.append({"engine": engine, "J": n_entities, "N": n_rows, "run": "—",
                             "status": f"not measured: no {engine}"})
            continue
        print(f"engine: {info['engine']} {info['versions']}; compile s: {info['compile_s']}",
              flush=True)
        for case in args.cases:
            n_rows, n_entities = (int(float(x)) for x in case.split(":"))
            file = None
            if args.input in ("csv", "parquet"):
                file = str(data_file(args.file_dir, args.input, n_rows, n_entities, args.seed))
            for run in ("ratepool", "bare") if args.bare else ("ratepool",):
                spec = {"run": run, "N": n_rows, "J": n_entities, "engine": engine,
                        "input": args.input, "likelihood": args.likelihood, "seed": args.seed,
                        "n_samples": args.draws, "n_tune": args.warmup,
                        "n_chains": args.chains, "entity_predictions": predictions,
                        "write": args.write, "file": file}
                base = {"engine": engine, "J": n_entities, "N": n_rows, "run": run,
                        "compile_s": info["compile_s"][run]}
                start = time.perf_counter()
                row = in_subprocess([__file__, "--worker", json.dumps(spec)], args.time_cap)
                if row is None:
                    row = {"status": f"exceeded cap ({args.time_cap:.0f} s)"}
                row = {**base, "status": "ok", **row, "wall_s": time.perf_counter() - start}
                for kind in ("rss", "pss"):
                    if f"peak_{kind}_tree_mb" in row:
                        row[f"peak_{kind}_tree_gb"] = row[f"peak_{kind}_tree_mb"] / 1024
                rows.append(row)
                print(f"{run} N={n_rows:,} J={n_entities:,}: {json.dumps(row)}", flush=True)
    add_ratios(rows)
    print(f"\nmachine at the end: {machine()}\n")
    print(markdown_table(rows))
    if args.out:
        with args.out.open("w", newline="") as handle:
            fields = sorted({key for row in rows for key in row})
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
