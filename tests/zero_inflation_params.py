"""The zero-inflated program's coordinates of a point given in theta (shared by the log-density
tests): with zero-inflation (centred) the program samples the rates of entities with events as
``log_theta_events`` (log theta_i, with a hyperparameter-dependent offset and multiplier) and
those of entities without events through ``log_g`` and ``neg_log_u``,
theta_i = exp(log_g_i - neg_log_u_i / a_i) / alpha with a_i = mu_i alpha (see the Stan file)."""

from __future__ import annotations

import numpy as np
from scipy import stats

import ratepool


def program_point(data: ratepool.CountData, params: dict, config: ratepool.ModelConfig
                  ) -> tuple[dict, float]:
    """``params`` (with ``theta``) in the program's parameters, and what that changes in the
    joint log density: for each entity without events, the Gamma(a_i, alpha) density of
    theta_i is replaced by the densities of its auxiliary pair (log_g_i ~ log Gamma(a_i + 1),
    neg_log_u_i ~ Exponential(1), scipy's), the pair chosen so that it maps to theta_i; each
    entity with events is given as log theta_i, whose density is theta_i's times the Jacobian
    theta_i (the log density is read without the constraints' Jacobians: the offset and
    multiplier of log_theta_events add nothing then). Without zero-inflation, or non-centred,
    ``params`` is returned as is with 0."""
    if not config.zero_inflation or config.parameterization == "non_centered":
        return params, 0.0
    theta, alpha = np.asarray(params["theta"], dtype=float), float(params["alpha"])
    mean_rate = np.full(data.n_entities, float(params["mu"]))
    if data.covariates is not None:
        mean_rate = mean_rate * np.exp(data.covariates.scaled @ np.asarray(params["beta"]))
    shape = mean_rate * alpha
    zero = np.asarray(data.entity_total) == 0
    # any positive values will do; these keep log_g = log(alpha theta) + neg_log_u / a moderate
    neg_log_u = shape[zero] * np.linspace(0.3, 2.0, int(zero.sum()))
    log_g = np.log(alpha * theta[zero]) + neg_log_u / shape[zero]
    point = {name: value for name, value in params.items() if name != "theta"}
    point.update(log_theta_events=np.log(theta[~zero]), log_g=log_g, neg_log_u=neg_log_u)
    change = float(np.sum(stats.loggamma.logpdf(log_g, c=shape[zero] + 1)
                          + stats.expon.logpdf(neg_log_u)
                          - stats.gamma.logpdf(theta[zero], a=shape[zero], scale=1 / alpha))
                   + np.sum(np.log(theta[~zero])))
    return point, change
