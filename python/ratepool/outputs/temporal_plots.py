"""Outputs of the temporal model in the results folder: the latent rate paths of a few
entities against their counts, the next-window forecast table, and their report section."""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

import arviz as az
import numpy as np
from matplotlib.figure import Figure

from ratepool.data.counts import CountData
from ratepool.model.temporal import INTERVAL
from ratepool.outputs.plots import png_bytes
from ratepool.posterior.temporal_draws import forecast_table

__all__ = ["latent_paths_figure", "write_temporal_outputs", "TEMPORAL_FILES",
           "MAX_PATH_ENTITIES"]

log = logging.getLogger(__name__)

#: Files the temporal model adds to a results folder.
TEMPORAL_FILES = {"paths": "latent_paths.png", "forecast": "entity_forecast.csv"}
#: Entities drawn in the latent-path figure.
MAX_PATH_ENTITIES = 6


def _shown_entities(data: CountData, count: int) -> np.ndarray:
    """Entity indices to draw: those with the most windows (ties: by index), at most ``count``."""
    ranked = np.lexsort((np.arange(data.n_entities), -data.n_windows))
    return np.sort(ranked[:count])


def latent_paths_figure(idata: az.InferenceData, data: CountData,
                        entities: int = MAX_PATH_ENTITIES) -> Figure:
    """Per entity (the ones with most windows): the observed counts per unit exposure, the
    posterior mean of the latent rate lambda with its central 90% interval, the median rate
    theta (dashed) and the next window's 90% predictive interval.

    The x axis is the window in steps from the earliest window of the data.
    """
    path = idata.posterior["lambda"].to_numpy()
    path = path.reshape(-1, path.shape[-1])
    low, high = (1 - INTERVAL) / 2, (1 + INTERVAL) / 2
    steps = idata.constant_data["window_step"].to_numpy()
    step = idata.constant_data.attrs.get("ratepool_window_step", "1")
    theta = idata.posterior["theta"].to_numpy().reshape(-1, data.n_entities).mean(axis=0)
    exposure = data.exposure if data.exposure is not None else np.ones(len(data.y))
    has_next = ("posterior_predictive" in idata.groups()
                and "y_next" in idata.posterior_predictive)
    shown = _shown_entities(data, entities)
    columns = min(3, len(shown))
    rows = int(np.ceil(len(shown) / columns))
    figure = Figure(figsize=(4.2 * columns, 2.9 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for axis, entity in zip(axes, shown):
        rows_of = np.flatnonzero(data.entity_index == entity)
        rows_of = rows_of[np.argsort(steps[rows_of])]
        x = steps[rows_of]
        draws = path[:, rows_of]
        band = np.quantile(draws, [low, high], axis=0)
        axis.fill_between(x, band[0], band[1], color="C0", alpha=0.25,
                          label=f"lambda {INTERVAL:.0%} interval")
        axis.plot(x, draws.mean(axis=0), color="C0", linewidth=1.2, label="lambda mean")
        axis.plot(x, data.y[rows_of] / exposure[rows_of], "o", color="k", markersize=3,
                  label="count" if data.exposure is None else "count / exposure")
        axis.axhline(theta[entity], color="C1", linestyle="--", linewidth=1,
                     label="theta (median)")
        if has_next:
            nxt = idata.posterior_predictive["y_next"].to_numpy()[..., entity].ravel()
            q_low, q_high = np.quantile(nxt, [low, high])
            axis.plot([x[-1] + 1, x[-1] + 1], [q_low, q_high], color="C3", linewidth=2,
                      label=f"next window, {INTERVAL:.0%}")
        axis.set_title(str(data.labels[entity]), fontsize=9, loc="left")
        axis.set_xlabel(f"window (steps of {step} from the first)")
    for axis in axes[len(shown):]:
        axis.set_visible(False)
    axes[0].legend(fontsize=7, frameon=False)
    figure.suptitle("Latent rate paths (AR(1) temporal model) against the counts")
    return figure


def write_temporal_outputs(folder: Path, idata: az.InferenceData, data: CountData) -> str:
    """Write the forecast table and the path figure into ``folder``; return the report's HTML
    section for them."""
    forecast = forecast_table(idata, data)
    forecast.to_csv(folder / TEMPORAL_FILES["forecast"])
    parts = ["<h2>Temporal dynamics (AR(1))</h2>"]
    posterior = idata.posterior
    summary = ", ".join(
        f"{name} = {float(posterior[name].mean()):.3f} "
        f"({INTERVAL:.0%}: {float(posterior[name].quantile((1 - INTERVAL) / 2)):.3f} to "
        f"{float(posterior[name].quantile((1 + INTERVAL) / 2)):.3f})"
        for name in ("rho", "s", "sigma") if name in posterior)
    parts.append(
        f"<p>Per-step autocorrelation, stationary sd and innovation sd of the log rate: "
        f"{html.escape(summary)}. theta is each entity's median rate (its long-run mean rate is "
        "theta exp(s²/2)); lambda its rate in each window.</p>")
    if "lambda" in posterior:
        png = png_bytes(latent_paths_figure(idata, data))
        (folder / TEMPORAL_FILES["paths"]).write_bytes(png)
        encoded = base64.b64encode(png).decode("ascii")
        parts.append('<p class="muted">The entities with the most windows: counts per unit '
                     f"exposure (dots), the latent rate's posterior mean and {INTERVAL:.0%} "
                     "interval (blue), the median rate theta (dashed) and the next window's "
                     f"{INTERVAL:.0%} predictive interval (red).</p>"
                     f'<img alt="latent rate paths" src="data:image/png;base64,{encoded}">')
    else:
        log.info("the latent rate path was not kept (obs_predictions off): no path figure")
    shown = forecast.head(500)
    parts.append(f"<h3>Next window per entity ({TEMPORAL_FILES['forecast']})</h3>")
    parts.append(shown.to_html(float_format=lambda v: f"{v:.3f}", border=0, escape=True))
    return "\n".join(parts)

