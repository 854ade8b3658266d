"""Figures of a fit, drawn with matplotlib's Agg canvas (no pyplot, no global backend change).

Every ``*_figure`` function returns a `matplotlib.figure.Figure`; `png_bytes` renders one.
`fit_figures` makes the set the results folder and the report show.
"""

from __future__ import annotations

import io
import math
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .config import ModelConfig
from .data import CountData
from .inference import PARAMETERS
from .prior import PLAUSIBLE_RANGE, prior_predictive_check
from .summary import HDI_PROB

__all__ = [
    "png_bytes",
    "trace_figure",
    "posterior_figure",
    "ppc_figure",
    "entity_rates_figure",
    "prior_check_figure",
    "fit_figures",
    "PLOT_FILES",
]

#: File names of the figures in a results folder.
PLOT_FILES = {
    "trace": "trace.png",
    "posterior": "posterior.png",
    "ppc": "posterior_predictive.png",
    "entities": "entity_rates.png",
    "prior": "prior_predictive.png",
}
#: Entities shown in the forest plot; beyond this the highest and lowest rates are shown.
MAX_FOREST_ENTITIES = 60
#: Predictive draws overlaid in the count-distribution check (a fixed subset: reproducible).
PPC_DRAWS = 200
_LABELS = {"mu": "mu (population mean rate)", "alpha": "alpha (concentration)",
           "phi": "phi (overdispersion)"}
_DPI = 100


def png_bytes(figure: Figure) -> bytes:
    """Render ``figure`` to PNG bytes with the Agg canvas."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _chains(values: Any) -> np.ndarray:
    """(chain, draw) array of a scalar variable."""
    return np.asarray(values).reshape(np.shape(values)[0], -1)


def trace_figure(idata: az.InferenceData, names: tuple[str, ...] = PARAMETERS) -> Figure:
    """Per parameter: each chain's marginal density (left) and its trace (right)."""
    figure = Figure(figsize=(10, 2.4 * len(names)), layout="constrained")
    axes = figure.subplots(len(names), 2, squeeze=False, width_ratios=[1, 2])
    for row, name in enumerate(names):
        draws = _chains(idata.posterior[name])
        bins = np.histogram_bin_edges(draws, bins=40)
        for chain, values in enumerate(draws):
            colour = f"C{chain % 10}"
            axes[row, 0].hist(values, bins=bins, density=True, histtype="step", color=colour,
                              label=f"chain {chain + 1}")
            axes[row, 1].plot(values, color=colour, linewidth=0.5, alpha=0.8)
        axes[row, 0].set_title(_LABELS.get(name, name), loc="left", fontsize=10)
        axes[row, 0].set_yticks([])
        axes[row, 1].set_ylabel(name)
        axes[row, 1].set_xlim(0, draws.shape[1] - 1)
    axes[-1, 1].set_xlabel("draw (after warmup)")
    axes[0, 0].legend(fontsize=7, frameon=False)
    figure.suptitle("Trace: chains should overlap and look like stationary noise")
    return figure


def _prior_density(name: str, config: ModelConfig, x: np.ndarray) -> np.ndarray:
    """Density of the prior of mu, alpha or phi at ``x``."""
    if name == "mu":
        rate = config.mu_prior_rate
        return rate * np.exp(-rate * x)
    sd = config.alpha_prior_sd if name == "alpha" else config.overdispersion_prior_sd
    return 2.0 / (sd * math.sqrt(2 * math.pi)) * np.exp(-0.5 * (x / sd) ** 2)


