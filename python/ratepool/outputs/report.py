"""The self-contained HTML report of a results folder (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import html
import json
from typing import Any, Mapping, Sequence

import pandas as pd

from ratepool.model.prior import PLAUSIBLE_RANGE
from ratepool.outputs.plots import PLOT_FILES
from ratepool.posterior.diagnostic_table import diagnostic_rows
from ratepool.posterior.diagnostics import (
    CONVERGED_RULE,
    GOOD,
    PROBLEM,
    WARNING,
)

__all__ = ["render_report", "MAX_ENTITY_ROWS"]

#: Entity rows shown in the report (all are in entity_summary.csv).
MAX_ENTITY_ROWS = 500

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
.grade { font-weight: bold; padding: .1em .5em; border-radius: .3em; }
.Good { background: #d8f0d8; color: #185c18; } .Warning { background: #fff0c0; color: #6b5200; }
.Problem { background: #f8d0d0; color: #7a1010; }
img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
code, pre { background: #f6f6f6; padding: .1em .3em; } pre { padding: .6em; overflow-x: auto; }
.muted { color: #666; font-size: .9em; }
"""

_FIGURES = [
    (PLOT_FILES["trace"], "Trace of mu, alpha and phi",
     "Each chain's density and draws. Converged chains overlap and look like stationary "
     "noise."),
    (PLOT_FILES["posterior"], "Posterior of mu, alpha and phi",
     "Density of the draws with the posterior mean and 94% highest-density interval; "
     "dashed: the prior density."),
    (PLOT_FILES["ppc"], "Posterior predictive check",
     "Data replicated from the fitted model against the observed data. Observed points "
     "well outside the replicated bands point to misfit."),
    (PLOT_FILES["entities"], "Entity rates",
     "Raw rate (total / windows, red cross) against the partially pooled estimate (blue: "
     "median, 50% interval and 94% HDI). Entities with few windows are pulled most toward "
     "the population mean."),
    (PLOT_FILES["coefficients"], "Covariate effects",
     "Rate ratio per unit of each entity covariate on its original scale, exp(beta / scale) "
     "(for a level of a categorical covariate: against the reference level): median, 50% "
     "interval and 94% HDI. The dotted line is no effect. The table is coefficients.csv."),
    (PLOT_FILES["prior"], "Prior predictive check",
     "Counts in one window simulated from the priors alone, against the observed counts. "
     "Most should be plausible (0-50 events, and the data's own range) without ruling out "
     "larger counts."),
]


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _grade(grade: str) -> str:
    css = grade if grade in (GOOD, WARNING, PROBLEM) else ""
    return f'<span class="grade {css}">{_esc(grade)}</span>'


def _diagnostics_section(diagnostics: Mapping[str, Any]) -> str:
    body = "".join(
        f'<tr><td class="text">{_esc(row.name)}</td><td>{_esc(row.value)}</td>'
        f'<td class="text">{_esc(row.where)}</td><td class="text">{_grade(row.grade)}</td>'
        f'<td class="text muted">{_esc(row.thresholds)}</td></tr>'
        for row in diagnostic_rows(diagnostics)
    )
    converged = "yes" if diagnostics["converged"] else "no"
    parts = [
        "<h2>Diagnostics</h2>",
        '<p class="muted">The first four rows cover mu, alpha and phi; the rows marked '
        '"all" cover every parameter, the entity rates included, and name the worst one.</p>',
        '<table><tr><th class="text">diagnostic</th><th>value</th><th class="text">where</th>'
        f'<th class="text">grade</th><th class="text">thresholds</th></tr>{body}</table>',
        f"<p>Converged ({_esc(CONVERGED_RULE)}): <b>{converged}</b></p>",
    ]
    if diagnostics.get("advice"):
        items = "".join(f"<li>{_esc(line)}</li>" for line in diagnostics["advice"])
        parts.append(f"<p>What to try:</p><ul>{items}</ul>")
    return "\n".join(parts)


