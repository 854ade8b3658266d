"""Figures of a fit, drawn on matplotlib's Agg canvas (no pyplot figures, no global backend
change).

ArviZ draws whatever it can onto axes given to it: ``plot_trace``, ``plot_posterior``,
``plot_ppc`` (counts per window), ``plot_forest`` and ``plot_ecdf``; the prior densities come
from scipy.stats. Drawn here only: each entity's observed total against its own replicated
interval, which ArviZ's plots (pooled distributions) do not show.

Every ``*_figure`` function returns a `matplotlib.figure.Figure`; `png_bytes` renders one.
`fit_figures` makes the set the results folder and the report show.
"""

from __future__ import annotations

import io
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter
from scipy import stats

from ratepool.data.counts import CountData
from ratepool.model.config import ModelConfig
from ratepool.model.description import describe_inference_data
from ratepool.model.prior import PLAUSIBLE_RANGE, prior_predictive_check
from ratepool.posterior.entity_predictive import entity_predictive
from ratepool.posterior.inference import PARAMETERS
from ratepool.posterior.summary import HDI_PROB

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
    "coefficients": "coefficients.png",
}
#: Entities shown in the forest plot; beyond this the highest and lowest rates are shown.
MAX_FOREST_ENTITIES = 60
#: Predictive draws overlaid in the count-distribution check (a fixed subset: reproducible).
PPC_DRAWS = 200
#: Draws of the entity totals derived for the check when the fit's program skipped them.
PPC_TOTAL_DRAWS = 1000
_LABELS = {"mu": "mu (population mean rate)", "alpha": "alpha (concentration)",
           "phi": "phi (overdispersion)"}
_DPI = 100