def posterior_figure(idata: az.InferenceData, config: ModelConfig | None = None,
                     names: tuple[str, ...] = PARAMETERS) -> Figure:
    """Posterior histogram of each parameter with its mean and 94% HDI; the prior dashed."""
    figure = Figure(figsize=(4 * len(names), 3.2), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for axis, name in zip(axes, names):
        values = np.asarray(idata.posterior[name]).ravel()
        low, high = az.hdi(values, hdi_prob=HDI_PROB)
        axis.hist(values, bins=50, density=True, color="C0", alpha=0.6, label="posterior")
        mean = float(values.mean())
        axis.axvline(mean, color="k", linewidth=1)
        axis.plot([low, high], [0, 0], color="k", linewidth=4, solid_capstyle="butt",
                  label=f"{HDI_PROB:.0%} HDI")
        if config is not None:
            x = np.linspace(max(values.min() * 0.9, 1e-12), values.max() * 1.1, 200)
            axis.plot(x, _prior_density(name, config, x), "--", color="C3", label="prior")
        axis.set_title(f"{_LABELS.get(name, name)}\nmean {mean:.3g}, {HDI_PROB:.0%} HDI "
                       f"[{low:.3g}, {high:.3g}]", fontsize=9)
        axis.set_yticks([])
    axes[0].legend(fontsize=7, frameon=False)
    return figure


def _count_shares(counts: np.ndarray, upper: int) -> np.ndarray:
    """Share of each value 0..upper in ``counts`` (values above ``upper`` in the last bin)."""
    clipped = np.minimum(counts, upper)
    return np.bincount(clipped, minlength=upper + 1) / max(len(counts), 1)


def ppc_figure(idata: az.InferenceData, data: CountData) -> Figure:
    """Posterior predictive checks.

    Left (when per-window replicates exist): the share of windows with each count, observed
    against the 5-95% band of replicated data sets. Right: each entity's observed total
    against the 90% interval of its replicated total, with the share of entities inside.
    """
    predictive = idata.get("posterior_predictive")
    has_rows = predictive is not None and "y_rep" in predictive and data.has_rows
    has_totals = predictive is not None and "y_rep_total" in predictive
    panels = int(has_rows) + int(has_totals)
    figure = Figure(figsize=(6 * max(panels, 1), 4), layout="constrained")
    if panels == 0:
        figure.text(0.5, 0.5, "no posterior predictive draws in this run", ha="center")
        return figure
    axes = list(figure.subplots(1, panels, squeeze=False)[0])
    if has_rows:
        _ppc_counts(axes.pop(0), np.asarray(predictive["y_rep"]), data.y)
    if has_totals:
        _ppc_totals(axes.pop(0), np.asarray(predictive["y_rep_total"]), data)
    figure.suptitle("Posterior predictive check: observed data against data replicated "
                    "from the fit")
    return figure


def _ppc_counts(axis: Any, y_rep: np.ndarray, y: np.ndarray) -> None:
    replicas = y_rep.reshape(-1, y_rep.shape[-1])
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(replicas), size=min(PPC_DRAWS, len(replicas)), replace=False)
    upper = int(max(np.quantile(y, 0.99), 1)) + 1
    shares = np.array([_count_shares(replicas[i], upper) for i in np.sort(chosen)])
    values = np.arange(upper + 1)
    low, mid, high = np.quantile(shares, [0.05, 0.5, 0.95], axis=0)
    axis.fill_between(values, low, high, step="mid", color="C0", alpha=0.3,
                      label="replicated, 5-95%")
    axis.step(values, mid, where="mid", color="C0", linewidth=1, label="replicated, median")
    axis.plot(values, _count_shares(y, upper), "o", color="k", markersize=3, label="observed")
    axis.set_xlabel(f"count in a window ({upper} = {upper} or more)")
    axis.set_ylabel("share of windows")
    axis.set_title("Distribution of counts per window", fontsize=10)
    axis.legend(fontsize=8, frameon=False)


def _ppc_totals(axis: Any, y_rep_total: np.ndarray, data: CountData) -> None:
    replicas = y_rep_total.reshape(-1, y_rep_total.shape[-1])
    low, high = np.quantile(replicas, [0.05, 0.95], axis=0)
    observed = data.entity_total
    inside = float(np.mean((observed >= low) & (observed <= high)))
    order = np.argsort(data.raw_rate(), kind="stable")
    position = np.arange(len(order))
    axis.vlines(position, low[order], high[order], color="C0", alpha=0.6,
                label="replicated total, 90%")
    axis.plot(position, observed[order], "o", color="k", markersize=3, label="observed total")
    axis.set_yscale("symlog", linthresh=10)
    axis.set_xlabel("entity (sorted by observed rate)")
    axis.set_ylabel("total count")
    axis.set_title(f"Entity totals: {inside:.0%} inside their 90% interval", fontsize=10)
    axis.legend(fontsize=8, frameon=False)


