"""Simulate data from the model's generative process (for examples, tests and benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SimulatedData", "simulate_counts", "nb2_draws"]


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
    #: With bytes: m0, tau, sigma_b and the entities' m_i (a Series by label).
    bytes_truth: dict[str, object] | None = None

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
        if self.bytes_truth is not None:
            truth.update({name: (float(value) if name != "m" else
                                 {str(k): float(v) for k, v in value.items()})
                          for name, value in self.bytes_truth.items()})
        return truth


def nb2_draws(rng: np.random.Generator, mean: np.ndarray, phi: float) -> np.ndarray:
    """NegBinomial2(mean, phi) draws via numpy's (n, p) form: n = phi, p = phi / (phi + mean)."""
    return rng.negative_binomial(phi, phi / (phi + np.asarray(mean, dtype=float)))


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
    bytes_per_event: dict[str, float] | None = None,
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
    bytes_per_event : dict, optional
        ``{"m0": ..., "tau": ..., "sigma_b": ...}``: adds column ``bytes`` from the bytes
        factor, m_i ~ Normal(m0, tau) and, for a window with y > 0 events,
        b = y * exp(Normal(m_i, sigma_b)) (0 bytes without events); from its own random stream.

    Without the options the draws are those of the base model (the options draw from their
    own random stream).
    """
    rng = np.random.default_rng(seed)
    options_rng = np.random.default_rng([seed, 8])
    if isinstance(windows, int):
        n_windows = np.full(n_entities, windows)
    else:
        n_windows = rng.integers(windows[0], windows[1] + 1, size=n_entities)
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
    bytes_truth = None
    if bytes_per_event is not None:
        bytes_rng = np.random.default_rng([seed, 9])
        m0, tau, sigma_b = (float(bytes_per_event[k]) for k in ("m0", "tau", "sigma_b"))
        m = bytes_rng.normal(m0, tau, n_entities)
        per_event = np.exp(bytes_rng.normal(m[entity_index], sigma_b))
        columns["bytes"] = np.where(counts > 0, counts * per_event, 0.0)
        bytes_truth = {"m0": m0, "tau": tau, "sigma_b": sigma_b,
                       "m": pd.Series(m, index=labels, name="m")}
    window = np.concatenate([np.arange(1, n + 1) for n in n_windows])
    frame = pd.DataFrame(
        {"entity": np.asarray(labels)[entity_index], "window": window, "count": counts,
         **columns}
    )
    return SimulatedData(frame, mu, alpha, phi, pd.Series(theta, index=labels, name="theta"),
                         beta_per_unit, beta_scaled, zero_inflation, bytes_truth)