def png_bytes(figure: Figure) -> bytes:
    """Render ``figure`` to PNG bytes with the Agg canvas."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def trace_figure(idata: az.InferenceData, names: tuple[str, ...] = PARAMETERS) -> Figure:
    """Per parameter: each chain's marginal density (left) and its trace (right)
    (`arviz.plot_trace`)."""
    figure = Figure(figsize=(10, 2.4 * len(names)), layout="constrained")
    axes = figure.subplots(len(names), 2, squeeze=False, width_ratios=[1, 2])
    az.plot_trace(idata, var_names=list(names), axes=axes, compact=False, legend=True,
                  show=False)
    for row, name in enumerate(names):
        axes[row, 0].set_title(_LABELS.get(name, name), fontsize=10)
        axes[row, 1].set_title("")
        axes[row, 1].set_ylabel(name)
    axes[-1, 1].set_xlabel("draw (after warmup)")
    figure.suptitle("Trace: chains should overlap and look like stationary noise")
    return figure


def _prior(name: str, config: ModelConfig) -> Any:
    """The prior of mu, alpha or phi as a frozen scipy.stats distribution."""
    if name == "mu":
        return stats.expon(scale=1.0 / config.mu_prior_rate)
    return stats.halfnorm(scale=config.alpha_prior_sd if name == "alpha"
                          else config.overdispersion_prior_sd)


def posterior_figure(idata: az.InferenceData, config: ModelConfig | None = None,
                     names: tuple[str, ...] = PARAMETERS) -> Figure:
    """Posterior density of each parameter with its mean and 94% HDI (`arviz.plot_posterior`);
    the prior density dashed."""
    figure = Figure(figsize=(4 * len(names), 3.2), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    az.plot_posterior(idata, var_names=list(names), hdi_prob=HDI_PROB, ax=axes, textsize=9,
                      show=False)
    for axis, name in zip(axes, names):
        axis.set_title(_LABELS.get(name, name), fontsize=10)
        if config is not None:
            low, high = axis.get_xlim()
            x = np.linspace(max(low, 1e-12), high, 200)
            axis.plot(x, _prior(name, config).pdf(x), "--", color="C3", label="prior")
            axis.set_xlim(low, high)
            axis.legend(fontsize=7, frameon=False, loc="upper right")
    return figure


def ppc_figure(idata: az.InferenceData, data: CountData) -> Figure:
    """Posterior predictive checks.

    Left (when per-window replicates exist): the distribution of counts per window, observed
    against replicated data sets (`arviz.plot_ppc`). Right: each entity's observed total
    against the 90% interval of its replicated total, with the share of entities inside
    (drawn here: `arviz.plot_ppc` compares pooled distributions, not each entity's own
    interval).
    """
    predictive = idata.get("posterior_predictive")
    has_rows = predictive is not None and "y_rep" in predictive and data.has_rows
    totals = (np.asarray(predictive["y_rep_total"])
              if predictive is not None and "y_rep_total" in predictive
              else _derived_totals(idata, data))
    has_totals = totals is not None
    panels = int(has_rows) + int(has_totals)
    figure = Figure(figsize=(6 * max(panels, 1), 4), layout="constrained")
    if panels == 0:
        figure.text(0.5, 0.5, "no posterior predictive draws in this run", ha="center")
        return figure
    axes = list(figure.subplots(1, panels, squeeze=False)[0])
    if has_rows:
        _ppc_counts(axes.pop(0), idata)
    if has_totals:
        _ppc_totals(axes.pop(0), totals, data)
    figure.suptitle("Posterior predictive check: observed data against data replicated "
                    "from the fit")
    return figure


def _ppc_counts(axis: Any, idata: az.InferenceData) -> None:
    predictive = idata.posterior_predictive
    draws = min(PPC_DRAWS, predictive.sizes["chain"] * predictive.sizes["draw"])
    az.plot_ppc(idata, var_names=["y"], data_pairs={"y": "y_rep"}, num_pp_samples=draws,
                random_seed=0, ax=axis, textsize=9, show=False)
    axis.set_xlabel("count in a window")
    axis.set_ylabel("share of windows")
    axis.set_title("Distribution of counts per window", fontsize=10)


def _derived_totals(idata: az.InferenceData, data: CountData) -> np.ndarray | None:
    """Replicated entity totals derived from theta and phi (a fit whose program skipped them,
    `ratepool.posterior.entity_predictive`), from at most `PPC_TOTAL_DRAWS` draws; None if not derivable."""
    posterior = idata.get("posterior")
    if (posterior is None or "theta" not in posterior
            or not describe_inference_data(idata).entity_law_closed_form):
        return None
    derived = entity_predictive(idata, data, seed=0, draws=PPC_TOTAL_DRAWS)
    return derived["y_rep_total"].values


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


def entity_rates_figure(idata: az.InferenceData, summary: pd.DataFrame,
                        max_entities: int = MAX_FOREST_ENTITIES) -> Figure:
    """Forest plot (`arviz.plot_forest`): each entity's partially pooled rate (median,
    50% interval and 94% HDI), its raw rate, and the population mean mu.

    With more than ``max_entities`` entities, the half with the highest and the half with the
    lowest estimates are shown.
    """
    table = summary.sort_values("theta_mean", ascending=False, kind="stable")
    note = ""
    if len(table) > max_entities:
        half = max_entities // 2
        note = f" ({max_entities} of {len(table)}: highest and lowest estimates)"
        table = pd.concat([table.iloc[:half], table.iloc[-half:]])
    figure = Figure(figsize=(8, max(3.0, 0.22 * len(table) + 1.5)), layout="constrained")
    axis = figure.subplots()
    shown = np.empty(len(table), dtype=object)  # object array: mixed-type labels stay as-is
    shown[:] = list(table.index)
    az.plot_forest(idata, var_names=["theta"], coords={"entity": shown}, combined=True,
                   hdi_prob=HDI_PROB, colors="C0", ax=axis, show=False)
    position = np.sort(axis.get_yticks())[::-1]  # plot_forest draws the first entity on top
    axis.plot(table["raw_rate"], position, "x", color="C3", markersize=5,
              label="raw rate (total / windows)")
    axis.plot([], [], "o-", color="C0", markersize=4,
              label=f"partially pooled: median, 50% interval, {HDI_PROB:.0%} HDI")
    mu_mean = float(idata.posterior["mu"].mean())
    axis.axvline(mu_mean, color="k", linestyle=":", linewidth=1, label="population mean mu")
    axis.set_yticks(position, [f"{label} (n={n})" for label, n in
                               zip(table.index, table["n_windows"])], fontsize=7)
    if note:  # the gap between the highest and the lowest estimates
        axis.axhline(position[max_entities // 2 - 1:max_entities // 2 + 1].mean(),
                     color="grey", linestyle="--", linewidth=0.8)
    axis.set_xlabel("events per window")
    axis.set_title("Entity rates: raw against partially pooled" + note, fontsize=10)
    axis.legend(fontsize=7, loc="lower right")
    return figure


def prior_check_figure(prior_idata: az.InferenceData, check: dict[str, Any],
                       observed: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
                       ) -> Figure:
    """Prior predictive counts for one window: ECDF (`arviz.plot_ecdf`) on a log scale, with
    the design document's range 0-50 and the data's observed range shaded. ``observed``: the
    observed counts, or their histogram (distinct values, frequencies: `CountData.count_value`
    and `CountData.count_freq`), whose ECDF is the same and needs no rows."""
    # sorted copies: plot_ecdf sorts its input in place
    counts = np.sort(np.asarray(prior_idata.prior_predictive["y_pred"]), axis=None)
    low, high = PLAUSIBLE_RANGE
    figure = Figure(figsize=(8, 4), layout="constrained")
    axis = figure.subplots()
    az.plot_ecdf(counts, eval_points=np.unique(counts), ax=axis, show=False,
                 plot_kwargs={"color": "C0", "label": "prior predictive"})
    if isinstance(observed, tuple):
        values, freq = (np.asarray(a) for a in observed)
        order = np.argsort(values)
        axis.step(values[order], np.cumsum(freq[order]) / freq.sum(), where="post",
                  color="k", linewidth=1, label="observed")
    elif observed is not None and len(observed):
        observed = np.sort(observed, axis=None)
        az.plot_ecdf(observed, eval_points=np.unique(observed), ax=axis, show=False,
                     plot_kwargs={"color": "k", "linewidth": 1, "label": "observed"})
    axis.axvspan(low, high, color="C2", alpha=0.15,
                 label=f"{low}-{high}: {check['share_0_50']:.1%} of prior counts")
    title = f"Prior predictive check: {check['share_0_50']:.1%} in {low}-{high}"
    if "share_observed_range" in check:
        observed_low, observed_high = check["observed_min"], check["observed_max"]
        axis.axvspan(observed_low, observed_high, facecolor="none", edgecolor="C1", hatch="//",
                     alpha=0.6, label=f"observed range {observed_low}-{observed_high}: "
                                      f"{check['share_observed_range']:.1%} of prior counts")
        title += f", {check['share_observed_range']:.1%} in the observed range"
    axis.set_xscale("symlog", linthresh=1)
    axis.set_xlim(0, max(float(counts.max()), high) * 1.5)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("count in one window")
    axis.set_ylabel("cumulative share")
    axis.set_title(f"{title}\n({check['n_draws']} draws x entities; median {check['q50']:g}, "
                   f"95% quantile {check['q95']:g})", fontsize=10)
    axis.legend(fontsize=8, frameon=False, loc="lower right")
    return figure


def coefficients_figure(idata: az.InferenceData, data: CountData) -> Figure:
    """Forest plot (`arviz.plot_forest`) of the covariates' rate ratios per unit on their
    original scale, exp(beta / scale) (for a level: against the reference level), with the
    median, 50% interval and 94% HDI; the dotted line is "no effect" (ratio 1)."""
    covariates = data.covariates
    ratio = np.exp(idata.posterior["beta"].values / covariates.scale)
    ratios = az.from_dict(posterior={"rate_ratio": ratio},
                          coords={"covariate": list(covariates.names)},
                          dims={"rate_ratio": ["covariate"]})
    figure = Figure(figsize=(7, max(2.5, 0.4 * covariates.n_columns + 1.5)),
                    layout="constrained")
    axis = figure.subplots()
    az.plot_forest(ratios, var_names=["rate_ratio"], combined=True, hdi_prob=HDI_PROB,
                   colors="C0", ax=axis, show=False)
    axis.axvline(1.0, color="k", linestyle=":", linewidth=1)
    position = np.sort(axis.get_yticks())[::-1]  # plot_forest draws the first one on top
    axis.set_yticks(position, list(covariates.names), fontsize=8)
    references = covariates.reference_levels
    axis.set_title("Rate ratio per unit of each covariate"
                   + (f" (levels against {', '.join(f'{k}={v}' for k, v in references.items())})"
                      if references else ""), fontsize=9)
    axis.set_xscale("log")
    axis.xaxis.set_major_formatter(ScalarFormatter())
    axis.xaxis.set_minor_formatter(ScalarFormatter())
    axis.tick_params(axis="x", which="both", labelsize=7)
    axis.set_xlabel("rate ratio (log scale)", fontsize=8)
    return figure


def fit_figures(idata: az.InferenceData, data: CountData, summary: pd.DataFrame,
                config: ModelConfig | None = None) -> dict[str, bytes]:
    """The figures of a results folder as {file name: PNG bytes}."""
    figures = {
        PLOT_FILES["trace"]: trace_figure(idata),
        PLOT_FILES["posterior"]: posterior_figure(idata, config),
        PLOT_FILES["ppc"]: ppc_figure(idata, data),
        PLOT_FILES["entities"]: entity_rates_figure(idata, summary),
    }
    if "coefficients" in describe_inference_data(idata).tables and "beta" in idata.posterior:
        figures[PLOT_FILES["coefficients"]] = coefficients_figure(idata, data)
    if "prior_predictive" in idata.groups() and "y_pred" in idata.prior_predictive:
        figures[PLOT_FILES["prior"]] = prior_check_figure(
            idata, prior_predictive_check(idata, data), (data.count_value, data.count_freq))
    return {name: png_bytes(figure) for name, figure in figures.items()}