def entity_rates_figure(summary: pd.DataFrame, mu_mean: float,
                        max_entities: int = MAX_FOREST_ENTITIES) -> Figure:
    """Forest plot: each entity's raw rate and its partially pooled estimate with 94% HDI.

    With more than ``max_entities`` entities, the half with the highest and the half with the
    lowest estimates are shown.
    """
    table = summary.sort_values("theta_mean", kind="stable")
    note = ""
    if len(table) > max_entities:
        half = max_entities // 2
        note = f" ({max_entities} of {len(table)}: lowest and highest estimates)"
        table = pd.concat([table.iloc[:half], table.iloc[-half:]])
    position = np.arange(len(table))
    figure = Figure(figsize=(8, max(3.0, 0.22 * len(table) + 1.5)), layout="constrained")
    axis = figure.subplots()
    axis.hlines(position, table["theta_hdi_low"], table["theta_hdi_high"], color="C0",
                linewidth=1.5, label=f"shrunk estimate, {HDI_PROB:.0%} HDI")
    axis.plot(table["theta_mean"], position, "o", color="C0", markersize=4,
              label="shrunk estimate (posterior mean)")
    axis.plot(table["raw_rate"], position, "x", color="C3", markersize=5,
              label="raw rate (total / windows)")
    axis.axvline(mu_mean, color="k", linestyle=":", linewidth=1, label="population mean mu")
    axis.set_yticks(position, [f"{label} (n={n})" for label, n in
                               zip(table.index, table["n_windows"])], fontsize=7)
    if note:  # the gap between the lowest and the highest estimates
        axis.axhline(max_entities // 2 - 0.5, color="grey", linestyle="--", linewidth=0.8)
    axis.set_ylim(-1, len(table))
    axis.set_xlabel("events per window")
    axis.set_title("Entity rates: raw against partially pooled" + note, fontsize=10)
    axis.legend(fontsize=7, loc="lower right")
    return figure


def prior_check_figure(prior_idata: az.InferenceData, check: dict[str, Any],
                       observed: np.ndarray | None = None) -> Figure:
    """Prior predictive counts for one window: ECDF on a log scale, the plausible range shaded."""
    counts = np.sort(np.asarray(prior_idata.prior_predictive["y_pred"]).ravel())
    low, high = PLAUSIBLE_RANGE
    figure = Figure(figsize=(8, 4), layout="constrained")
    axis = figure.subplots()
    ecdf = np.arange(1, len(counts) + 1) / len(counts)
    axis.step(counts, ecdf, where="post", color="C0", label="prior predictive")
    if observed is not None and len(observed):
        sorted_obs = np.sort(observed)
        axis.step(sorted_obs, np.arange(1, len(sorted_obs) + 1) / len(sorted_obs),
                  where="post", color="k", linewidth=1, label="observed")
    axis.axvspan(low, high, color="C2", alpha=0.15, label=f"plausible range {low}-{high}")
    axis.set_xscale("symlog", linthresh=1)
    axis.set_xlim(0, max(float(counts[-1]), high) * 1.5)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("count in one window")
    axis.set_ylabel("cumulative share")
    axis.set_title(
        f"Prior predictive check: {check['share_0_50']:.1%} of {check['n_draws']} draws x "
        f"entities in {low}-{high}; median {check['q50']:g}, 95% quantile {check['q95']:g}",
        fontsize=10,
    )
    axis.legend(fontsize=8, frameon=False, loc="lower right")
    return figure


def fit_figures(idata: az.InferenceData, data: CountData, summary: pd.DataFrame,
                config: ModelConfig | None = None) -> dict[str, bytes]:
    """The figures of a results folder as {file name: PNG bytes}."""
    mu_mean = float(idata.posterior["mu"].mean())
    figures = {
        PLOT_FILES["trace"]: trace_figure(idata),
        PLOT_FILES["posterior"]: posterior_figure(idata, config),
        PLOT_FILES["ppc"]: ppc_figure(idata, data),
        PLOT_FILES["entities"]: entity_rates_figure(summary, mu_mean),
    }
    if "prior_predictive" in idata.groups() and "y_pred" in idata.prior_predictive:
        figures[PLOT_FILES["prior"]] = prior_check_figure(idata, prior_predictive_check(idata),
                                                          data.y)
    return {name: png_bytes(figure) for name, figure in figures.items()}