#: Columns shown with other than 3 decimals.
_DECIMALS = {"ess_bulk": 0, "ess_tail": 0, "r_hat": 4}


def _table(frame: pd.DataFrame) -> str:
    formatters = {column: (lambda v, d=_DECIMALS.get(column, 3): f"{v:.{d}f}")
                  for column in frame.columns if pd.api.types.is_float_dtype(frame[column])}
    return frame.to_html(formatters=formatters, border=0, na_rep="", escape=True)


def _prior_section(check: Mapping[str, Any] | None) -> str:
    if not check:
        return ""
    low, high = PLAUSIBLE_RANGE
    quantiles = ", ".join(f"{key}: {check[key]:g}" for key in
                          ("q05", "q25", "q50", "q75", "q95", "q99"))
    observed = ""
    if "share_observed_range" in check:
        observed = (f" and {check['share_observed_range']:.1%} in the data's observed range "
                    f"{check['observed_min']}-{check['observed_max']}")
    return (
        "<h2>Prior predictive check</h2>"
        f"<p>Of {check['n_draws']} prior draws of one window's count per entity, "
        f"{check['share_0_50']:.1%} lie in {low}-{high}{_esc(observed)}; "
        f"{check['share_zero']:.1%} are zero. Quantiles: {quantiles}; largest "
        f"{check['max']:g}.</p>"
    )


def _figures_section(images: Mapping[str, bytes]) -> str:
    parts = ["<h2>Figures</h2>"]
    for name, heading, caption in _FIGURES:
        if name not in images:
            continue
        encoded = base64.b64encode(images[name]).decode("ascii")
        parts.append(f"<h3>{_esc(heading)}</h3><p class=\"muted\">{_esc(caption)}</p>"
                     f'<img alt="{_esc(heading)}" src="data:image/png;base64,{encoded}">')
    return "\n".join(parts)


def _run_section(run: Mapping[str, Any]) -> str:
    data = run.get("data", {})
    versions = {k: v for k, v in run.get("versions", {}).items() if v is not None}
    engine = ", ".join(f"{k} {v}" for k, v in run.get("engine_versions", {}).items()
                       if k != "engine")
    command = " ".join(run.get("command", []))
    rows = [
        ("source", run.get("source")),
        ("engine", f"{run.get('engine')} ({engine})"),
        ("seed", run.get("seed")),
        ("data file", data.get("file")),
        ("data SHA-256", data.get("sha256")),
        ("Stan program SHA-256", run.get("stan_program", {}).get("sha256")),
        ("created (UTC)", run.get("created_utc")),
        ("command", command),
    ]
    body = "".join(f'<tr><th class="text">{_esc(k)}</th><td class="text"><code>{_esc(v)}</code>'
                   "</td></tr>" for k, v in rows if v not in (None, ""))
    version_rows = "".join(f'<tr><th class="text">{_esc(k)}</th><td class="text">{_esc(v)}</td>'
                           "</tr>" for k, v in versions.items())
    config = json.dumps(run.get("config", {}), indent=2)
    files = ", ".join(f"<code>{_esc(name)}</code>" for name in run.get("files", []))
    return (
        "<h2>Run</h2>"
        f"<table>{body}</table>"
        "<h3>Config</h3>"
        f"<pre>{_esc(config)}</pre>"
        "<p>Rerun with <code>ratepool fit DATA --config config.toml</code> (same column options) "
        "using the <code>config.toml</code> in this folder.</p>"
        f"<h3>Software</h3><table>{version_rows}</table>"
        f"<h3>Files in this folder</h3><p>{files}</p>"
        "<p class=\"muted\">Reload the draws in Python with <code>ratepool.outputs.results."
        "load_inference_data('inference_data.nc')</code> or "
        "<code>arviz.from_netcdf('inference_data.nc')</code>.</p>"
    )


