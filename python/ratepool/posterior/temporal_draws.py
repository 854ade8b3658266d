"""The temporal fit's draws: per-row outputs put back in the data's row order, the AR(1)
outputs (rho, sigma, the latent rate path ``lambda`` over ``obs``, the one-step-ahead ``y_next``
over ``entity``) added to the InferenceData, and `forecast_table` (per entity, the last
observed window, its latent rate and the next window's predictive count).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import pandas as pd

from ratepool.data.counts import CountData
from ratepool.engines.base import Draws
from ratepool.model.temporal import INTERVAL, PATH_VARIABLES, WindowLayout
from ratepool.posterior.inference import EXPOSURE_SCALE_ATTR, in_user_units

if TYPE_CHECKING:
    pass


def _in_row_order(draws: Draws, layout: WindowLayout) -> Draws:
    """The draws with per-row variables put back in the data's row order (Stan has them
    ordered by entity and window); the latent normals z are dropped (N numbers per draw that
    only the sampler needs)."""
    inverse = layout.inverse
    variables = {name: (values[..., inverse] if name in PATH_VARIABLES else values)
                 for name, values in draws.variables.items() if name != "z"}
    return Draws(variables=variables, sample_stats=draws.sample_stats, engine=draws.engine,
                 console=draws.console, elapsed_seconds=draws.elapsed_seconds,
                 info=draws.info)


def _scalar(values: np.ndarray) -> np.ndarray:
    """A Stan size-1 array (chain, draw, 1) as (chain, draw)."""
    return values[..., 0] if values.ndim == 3 else values


def _add_temporal_variables(idata: az.InferenceData, draws: Draws, prior: Draws | None,
                            layout: WindowLayout) -> az.InferenceData:
    """rho, s, sigma, lambda[obs] and y_next[entity] into their groups (and the prior's)."""
    def add(group: str, values: dict[str, tuple[tuple[str, ...], np.ndarray]]) -> None:
        present = {name: value for name, value in values.items() if value[1].size}
        if present and group in idata.groups():
            setattr(idata, group, idata[group].assign(present))

    def pick(variables: dict[str, np.ndarray], names: dict[str, str]) -> dict[str, np.ndarray]:
        return {out: variables[stan] for out, stan in names.items() if stan in variables}

    scale = float(idata.constant_data.attrs.get(EXPOSURE_SCALE_ATTR, 1.0))
    posterior = pick(in_user_units(draws.variables, scale),
                     {"rho": "rho", "s": "s", "sigma": "sigma", "lambda": "lambda"})
    add("posterior", {name: (("chain", "draw", "obs") if name == "lambda" else
                             ("chain", "draw"), value) for name, value in posterior.items()})
    if "y_next" in draws.variables:
        add("posterior_predictive",
            {"y_next": (("chain", "draw", "entity"),
                        np.rint(draws.variables["y_next"]).astype(np.int64))})
    if prior is not None:
        prior_values = pick(in_user_units(prior.variables, scale),
                            {"rho": "rho_prior", "s": "s_prior", "sigma": "sigma_prior",
                             "lambda": "lambda"})
        add("prior", {name: (("chain", "draw", "obs") if name == "lambda" else
                             ("chain", "draw"),
                             value if name == "lambda" else _scalar(value))
                      for name, value in prior_values.items()})
        if "y_next" in prior.variables:
            add("prior_predictive",
                {"y_next": (("chain", "draw", "entity"),
                            np.rint(prior.variables["y_next"]).astype(np.int64))})
    for group in ("constant_data",):
        setattr(idata, group, idata[group].assign(
            {"window_step": (("obs",), layout.steps.astype(np.int64))}))
        idata[group].attrs["ratepool_window_step"] = layout.step
        # The window at step 0, so that new windows can be placed on the same steps.
        idata[group].attrs["ratepool_window_origin"] = str(layout.windows[layout.steps.argmin()])
    return idata


def forecast_table(idata: az.InferenceData, data: CountData) -> pd.DataFrame:
    """Per entity: its last observed window, the latent rate there and the next window.

    Columns: ``last_window``, ``last_count``, ``lambda_last_mean`` and its central 90%
    interval (``lambda_last_q05``, ``lambda_last_q95``), ``y_next_mean`` and its 90%
    interval (``y_next_q05``, ``y_next_q95``; a window of exposure 1 one step after the last).
    Latent-rate columns are absent when the path was not kept (``obs_predictions`` off).
    """
    steps = idata.constant_data["window_step"].to_numpy()
    order = np.lexsort((steps, data.entity_index))
    last = order[np.r_[np.flatnonzero(np.diff(data.entity_index[order])), len(order) - 1]]
    low, high = (1 - INTERVAL) / 2, (1 + INTERVAL) / 2
    table = pd.DataFrame({"last_window": data.window[last], "last_count": data.y[last]},
                         index=pd.Index(data.labels, name="entity"))
    if "lambda" in idata.posterior:
        path = idata.posterior["lambda"].to_numpy()[..., last].reshape(-1, len(last))
        table["lambda_last_mean"] = path.mean(axis=0)
        table["lambda_last_q05"], table["lambda_last_q95"] = np.quantile(path, [low, high],
                                                                         axis=0)
    if "posterior_predictive" in idata.groups() and "y_next" in idata.posterior_predictive:
        nxt = idata.posterior_predictive["y_next"].to_numpy().reshape(-1, len(last))
        table["y_next_mean"] = nxt.mean(axis=0)
        table["y_next_q05"], table["y_next_q95"] = np.quantile(nxt, [low, high], axis=0)
    return table
