"""The folder of a model comparison: ``comparison.csv`` (the LOO ranking of the unit the
recommendation uses), ``comparison_window.csv`` (the window ranking for reference, when the
main unit is the entity), ``checks.csv`` (the predictive checks), ``checks.png`` (their
figure), ``comparison.json`` and ``report.html`` (in the results folder's style), written
atomically."""

from __future__ import annotations

import base64
import html
import json
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ratepool.files import atomic_directory
from ratepool.outputs.plots import png_bytes
from ratepool.outputs.report import _STYLE
from ratepool.posterior.comparison_checks import INTERVAL, STATISTICS
from ratepool.posterior.model_comparison import K_THRESHOLD, TIE_SE, ComparisonResult

__all__ = ["COMPARISON_FILES", "checks_figure", "render_comparison", "write_comparison"]

COMPARISON_FILES = {"table": "comparison.csv", "reference": "comparison_{unit}.csv",
                    "checks": "checks.csv",
                    "figure": "checks.png", "json": "comparison.json",
                    "report": "report.html"}


def checks_figure(result: ComparisonResult) -> Figure:
    """One panel per statistic: each model's replicated interval and mean against the
    observed value (vertical line)."""
    checks = result.checks
    models = list(dict.fromkeys(checks["model"]))
    figure = Figure(figsize=(4 * len(STATISTICS), 0.6 * len(models) + 1.6))
    axes = figure.subplots(1, len(STATISTICS), sharey=True)
    for axis, (name, meaning) in zip(np.atleast_1d(axes), STATISTICS.items()):
        rows = checks[checks["statistic"] == name].set_index("model").loc[models]
        position = np.arange(len(models))
        axis.hlines(position, rows["low"], rows["high"], color="tab:blue", lw=3,
                    label=f"replicated {INTERVAL:.0%} interval")
        axis.plot(rows["replicated_mean"], position, "o", color="tab:blue",
                  label="replicated mean")
        axis.axvline(float(rows["observed"].iloc[0]), color="tab:red", label="observed")
        axis.set_title(name.replace("_", " "), fontsize=10)
        axis.set_xlabel(textwrap.fill(meaning, 45), fontsize=7)
    first = np.atleast_1d(axes)[0]
    first.set_yticks(np.arange(len(models)), models, fontsize=8)
    first.invert_yaxis()
    first.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure


def _esc(value: object) -> str:
    return html.escape(str(value))


_UNIT_TEXT = {
    "window": "one window of a known entity, given its rate (is the next window of this "
              "entity predicted well?)",
    "entity": "all windows of one entity, by their marginal likelihood with the entity's rate "
              "integrated out (is a new entity predicted well?)",
}


def _html_table(table) -> str:
    return table.drop(columns=["rank"]).to_html(float_format=lambda v: f"{v:.2f}", border=0,
                                                escape=True)


def render_comparison(result: ComparisonResult, figure_png: bytes, title: str) -> str:
    """The self-contained HTML page of a comparison."""
    table = _html_table(result.table)
    reference = "".join(
        f"<h2>For reference: ranking by {_esc(unit)} LOO</h2><p class=\"muted\">LOO leaves "
        f"out {_esc(_UNIT_TEXT[unit])}. Not used for the recommendation.</p>"
        + _html_table(other) for unit, other in result.tables.items() if unit != result.unit)
    checks = result.checks.to_html(float_format=lambda v: f"{v:.3g}", border=0, index=False,
                                   escape=True)
    skipped = "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in result.skipped.items())
    encoded = base64.b64encode(figure_png).decode("ascii")
    unit = _UNIT_TEXT[result.unit]
    body = "\n".join([
        f"<h1>{_esc(title)}</h1>",
        f"<p><b>Recommended:</b> {_esc(result.recommendation)}.</p>",
        "<h2>Ranking by PSIS-LOO</h2>",
        f"<p class=\"muted\">LOO leaves out {_esc(unit)}. elpd_loo: expected log predictive "
        "density (higher is better); elpd_diff and dse: the difference to the best model and "
        f"its standard error (paired); weight: stacking weight. A model within {TIE_SE:g} "
        "standard errors of the best ties with it, and the simpler one is recommended. "
        f"Pareto k above {K_THRESHOLD}: PSIS-LOO is unreliable for that model.</p>",
        table,
        reference,
        f"<h2>Skipped candidates</h2><ul>{skipped}</ul>" if skipped else "",
        "<h2>Predictive checks</h2>",
        f"<p class=\"muted\">Observed statistic against its {INTERVAL:.0%} interval over the "
        "replicated data sets (y_rep, one per draw); p = P(replicated &ge; observed), near 0 "
        "or 1 when the model misses that feature.</p>",
        f'<img alt="predictive checks" src="data:image/png;base64,{encoded}">',
        checks,
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n"
            "</body></html>\n")


def write_comparison(result: ComparisonResult, out: str | Path, *,
                     title: str = "ratepool model comparison",
                     record: dict | None = None) -> Path:
    """Write the comparison folder atomically (replaced only once complete); return it."""
    out = Path(out)
    figure_png = png_bytes(checks_figure(result))
    with atomic_directory(out) as staging:
        result.table.to_csv(staging / COMPARISON_FILES["table"])
        for unit, other in result.tables.items():
            if unit != result.unit:
                other.to_csv(staging / COMPARISON_FILES["reference"].format(unit=unit))
        result.checks.to_csv(staging / COMPARISON_FILES["checks"], index=False)
        (staging / COMPARISON_FILES["figure"]).write_bytes(figure_png)
        (staging / COMPARISON_FILES["json"]).write_text(
            json.dumps({**result.to_dict(), **(record or {})}, indent=2, default=str) + "\n",
            encoding="utf-8")
        (staging / COMPARISON_FILES["report"]).write_text(
            render_comparison(result, figure_png, title), encoding="utf-8")
    return out
