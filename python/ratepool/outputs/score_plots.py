"""Figure of a scored file: the most surprising windows against their predictive intervals."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from ratepool.posterior.anomaly import ScoreResult

__all__ = ["anomalies_figure"]

#: Rows shown by default.
DEFAULT_TOP = 20


def _row_label(row: dict, entity: str, window: str | None) -> str:
    text = str(row[entity])
    return f"{text} / {row[window]}" if window is not None else text


def anomalies_figure(result: "ScoreResult", top: int = DEFAULT_TOP) -> Figure:
    """The ``top`` rows with the smallest two-sided p-values: each row's predictive interval
    (bar), predictive mean (tick) and observed count (dot: red when flagged).

    The x axis is logarithmic (symlog, so zero counts show) when the counts span more than two
    orders of magnitude.
    """
    table = result.table
    names = result.info.get("columns", {})
    entity, window = names.get("entity", "entity"), names.get("window")
    if window is None and "window" in table.columns:
        window = "window"
    shown = table.nsmallest(top, "p_value", keep="first").iloc[::-1]
    height = 1.2 + 0.32 * max(len(shown), 1)
    figure = Figure(figsize=(9, height), layout="constrained")
    axes = figure.subplots()
    if len(shown) == 0:
        axes.text(0.5, 0.5, "no rows scored", ha="center", va="center")
        axes.set_axis_off()
        return figure
    rows = np.arange(len(shown))
    axes.hlines(rows, shown["pred_lower"], shown["pred_upper"], color="0.6", linewidth=5,
                label=f"{result.interval:.0%} predictive interval")
    axes.scatter(shown["pred_mean"], rows, marker="|", s=120, color="0.2",
                 label="predictive mean", zorder=3)
    flagged = shown["anomaly"].to_numpy()
    axes.scatter(shown["count"].to_numpy()[flagged], rows[flagged], color="C3", zorder=4,
                 label="observed count, flagged")
    axes.scatter(shown["count"].to_numpy()[~flagged], rows[~flagged], color="C0", zorder=4,
                 label="observed count, not flagged")
    labels = [_row_label(r, entity, window) + (" (unseen)" if r["unseen"] else "")
              for r in shown.to_dict("records")]
    axes.set_yticks(rows, labels, fontsize=8)
    values = np.concatenate([shown["count"], shown["pred_upper"], shown["pred_lower"]])
    if values.max() > 100 * max(values[values > 0].min(initial=1), 1):
        axes.set_xscale("symlog", linthresh=1)
    axes.set_xlabel("count in the window")
    axes.set_title(f"The {len(shown)} most surprising windows (smallest two-sided p-value); "
                   f"{int(table['anomaly'].sum())} of {len(table)} flagged\n"
                   f"{result.rule.describe()}", loc="left", fontsize=9)
    axes.legend(fontsize=8, loc="lower right")
    return figure
