"""The benchmark's tables: the rows of `benchmark.py` (as dicts, or read back from its CSV)
as Markdown, with ratepool's cost relative to the bare sampler (`add_ratios`)."""

from __future__ import annotations

import csv
from pathlib import Path

COLUMNS = (("engine", "engine"), ("J", "J"), ("N", "N"), ("run", "run"),
           ("status", "status"), ("read", "reader"), ("aggregate s", "aggregate_s"),
           ("compile s", "compile_s"),
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
    if key in ("N", "J", "draws"):
        return f"{value:,}"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if key in ("aggregate_s", "rhat_max_hyper"):
        return f"{value:.3f}"
    if key in ("ratio", "ratio_write", "ratio_cpu", "peak_rss_tree_gb", "peak_pss_tree_gb"):
        return f"{value:.2f}"
    return f"{value:,.1f}"


def markdown_table(rows: list[dict], columns: tuple = COLUMNS) -> str:
    """``rows`` as a Markdown table of ``columns`` ((heading, key) pairs); "—" where absent."""
    lines = ["| " + " | ".join(name for name, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(key, row.get(key)) for _, key in columns) + " |")
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


def write_rows(rows: list[dict], path: Path) -> None:
    """``rows`` as a CSV (the union of their keys, sorted, as columns)."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({key for row in rows for key in row}))
        writer.writeheader()
        writer.writerows(rows)


def read_rows(paths: list[Path]) -> list[dict]:
    """The rows of one or more ``benchmark.py --out`` CSVs, numbers parsed (empty -> None).

    Parameters
    ----------
    paths : list of Path
        CSV files, read in order.

    Returns
    -------
    list of dict
        One dict per row; ints and floats where the text parses as one.
    """
    rows = []
    for path in paths:
        with Path(path).open(newline="") as handle:
            rows.extend({key: _parse(value) for key, value in row.items()}
                        for row in csv.DictReader(handle))
    return rows


def _parse(text: str) -> object:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
