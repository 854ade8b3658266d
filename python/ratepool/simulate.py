"""Simulate data from the model's generative process (for examples, tests and benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SimulatedData", "SimulatedTemporalData", "simulate_counts", "simulate_ar_counts",
           "nb2_draws"]


@dataclass(frozen=True)
class SimulatedData:
    """Simulated rows plus the true parameter values that generated them."""

    frame: pd.DataFrame
    mu: float
    alpha: float
    phi: float
    theta: pd.Series
    #: Per covariate: the true log rate ratio per unit, and per unit of sd (the model's beta).
    beta_per_unit: dict[str, float] | None = None
    beta_scaled: dict[str, float] | None = None
    pi: float | None = None

    def truth(self) -> dict[str, object]:
        """The true values as a JSON-ready dict."""
        truth: dict[str, object] = {
            "mu": self.mu,
            "alpha": self.alpha,
            "phi": self.phi,
            "theta": {str(label): float(value) for label, value in self.theta.items()},
        }
        if self.beta_scaled is not None:
            truth["beta"] = dict(self.beta_scaled)
            truth["rate_ratio_per_unit"] = {k: float(np.exp(v))
                                            for k, v in self.beta_per_unit.items()}
        if self.pi is not None:
            truth["pi"] = self.pi
        return truth


def nb2_draws(rng: np.random.Generator, mean: np.ndarray, phi: float) -> np.ndarray:
    """NegBinomial2(mean, phi) draws via numpy's (n, p) form: n = phi, p = phi / (phi + mean)."""
    return rng.negative_binomial(phi, phi / (phi + np.asarray(mean, dtype=float)))


def _draw_windows(rng: np.random.Generator, n_entities: int,
                  windows: tuple[int, int] | int) -> np.ndarray:
    """Windows per entity: a fixed number, or uniform on ``low..high`` inclusive."""
    if isinstance(windows, int):
        return np.full(n_entities, windows)
    return rng.integers(windows[0], windows[1] + 1, size=n_entities)


def simulate_counts(
    *,
    n_entities: int,
    windows: tuple[int, int] | int,
    mu: float,
    alpha: float,
    phi: float,
    seed: int,
    label_format: str = "entity-{:03d}",
    exposure: tuple[float, float] | None = None,
    covariate_effects: dict[str, float] | None = None,
    zero_inflation: float | None = None,
) -> SimulatedData:
    """Draw theta_i ~ Gamma(mu_i * alpha, alpha), then n_i windows of NB2(E_ij theta_i, phi)
    counts (zero with probability ``zero_inflation``).

    Parameters
    ----------
    windows : int or (low, high)
        Windows per entity: a fixed number, or drawn uniformly from ``low..high`` inclusive.
    exposure : (low, high), optional
        Entity sizes s_i log-uniform in [low, high]; window j's exposure is s_i times 0.5, 1
        or 2 (column ``exposure``). Without it every exposure is 1.
    covariate_effects : dict, optional
        Covariate name -> log rate ratio per unit. Each covariate is drawn per entity as
        Normal(10, 3) (column of that name) and mu_i = mu * exp(sum_p b_p (x_ip - mean_p)), so
        mu is the rate at the entities' mean covariates, as the model defines it.
    zero_inflation : float, optional
        Probability pi that a window is a structural zero.

    Without the options the draws are those of the base model (the options draw from their
    own random stream).
    """
    rng = np.random.default_rng(seed)
    options_rng = np.random.default_rng([seed, 8])
    n_windows = _draw_windows(rng, n_entities, windows)
    labels = [label_format.format(i + 1) for i in range(n_entities)]
    entity_index = np.repeat(np.arange(n_entities), n_windows)
    columns: dict[str, np.ndarray] = {}
    mean_rate = np.full(n_entities, mu)
    beta_per_unit = beta_scaled = None
    if covariate_effects:
        beta_per_unit, beta_scaled = dict(covariate_effects), {}
        for name, effect in covariate_effects.items():
            values = options_rng.normal(10.0, 3.0, n_entities)
            mean_rate = mean_rate * np.exp(effect * (values - values.mean()))
            beta_scaled[name] = float(effect * values.std())
            columns[name] = values[entity_index]
    theta = rng.gamma(shape=mean_rate * alpha, scale=1.0 / alpha, size=n_entities)
    window_exposure = np.ones(len(entity_index))
    if exposure is not None:
        size = np.exp(options_rng.uniform(np.log(exposure[0]), np.log(exposure[1]), n_entities))
        window_exposure = size[entity_index] * options_rng.choice([0.5, 1.0, 2.0],
                                                                  len(entity_index))
        columns["exposure"] = window_exposure
    counts = nb2_draws(rng, window_exposure * theta[entity_index], phi)
    if zero_inflation is not None:
        counts = np.where(options_rng.random(len(counts)) < zero_inflation, 0, counts)
    window = np.concatenate([np.arange(1, n + 1) for n in n_windows])
    frame = pd.DataFrame(
        {"entity": np.asarray(labels)[entity_index], "window": window, "count": counts,
         **columns}
    )
    return SimulatedData(frame, mu, alpha, phi, pd.Series(theta, index=labels, name="theta"),
                         beta_per_unit, beta_scaled, zero_inflation)


