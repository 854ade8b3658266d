#!/usr/bin/env python
"""Benchmark: ratepool's fit against the bare sampler, phase by phase, with memory and ESS/s.

One table, one row per (engine, J, N, run). For each case ``N:J`` (default 50,000 x 500 and
1,000,000 x 2,000) simulated data (`bench_data`: N windows split unequally among J entities,
NB2 counts, mu = 4, alpha = 2, phi = 3) are fitted, each run in a fresh process:

- ``ratepool``: `ratepool.fit` with the DEFAULT `ModelConfig` (4 chains, 1000 warmup, 2000
  draws; warm start from 5,000 entities) unless ``--chains/--warmup/--draws``, then the
  summaries the command line computes and, with ``--write``, the results folder;
- ``bare`` (unless ``--no-bare``): ``stan/bench_bare.stan`` (the same priors and
  sufficient-statistics likelihood, only mu, alpha, phi and theta) on the same engine, data,
  seed and settings. ``ratio`` = ratepool's (sample + build + summarise) s / bare's sample s;
- ``scale-out`` (the J of ``--scale-out``): `ratepool.fit_scaled` on rows generated on a
  local Dask cluster (`benchmark_scale_out.measure`: 1 + Poisson(w - 1) windows per entity,
  subsample ``--subsample`` fitted 4 x (1000 + 1000)); ``sample s`` is the subsample fit's,
  ``build s`` the rest of `fit_scaled` (generation, aggregation, per-entity rates).

**The J axis**: ``--entities 1000 10000`` makes the cases N = ``--windows-per-entity`` (100)
x J; ``--j-axis`` is ``--entities 1000 10000 100000 --scale-out 1000000``. PyStan runs whose
predicted peak (`pystan_memory_gb`, 0.073 KB per value of every draw) exceeds
``--memory-limit`` (default half the RAM) are not started; their row says why.
``scripts/plot_benchmark.py`` plots cost against J from ``--out``.

Columns: ``read``/``aggregate s`` — how ``--input csv/parquet`` files were read (DuckDB's
aggregates, the rows, or `load_counts`) and in how long; ``--input rows`` times
`ratepool.from_dataframe`; ``--input aggregates`` simulates the sufficient statistics directly
(for N beyond memory; "—"). ``compile s`` — once up front (0 when cached); ``sample s`` — the
engine's run (data binding, all chains, the draws' transfer); ``build s`` — the rest of
`ratepool.fit`; ``summarise s``, ``write s``; ESS/s — min arviz bulk ESS over mu, alpha, phi
and over all theta_i per ``sample s``; ``R-hat max`` over mu, alpha, phi; ``peak RSS tree`` —
peak summed RSS of the worker and every process it started, polled every 0.1 s
(`bench_memory`; the CSV also has per-phase peaks); ``peak PSS tree`` — the same in PSS;
``CPU s`` — user + system CPU seconds of the tree after the data phase; ``ratio CPU``. The CSV
also has ``wall_s`` (the whole run's process) and ``settings``. A run that fails or exceeds
``--time-cap`` still gets a row.

Usage::

    python scripts/benchmark.py                                  # both cases, both runs
    python scripts/benchmark.py --cases 10000000:2000 --no-bare --input parquet \
        --draws 200 --warmup 200                                 # a fit from a 1e7-row file
    python scripts/benchmark.py --j-axis --no-bare --input aggregates --out j.csv
    python scripts/benchmark.py --entities 100000 --engines cmdstan --no-bare \
        --input aggregates --chains 2 --warmup 300 --draws 300   # one J, fewer iterations
    python scripts/plot_benchmark.py --csv j.csv --out docs/benchmarks/cost-vs-j.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import TRUTH, data_file, simulate_aggregates, simulate_rows  # noqa: E402
from bench_memory import TreeMemory  # noqa: E402
from bench_table import add_ratios, markdown_table, write_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BARE_PROGRAM = ROOT / "stan" / "bench_bare.stan"
DEFAULT_CASES = ("50000:500", "1000000:2000")
#: ``--j-axis``: J fitted by `ratepool.fit`, and J fitted by `ratepool.fit_scaled`.
J_AXIS = (1_000, 10_000, 100_000)
J_AXIS_SCALE_OUT = (1_000_000,)
#: PyStan's memory per value of every draw (KB; `pystan_memory_gb`): 0.23 before the chains ran
#: in waves and httpstan's diagnostic lines were dropped (issue 18).
PYSTAN_KB_PER_VALUE = 0.073
#: Default ``--memory-limit``: half the machine's RAM (it is shared).
MEMORY_LIMIT_GB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**31
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

    from ratepool.posterior.fast_diagnostics import ess_dataset

    hyper = az.ess(posterior[["mu", "alpha", "phi"]], method="bulk")
    theta = ess_dataset(posterior[["theta"]], "bulk")  # ArviZ's numbers, vectorised
    rhat = az.rhat(posterior[["mu", "alpha", "phi"]])
    return {
        "ess_s_hyper": min(float(hyper[v]) for v in ("mu", "alpha", "phi")) / seconds,
        "ess_s_theta": float(theta["theta"].min()) / seconds,
        "rhat_max_hyper": max(float(rhat[v]) for v in ("mu", "alpha", "phi")),
    }


def run_worker(spec: dict) -> dict:
    """One row: a ratepool fit or a bare sampling run; runs inside a fresh subprocess."""
    with TreeMemory() as tree:
        data, aggregation = (None, None) if spec["run"] == "scale-out" else load_data(spec)
        time.sleep(0.25)  # one poll after the data phase
        data_peak, data_cpu = tree.peak_bytes, tree.cpu_seconds()
        tree.phase_peak()
        try:
            run = {"bare": run_bare, "scale-out": run_scale_out}.get(spec["run"], run_ratepool)
            row = run(spec, data, tree)
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


def run_scale_out(spec: dict, data: None, tree: TreeMemory) -> dict:
    """`ratepool.fit_scaled` on rows generated on a local Dask cluster
    (`benchmark_scale_out.measure`, with this benchmark's mu, alpha, phi)."""
    import benchmark_scale_out

    with benchmark_scale_out.local_cluster():
        record, scaled = benchmark_scale_out.measure(
            spec["J"], subsample=spec["subsample"], draws=1000, seed=spec["seed"],
            mean_windows=spec["windows"], truth=TRUTH, engine=spec["engine"],
            hyperparameters="subsample")
    hyper = scaled.hyper
    return {
        "engine": hyper.engine, "sample_s": hyper.sampling_seconds,
        "build_s": record["seconds"] - hyper.sampling_seconds,
        "divergences": int(hyper.idata.sample_stats["diverging"].sum()),
        "draws": 4000, "distinct_pairs": record["distinct_pairs"], "N": record["rows"],
        **_ess_per_s(hyper.idata.posterior, hyper.sampling_seconds),
        "ess_s_theta": None,  # the subsample's only; every entity's rate is exact given draws
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


def machine() -> str:
    load = os.getloadavg()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GB RAM, Python "
            f"{platform.python_version()}; load average {load[0]:.1f} / {load[1]:.1f} / "
            f"{load[2]:.1f} (1/5/15 min)")


def j_axis_cases(entities: list[int], windows_per_entity: int) -> list[str]:
    """The ``N:J`` cases of the J axis: N = windows_per_entity * J for each J.

    Parameters
    ----------
    entities : list of int
        The J values.
    windows_per_entity : int
        Mean windows per entity (the simulation splits N unequally).

    Returns
    -------
    list of str
        One ``"N:J"`` per J, in the given order.
    """
    return [f"{windows_per_entity * int(j)}:{int(j)}" for j in entities]


def pystan_memory_gb(n_entities: int, total_draws: int) -> float:
    """PyStan's predicted peak (GB): ~0.073 KB per value of every draw (theta dominates),
    measured at J = 2,000 (1.12 GB for 2,000 x 8,000 draws, N = 1e7, on 2 cores: chains in
    waves of 2). A wave holds its chains' text at once, so more cores (bigger waves) need more:
    1.29 GB, 0.084 KB, with all 4 chains in one wave."""
    return PYSTAN_KB_PER_VALUE * 1024 * n_entities * total_draws / 2**30


def _settings(spec: dict) -> tuple[str, int]:
    """The run's sampler settings as text, and its total draws."""
    import ratepool

    if spec["run"] == "scale-out":
        return f"fit_scaled, subsample {spec['subsample']:,}: 4×(1000+1000)", 4000
    config = ratepool.ModelConfig(**{key: spec[key] for key in ("n_samples", "n_tune",
                                                                 "n_chains")
                                     if spec.get(key) is not None})
    return f"{config.n_chains}×({config.n_tune}+{config.n_samples})", config.total_draws


def measure_run(spec: dict, info: dict, args: argparse.Namespace) -> dict:
    """One row: ``spec`` run in a fresh process (or skipped where PyStan would not fit)."""
    settings, draws = _settings(spec)
    row = {"engine": spec["engine"], "J": spec["J"], "N": spec["N"], "run": spec["run"],
           "settings": settings,
           "compile_s": info["compile_s"]["bare" if spec["run"] == "bare" else "ratepool"]}
    fitted = min(spec["J"], spec["subsample"]) if spec["run"] == "scale-out" else spec["J"]
    need = pystan_memory_gb(fitted, draws)
    if spec["engine"] == "pystan" and need > args.memory_limit:
        return {**row, "status": f"not run: PyStan would need ~{need:,.0f} GB "
                                 f"({PYSTAN_KB_PER_VALUE} KB per "
                                 f"value of {fitted:,} x {draws:,} draws) > "
                                 f"--memory-limit {args.memory_limit:.0f} GB"}
    start = time.perf_counter()
    result = in_subprocess([__file__, "--worker", json.dumps(spec)], args.time_cap)
    if result is None:
        result = {"status": f"exceeded cap ({args.time_cap:.0f} s)"}
    row = {**row, "status": "ok", **result, "wall_s": time.perf_counter() - start}
    for kind in ("rss", "pss"):
        if f"peak_{kind}_tree_mb" in row:
            row[f"peak_{kind}_tree_gb"] = row[f"peak_{kind}_tree_mb"] / 1024
    return row


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
    parser.add_argument("--entities", type=int, nargs="+", default=[], metavar="J",
                        help="the J axis: cases N = --windows-per-entity x J (replaces --cases)")
    parser.add_argument("--windows-per-entity", type=int, default=100)
    parser.add_argument("--scale-out", type=int, nargs="*", default=[], metavar="J",
                        help="J values fitted by ratepool.fit_scaled (rows on a local Dask "
                             "cluster, benchmark_scale_out.measure) instead of ratepool.fit")
    parser.add_argument("--subsample", type=int, default=2000,
                        help="entities in fit_scaled's NUTS fit")
    parser.add_argument("--j-axis", action="store_true",
                        help=f"--entities {' '.join(map(str, J_AXIS))} --scale-out "
                             f"{' '.join(map(str, J_AXIS_SCALE_OUT))}")
    parser.add_argument("--memory-limit", type=float, default=MEMORY_LIMIT_GB, metavar="GB",
                        help="skip PyStan runs predicted (pystan_memory_gb) to need more")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0

    if args.j_axis:
        args.entities, args.scale_out = list(J_AXIS), list(J_AXIS_SCALE_OUT)
    cases = args.cases
    if args.entities or args.scale_out:
        cases = j_axis_cases(args.entities + args.scale_out, args.windows_per_entity)
    print(f"machine: {machine()}", flush=True)
    predictions = {None: None, "auto": "auto", "on": True, "off": False}[args.entity_predictions]
    rows: list[dict] = []
    for engine in args.engines:
        code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"import benchmark; print(json.dumps(benchmark.compile_once({engine!r})))")
        info = in_subprocess(["-c", code], None)
        if info is None or "status" in info:
            print(f"{engine}: not measured (no {engine}: {info and info['status']})", flush=True)
            for case in cases:
                n_rows, n_entities = (int(float(x)) for x in case.split(":"))
                rows.append({"engine": engine, "J": n_entities, "N": n_rows, "run": "—",
                             "status": f"not measured: no {engine}"})
            continue
        print(f"engine: {info['engine']} {info['versions']}; compile s: {info['compile_s']}",
              flush=True)
        for case in cases:
            n_rows, n_entities = (int(float(x)) for x in case.split(":"))
            file = None
            if args.input in ("csv", "parquet"):
                file = str(data_file(args.file_dir, args.input, n_rows, n_entities, args.seed))
            runs = ("ratepool", "bare") if args.bare else ("ratepool",)
            if n_entities in args.scale_out:
                runs = ("scale-out",)
            for run in runs:
                spec = {"run": run, "N": n_rows, "J": n_entities, "engine": engine,
                        "input": args.input, "likelihood": args.likelihood, "seed": args.seed,
                        "n_samples": args.draws, "n_tune": args.warmup,
                        "n_chains": args.chains, "entity_predictions": predictions,
                        "write": args.write, "file": file, "subsample": args.subsample,
                        "windows": args.windows_per_entity}
                row = measure_run(spec, info, args)
                rows.append(row)
                print(f"{run} N={n_rows:,} J={n_entities:,}: {json.dumps(row)}", flush=True)
    add_ratios(rows)
    print(f"\nmachine at the end: {machine()}\n")
    print(markdown_table(rows))
    if args.out:
        write_rows(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
