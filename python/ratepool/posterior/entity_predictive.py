"""Per-entity predictive draws: drawn in Stan for small fits, derived in numpy for large ones.

The Stan program's per-entity generated quantities (``y_pred``, ``y_rep_total``,
``y_rep_zeros``, ``log_lik_entity``) are 4 J numbers per draw. For the base model (no exposure,
no zero-inflation) each is an exact function of that draw's theta and phi (plus fresh random
numbers for the three replicates), so a large fit need not carry them through the engine:
with ``ModelConfig(entity_predictions="auto")`` (the default) the program draws them while
J x draws is at most ``max_entity_prediction_values``, and otherwise skips them;
`entity_predictive` (``FitResult.entity_predictive``) then derives them on demand from the
theta and phi draws with `ratepool.model.simulate.entity_replicates`. The derived draws follow the
same laws as Stan's (tested in distribution); they are not the same random numbers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from scipy import special

from ratepool.data.counts import CountData
from ratepool.errors import RatepoolError
from ratepool.model.description import describe_inference_data
from ratepool.model.predictions import entity_predictions_on
from ratepool.model.simulate import entity_replicates

if TYPE_CHECKING:
    import arviz as az

    from ratepool.engines.base import Draws

__all__ = ["entity_predictions_on", "entity_predictive", "entity_total_log_lik",
           "ENTITY_PREDICTIVE"]

log = logging.getLogger(__name__)

#: The per-entity predictive variables (InferenceData ``posterior_predictive`` names).
ENTITY_PREDICTIVE = ("y_pred", "y_rep_total", "y_rep_zeros")


def entity_total_log_lik(theta: np.ndarray, phi: np.ndarray, data: CountData) -> np.ndarray:
    """log NB2(S_i | n_i theta_i, n_i phi) per draw and entity, as the program's
    ``log_lik_entity`` (``nb2_total_loglik``): theta shaped (..., J), phi shaped (...)."""
    phi = np.asarray(phi, dtype=float)[..., None] * data.n_windows
    mean = np.asarray(theta, dtype=float) * data.n_windows
    total = data.entity_total.astype(float)
    positive = total > 0
    safe_total = np.where(positive, total, 1.0)
    log_binomial = np.where(positive, -np.log(safe_total) - special.betaln(phi, safe_total), 0.0)
    return (log_binomial - (phi + total) * np.log1p(mean / phi)
            + total * (np.log(mean) - np.log(phi)))


def add_prior_replicates(prior: Draws, data: CountData, seed: int) -> None:
    """Add derived ``y_pred``, ``y_rep_total``, ``y_rep_zeros`` to prior draws run without them."""
    rng = np.random.default_rng(seed)
    theta = prior.variables["theta_prior"]
    phi = prior.variables["phi_prior"][..., 0]
    prior.variables.update(entity_replicates(rng, theta, phi, data.n_windows))


def _draw_index(n_draws: int, n_chains: int, draws: int | None) -> np.ndarray:
    """Evenly spaced draw indices per chain, about ``draws`` over all chains (all if None)."""
    if draws is None or draws >= n_draws * n_chains:
        return np.arange(n_draws)
    if draws < 1:
        raise RatepoolError(f"draws must be at least 1, got {draws}")
    per_chain = max(1, -(-draws // n_chains))
    return np.unique(np.linspace(0, n_draws - 1, per_chain).round().astype(int))


def entity_predictive(idata: az.InferenceData, data: CountData, *, seed: int = 0,
                      draws: int | None = None, zero_inflation: bool = False) -> xr.Dataset:
    """Per-entity predictive draws and entity log likelihood of a fit.

    Parameters
    ----------
    idata : arviz.InferenceData
        The fit's draws.
    data : CountData
        The fitted data.
    seed : int
        Seed of the derived replicates (unused when the fit holds Stan's).
    draws : int, optional
        About this many draws over all chains, evenly spaced in each chain (all by default;
        at J = 100,000 every draw of every variable is 8 bytes x J x draws).
    zero_inflation : bool
        Whether the fit used zero-inflation (then only Stan's own draws exist). The fit's
        InferenceData says so itself (`ratepool.model.description.describe_inference_data`);
        this only adds to it.

    Returns
    -------
    xarray.Dataset
        ``y_pred``, ``y_rep_total``, ``y_rep_zeros`` (int64) and ``log_lik_entity`` on
        (chain, draw, entity): Stan's when the fit drew them, else derived from theta and phi
        (`ratepool.model.simulate.entity_replicates`, `entity_total_log_lik`).

    Raises
    ------
    RatepoolError
        When the fit has neither Stan's draws nor a model whose draws can be derived.
    """
    posterior = idata.posterior
    index = _draw_index(posterior.sizes["draw"], posterior.sizes["chain"], draws)
    predictive = idata.get("posterior_predictive")
    if predictive is not None and all(name in predictive for name in ENTITY_PREDICTIVE):
        stan = predictive[list(ENTITY_PREDICTIVE)].isel(draw=index)
        log_likelihood = idata.get("log_likelihood")
        if log_likelihood is not None and "entity_total" in log_likelihood:
            stan["log_lik_entity"] = log_likelihood["entity_total"].isel(draw=index)
        return stan
    if zero_inflation or not describe_inference_data(idata).entity_law_closed_form:
        raise RatepoolError(
            "this fit has no per-entity predictive draws and, with exposure or "
            "zero-inflation, they cannot be derived from theta and phi; fit with "
            "entity_predictions=True")
    selected = posterior[["theta", "phi"]].isel(draw=index)
    theta, phi = selected["theta"].values, selected["phi"].values
    values = entity_replicates(np.random.default_rng(seed), theta, phi, data.n_windows)
    values["log_lik_entity"] = entity_total_log_lik(theta, phi, data)
    dims = ("chain", "draw", "entity")
    return xr.Dataset({name: (dims, array) for name, array in values.items()},
                      coords={"chain": selected["chain"].values,
                              "draw": selected["draw"].values,
                              "entity": selected["entity"].values})
