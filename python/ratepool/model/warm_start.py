"""Where the sampler starts, for many entities: initial values and an initial diagonal metric.

Why. Stan's warmup begins with a unit metric. The posterior sds of log mu and log alpha shrink
like 1/sqrt(J), and that of log phi like 1/sqrt(N), while each log theta_i keeps a sd set by
its own windows. Under the unit metric the step size must fit the narrowest direction, so every
iteration before the first metric update (Stan's first 100 at default settings) needs long
trajectories. Measured with CmdStan 2.35 on the benchmark's data (mu 4, alpha 2, phi 3, 100
windows per entity), one chain, 300 warmup + 100 draws: at J = 2,000 the first 100 iterations
took 100-150 leapfrog steps each (step size 0.005) and the rest 31 (step size 0.17); at
J = 10,000, 300-390 steps (step size 0.002) and then 31-48; at J = 100,000 they reach the tree
depth limit (1,023 steps) and, at 19 ms a gradient, 300 warmup iterations take half an hour.
Given the metric and the initial values of an adapted run, the same J = 10,000 run took 2.5x
fewer steps.

What. `warm_start` estimates, from the program's own sufficient statistics (per-entity windows
and totals, the count histogram) and without sampling, where the posterior is and how wide it
is on the sampler's unconstrained scale: method-of-moments mu, alpha and phi; theta_i at the
conjugate Gamma-Poisson posterior mean; variances from the Fisher information of each
parameter (log mu ~ var(raw rates) / (J mu^2), log alpha ~ 2 / J, log phi ~ 2 (1 + phi/m)^2 / N,
log theta_i ~ 1 / (shape + its expected information)). Each chain starts at the estimate
moved by one estimated sd in a random direction (seeded), so chains start apart as R-hat
assumes. Stan still adapts the step size and the metric in every warmup window: this changes
where warmup starts, not the model or the posterior.

Scope: the static program without covariates, zero-inflation, exposure or bytes (their
parameters would need estimates of their own); elsewhere `warm_start` returns None and the
sampler starts as Stan does by default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ratepool.model.description import describe_stan_data

__all__ = ["WarmStart", "warm_start", "supports_warm_start", "AUTO_MIN_ENTITIES",
           "PARAMETER_ORDER"]

log = logging.getLogger(__name__)

#: At ``warm_start = "auto"``, fits of at least this many entities start warm.
AUTO_MIN_ENTITIES = 5000
#: The static program's parameters in declaration order (its unconstrained vector's layout;
#: log_theta_events, log_g and neg_log_u are sized only with zero-inflation, which starts cold).
PARAMETER_ORDER = ("mu", "alpha", "phi", "theta", "theta_raw", "beta", "pi", "log_theta_events",
                   "log_g", "neg_log_u", "m0", "tau", "sigma_w", "sigma_e", "m")
#: Bounds of an unconstrained variance: no direction narrower than 1e-4 sd, none wider than 5.
_VARIANCE_RANGE = (1e-8, 25.0)


@dataclass(frozen=True)
class WarmStart:
    """Initial values per chain and the initial inverse metric (diagonal, unconstrained scale).

    Attributes
    ----------
    inits : tuple of dict
        One dict per chain: parameter name -> value (constrained scale), as Stan reads inits.
    inv_metric : numpy.ndarray
        The diagonal of the initial inverse metric, in the program's unconstrained order.
    """

    inits: tuple[dict[str, Any], ...]
    inv_metric: np.ndarray


def supports_warm_start(values: Mapping[str, Any]) -> bool:
    """True when the Stan data ``values`` are of a fit `warm_start` knows how to start: the
    static program with every option off."""
    return (describe_stan_data(values).warm_startable
            and not int(values.get("prior_only", 0)))


def warm_start(values: Mapping[str, Any], chains: int, seed: int) -> WarmStart | None:
    """Initial values and metric for the static program's data ``values`` (see the module
    docstring), or None when the data are outside `supports_warm_start`."""
    if not supports_warm_start(values):
        return None
    windows = np.asarray(values["n_windows"], dtype=float)
    totals = np.asarray(values["entity_total"], dtype=float)
    count_value = np.asarray(values["count_value"], dtype=float)
    count_freq = np.asarray(values["count_freq"], dtype=float)
    n_entities, n_windows = len(windows), float(count_freq.sum())

    mu = max(float(totals.sum() / windows.sum()), 1e-6)
    raw = totals / windows
    spread = float(np.mean((raw - mu) ** 2))
    between = max(spread - float(np.mean(mu / windows)), 0.05 * spread, 1e-12)
    alpha = float(np.clip(mu / between, 1e-3, 1e3))
    mean_y = float(count_value @ count_freq / n_windows)
    var_y = float((count_value - mean_y) ** 2 @ count_freq / n_windows)
    excess = var_y - mean_y - between
    phi = float(np.clip((between + mu**2) / excess, 0.05, 1e3)) if excess > 0 else 1e3

    shape = mu * alpha
    theta = (shape + totals) / (alpha + windows)
    info_theta = shape + windows * theta * phi / (theta + phi)
    sd = {
        "mu": np.sqrt(spread / (n_entities * mu**2)),
        "alpha": np.sqrt(2.0 / n_entities),
        "phi": np.sqrt(2.0 * (1.0 + phi / max(mean_y, 1e-6)) ** 2 / n_windows),
        "theta": 1.0 / np.sqrt(info_theta),
    }
    sd = {name: np.sqrt(np.clip(np.square(value), *_VARIANCE_RANGE)) for name, value in sd.items()}
    centre = {"mu": mu, "alpha": alpha, "phi": phi, "theta": theta}
    rate_name = "theta_raw" if int(values.get("non_centered", 0)) else "theta"

    rng = np.random.default_rng([int(seed), 20261204])
    inits = []
    for _ in range(chains):
        moved = {name: centre[name] * np.exp(sd[name] * rng.standard_normal(np.shape(centre[name])))
                 for name in centre}
        chain = {"mu": float(moved["mu"]), "alpha": float(moved["alpha"]),
                 "phi": float(moved["phi"])}
        rates = moved["theta"] * (moved["alpha"] if rate_name == "theta_raw" else 1.0)
        chain[rate_name] = rates.tolist()
        inits.append(chain)
    inv_metric = np.concatenate([np.square([sd["mu"], sd["alpha"], sd["phi"]]).ravel(),
                                 np.square(sd["theta"])])
    log.info("warm start for %d entities: mu %.3g, alpha %.3g, phi %.3g (the sampler still "
             "adapts)", n_entities, mu, alpha, phi)
    return WarmStart(inits=tuple(inits), inv_metric=inv_metric)