def _bytes_section(table: pd.DataFrame | None) -> str:
    if table is None:
        return ""
    more = (f"<p class=\"muted\">First {MAX_ENTITY_ROWS} of {len(table)} entities; all are in "
            "bytes_summary.csv.</p>" if len(table) > MAX_ENTITY_ROWS else "")
    return (
        "<h2>Bytes per event</h2>"
        "<p class=\"muted\">Model: for each window with y &gt; 0 events, log(bytes / y) ~ "
        "Normal(m_i - v/2, sqrt(v)), v = sigma_w&sup2; + log1p(expm1(sigma_e&sup2;) / y): "
        "the spread shrinks with the events (sigma_e: one event's log spread; sigma_w: a "
        "window's factor shared by its events); m_i ~ Normal(m0, tau); a separate factor of "
        "the joint density (no parameter shared with the counts). mean = exp(m_i), the mean "
        "bytes per event at any count (the headline); median = exp(m_i - (sigma_w&sup2; + "
        "sigma_e&sup2;)/2), the median size of one event; observed_mean: the entity's bytes / "
        "events; observed_median: exp of its mean log bytes per event. 94% HDIs. m0, tau, "
        "sigma_w and sigma_e are in the population table and graded in the diagnostics.</p>"
        + _table(table.head(MAX_ENTITY_ROWS)) + more
    )


def render_report(
    *,
    title: str,
    diagnostics: Mapping[str, Any],
    population: pd.DataFrame,
    entities: pd.DataFrame,
    run: Mapping[str, Any],
    images: Mapping[str, bytes],
    prior_check: Mapping[str, Any] | None = None,
    bytes_table: pd.DataFrame | None = None,
    sections: Sequence[str] = (),
) -> str:
    """The report as one HTML document with nothing to fetch.

    Parameters
    ----------
    title : str
        Page title.
    diagnostics : mapping
        `ratepool.get_model_diagnostics` output.
    population, entities : pandas.DataFrame
        Population parameter summary and entity summary.
    run : mapping
        The run record (``run.json``).
    images : mapping
        {file name: PNG bytes}; the known figures are shown in a fixed order.
    prior_check : mapping, optional
        `ratepool.prior_predictive_check` output.
    bytes_table : pandas.DataFrame, optional
        `ratepool.posterior.bytes_summary.bytes_summary` output, when bytes were fitted.
    sections : sequence of str, optional
        Further HTML sections of a model (e.g. the temporal model's), shown after the figures.
    """
    data = run.get("data", {})
    shown = entities.head(MAX_ENTITY_ROWS)
    more = (f"<p class=\"muted\">First {MAX_ENTITY_ROWS} of {len(entities)} entities; all are "
            "in entity_summary.csv.</p>" if len(entities) > MAX_ENTITY_ROWS else "")
    summary_line = (
        f"{data.get('n_entities', len(entities))} entities, {data.get('n_windows', '?')} "
        f"windows; engine {run.get('engine')}; {run.get('config', {}).get('n_chains')} chains x "
        f"{run.get('config', {}).get('n_samples')} draws after "
        f"{run.get('config', {}).get('n_tune')} warmup; seed {run.get('seed')}"
    )
    body = "\n".join([
        f"<h1>{_esc(title)}</h1>",
        f"<p>{_esc(summary_line)}</p>",
        "<p class=\"muted\">Model: mu ~ Exponential, alpha, phi ~ HalfNormal, theta_i ~ "
        "Gamma(mu alpha, alpha), y_ij ~ NegBinomial2(theta_i, phi).</p>",
        _diagnostics_section(diagnostics),
        "<h2>Population parameters</h2>",
        _table(population),
        _prior_section(prior_check),
        _figures_section(images),
        *sections,
        "<h2>Entities</h2>",
        "<p class=\"muted\">shrinkage: share of the distance from the raw rate to the "
        "population mean that the estimate moved (0 = none, 1 = fully pooled).</p>",
        _table(shown),
        more,
        _bytes_section(bytes_table),
        _run_section(run),
    ])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n"
        "</body></html>\n"
    )