@dataclass(frozen=True)
class SimulatedTemporalData(SimulatedData):
    """Rows simulated from the AR(1) temporal model, with its true rho, sigma and rate path."""

    rho: float = 0.0
    sigma: float = 0.0
    #: The true latent rate lambda_ij of each row of ``frame``.
    rate_path: np.ndarray | None = None

    def truth(self) -> dict[str, object]:
        """The true values as a JSON-ready dict (with rho and sigma)."""
        return {**super().truth(), "rho": self.rho, "sigma": self.sigma}


def simulate_ar_counts(
    *,
    n_entities: int,
    windows: tuple[int, int] | int,
    mu: float,
    alpha: float,
    phi: float,
    rho: float,
    sigma: float,
    seed: int,
    missing: float = 0.0,
    label_format: str = "entity-{:03d}",
) -> SimulatedTemporalData:
    """Draw from the AR(1) temporal model (``stan/temporal_negbinom.stan``).

    theta_i ~ Gamma(mu alpha, alpha); over windows 1..T_i the log-rate deviation starts at its
    stationary law N(0, s^2), s = sigma / sqrt(1 - rho^2), and steps eta_t = rho eta_{t-1} +
    sigma e_t; lambda_it = theta_i exp(eta_t - s^2 / 2); y_it ~ NB2(lambda_it, phi). Then each
    window after an entity's first is dropped with probability ``missing``: the kept rows
    have gaps, simulated step by step (an independent check of the model's exact
    gap transition). Column ``window`` holds the integer window t.
    """
    rng = np.random.default_rng(seed)
    n_windows = _draw_windows(rng, n_entities, windows)
    labels = [label_format.format(i + 1) for i in range(n_entities)]
    theta = rng.gamma(shape=mu * alpha, scale=1.0 / alpha, size=n_entities)
    stationary_sd = sigma / np.sqrt(1.0 - rho**2)
    path_rng = np.random.default_rng([seed, 11])
    entity, window, rate = [], [], []
    for i, steps in enumerate(n_windows):
        eta = np.empty(steps)
        eta[0] = stationary_sd * path_rng.standard_normal()
        for t in range(1, steps):
            eta[t] = rho * eta[t - 1] + sigma * path_rng.standard_normal()
        keep = np.r_[True, path_rng.random(steps - 1) >= missing]
        entity += [i] * int(keep.sum())
        window.append(np.arange(1, steps + 1)[keep])
        rate.append(theta[i] * np.exp(eta[keep] - stationary_sd**2 / 2))
    entity_index = np.asarray(entity)
    rate_path = np.concatenate(rate)
    counts = nb2_draws(rng, rate_path, phi)
    frame = pd.DataFrame({"entity": np.asarray(labels)[entity_index],
                          "window": np.concatenate(window), "count": counts})
    return SimulatedTemporalData(frame, mu, alpha, phi,
                                 pd.Series(theta, index=labels, name="theta"),
                                 rho=rho, sigma=sigma, rate_path=rate_path)
