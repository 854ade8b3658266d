"""``ratepool fit``, ``prior-check`` and ``export-data``: commands that start from a data file."""

from __future__ import annotations

import argparse
from pathlib import Path

from ratepool.cli.common import (
    EXIT_OK,
    Phases,
    command_line,
    config_from_args,
    data_options,
    load_data,
    load_data_for_fit,
    out_dir,
    print_result,
    write_folder,
)
from ratepool.errors import RatepoolError
from ratepool.model.description import describe
from ratepool.model.standata import stan_data
from ratepool.workflow.cmdstan_files import write_stan_data
from ratepool.workflow.fit import fit, sample_prior


def run_fit(args: argparse.Namespace) -> int:
    from ratepool.outputs.results import run_record

    phase = Phases(args.quiet)
    config = config_from_args(args)
    if args.prior_draws < 0:
        raise RatepoolError(f"--prior-draws must be 0 or more, got {args.prior_draws}")
    phase(f"reading {args.data}")
    data = load_data_for_fit(args, config)
    out = out_dir(args, Path("results") / Path(args.data).stem)
    phase(f"sampling {config.n_chains} chains x ({config.n_tune} warmup + {config.n_samples} "
          f"draws) for {data.n_entities} entities, {data.n_windows_total} windows")
    result = fit(data, config, prior_draws=args.prior_draws, show_progress=not args.quiet)
    print_result(result)
    record = run_record(result, source="fit", data_file=args.data,
                        data_options=data_options(args), command=command_line(args.argv))
    write_folder(out, result, record)
    return EXIT_OK


def run_prior_check(args: argparse.Namespace) -> int:
    from ratepool.files import atomic_directory
    from ratepool.model.prior import prior_predictive_check
    from ratepool.outputs.plots import PLOT_FILES, png_bytes, prior_check_figure
    from ratepool.outputs.results import dump_json

    phase = Phases(args.quiet)
    if args.draws < 1:
        raise RatepoolError(f"--draws must be at least 1, got {args.draws}")
    config = config_from_args(args)
    out = out_dir(args, Path("results") / f"{Path(args.data).stem}-prior-check")
    phase(f"reading {args.data}")
    data = load_data_for_fit(args, config)
    phase(f"drawing {args.draws} prior predictive draws for {data.n_entities} entities")
    idata = sample_prior(data, config, draws=args.draws)
    check = prior_predictive_check(idata, data)
    rows = [("share in 0-50", f"{check['share_0_50']:.1%}"),
            (f"share in the observed range {check['observed_min']}-{check['observed_max']}",
             f"{check['share_observed_range']:.1%}"),
            ("share zero", f"{check['share_zero']:.1%}"),
            *((key, f"{check[key]:.4g}") for key in ("q05", "q25", "q50", "q75", "q95", "q99",
                                                     "max"))]
    width = max(len(label) for label, _ in rows)
    print(f"Prior predictive check ({check['n_draws']} draws x {data.n_entities} entities, "
          "count in one window):")
    for label, value in rows:
        print(f"  {label:<{width}}{value:>10}")
    with atomic_directory(out) as staging:
        (staging / "prior_check.json").write_text(
            dump_json({**check, "config": config.to_dict(), "data_file": args.data}),
            encoding="utf-8")
        (staging / PLOT_FILES["prior"]).write_bytes(
            png_bytes(prior_check_figure(idata, check,
                                         (data.count_value, data.count_freq))))
    print(f"\nWritten: {out / 'prior_check.json'}, {out / PLOT_FILES['prior']}")
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    data = load_data(args, config)
    if config.temporal is not None:
        from ratepool.model.temporal import temporal_stan_data

        values = temporal_stan_data(data, config, prior_only=args.prior_only)
    else:
        # With exposure, zero-inflation or bytes the rows go into the JSON too, so that
        # 'report' can rebuild the data (per-window exposures, zeros and bytes) from it.
        values = stan_data(data, config, prior_only=args.prior_only,
                           keep_rows=describe(data, config).export_keeps_rows)
    json_path, labels_path = write_stan_data(values, data, args.output, args.labels)
    shape = (f"K = {values['K']} distinct counts" if "K" in values
             else "rows ordered by entity and window")
    print(f"Wrote {json_path} (J = {values['J']} entities, N = {values['N']} rows, "
          f"{shape}) and the label table {labels_path}.")
    sampler = "sample algorithm=fixed_param" if args.prior_only else (
        f"sample num_warmup={config.n_tune} num_samples={config.n_samples} "
        f"num_chains={config.n_chains} adapt delta={config.target_accept}"
        + (f" num_threads={config.n_chains * config.threads_per_chain}"
           if values.get("grainsize") else ""))
    print("Run the compiled program with CmdStan, e.g.\n"
          f"  ./{'temporal' if config.temporal else 'hierarchical'}_negbinom {sampler} "
          f"data file={json_path} "
          f"random seed={config.random_seed} output file=out.csv")
    if values.get("grainsize") and not args.prior_only:
        print(f"(threads_per_chain = {config.threads_per_chain}: num_threads needs the program "
              "built with STAN_THREADS=true; a plain build accepts only num_threads=1)")
    if not args.prior_only:
        print("then read its output back with\n"
              "  ratepool report --from-cmdstan-csv out_*.csv "
              f"--data {json_path} --labels {labels_path}")
    return EXIT_OK
