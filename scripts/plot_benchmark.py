#!/usr/bin/env python
"""Plot and tabulate cost against the number of entities J from `benchmark.py` CSVs.

Reads one or more ``benchmark.py --out`` CSVs (e.g. the ``--j-axis`` runs), keeps the rows that
ran (status ``ok``) and draws two log-log panels, one line per engine and path (``ratepool.fit``
or ``fit_scaled``): the run's wall seconds (``wall_s``: the whole fresh process, data
simulation, fit and summaries) against J, with a dashed line proportional to J through each
line's first point and each point labelled with the draws its run kept (runs may differ); and
the smallest bulk ESS of mu, alpha, phi per wall second. Prints the J-axis table (every row,
including those not run, with their reason) as Markdown.

Usage::

    python scripts/plot_benchmark.py --csv j.csv [more.csv ...] \\
        --out docs/benchmarks/cost-vs-j.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_table import markdown_table, read_rows  # noqa: E402

#: The J-axis table: (heading, key) pairs; keys made by `with_derived` included.
J_COLUMNS = (("path", "path"), ("J", "J"), ("N", "N"), ("settings", "settings"),
             ("draws kept", "draws"), ("status", "status"), ("wall s", "wall_s"),
             ("sample s", "sample_s"), ("wall ms per entity", "ms_per_entity"), ("min bulk ESS mu,alpha,phi", "ess_hyper"),
             ("ESS per wall s", "ess_per_wall_s"), ("R-hat max", "rhat_max_hyper"),
             ("div", "divergences"), ("peak RSS tree GB", "peak_rss_tree_gb"),
             ("CPU s", "cpu_s"))


def path_label(row: dict) -> str:
    """``"<engine> fit"`` or ``"<engine> fit_scaled"``: one plotted line per label."""
    return f"{row['engine']} {'fit_scaled' if row['run'] == 'scale-out' else 'fit'}"


def with_derived(row: dict) -> dict:
    """``row`` with its path label, the hyperparameters' min bulk ESS (ESS/s x sample s), ESS
    per wall second and wall milliseconds per entity (where the row has the inputs)."""
    derived = {"path": path_label(row)}
    if row.get("ess_s_hyper") is not None and row.get("sample_s") is not None:
        derived["ess_hyper"] = float(row["ess_s_hyper"] * row["sample_s"])
        if row.get("wall_s"):
            derived["ess_per_wall_s"] = derived["ess_hyper"] / row["wall_s"]
    if row.get("wall_s") is not None and row.get("status") == "ok":
        derived["ms_per_entity"] = 1000 * row["wall_s"] / row["J"]
    return {**row, **derived}


def series(rows: list[dict], key: str) -> dict[str, tuple[list[int], list[float]]]:
    """Per path label, the (J, value) points of ``key`` over the rows that ran, sorted by J."""
    points: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        if row.get("status") == "ok" and row.get(key) is not None:
            points.setdefault(row["path"], []).append((int(row["J"]), float(row[key])))
    return {label: tuple(map(list, zip(*sorted(values)))) for label, values in points.items()}


def plot(rows: list[dict], out: Path) -> None:
    """The two log-log panels of the module docstring, saved as ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    panels = (("wall_s", "wall seconds (whole run)"),
              ("ess_per_wall_s", "min bulk ESS of mu, alpha, phi per wall second"))
    for axis, (key, label) in zip(axes, panels):
        for name, (js, values) in sorted(series(rows, key).items()):
            axis.plot(js, values, marker="o", label=name)
            if key == "wall_s":  # the runs' lengths differ: say how many draws each kept
                for j, value in zip(js, values):
                    draws = next(r["draws"] for r in rows
                                 if r["path"] == name and r["J"] == j and r.get("draws"))
                    axis.annotate(f"{draws:,} draws", (j, value), textcoords="offset points",
                                  xytext=(4, -10), fontsize="x-small")
            if key == "wall_s" and len(js) > 1:
                axis.plot(js, [values[0] * j / js[0] for j in js], linestyle="--",
                          color=axis.lines[-1].get_color(), alpha=0.4,
                          label=f"{name}: proportional to J")
        axis.set(xscale="log", yscale="log", xlabel="J (entities)", ylabel=label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    figure.suptitle("Cost against the number of entities (100 windows per entity)")
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True, help="the PNG")
    args = parser.parse_args(argv)
    rows = sorted((with_derived(row) for row in read_rows(args.csv)),
                  key=lambda row: (row["path"], int(row["J"])))
    plot(rows, args.out)
    print(markdown_table(rows, J_COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
