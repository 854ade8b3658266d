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

    def truth(self) -> dict[str, object]:
        """The true values as a JSON-ready dict."""
        return {
            "mu": self.mu,
            "alpha": self.alpha,
            "phi": self.phi,
            "theta": {str(label): float(value) for label, value in self.theta.items()},
        }


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
) -> SimulatedData:
    """Draw theta_i ~ Gamma(mu * alpha, alpha), then n_i windows of NB2(theta_i, phi) counts.

    Parameters
    ----------
    windows : int or (low, high)
        Windows per entity: a fixed number, or drawn uniformly from ``low..high`` inclusive.
    """
    rng = np.random.default_rng(seed)
    if isinstance(windows, int):
        n_windows = np.full(n_entities, windows)
    else:
        n_windows = rng.integers(windows[0], windows[1] + 1, size=n_entities)
    theta = rng.gamma(shape=mu * alpha, scale=1.0 / alpha, size=n_entities)
    labels = [label_format.format(i + 1) for i in range(n_entities)]
    entity_index = np.repeat(np.arange(n_entities), n_windows)
    counts = nb2_draws(rng, theta[entity_index], phi)
    window = np.concatenate([np.arange(1, n + 1) for n in n_windows])
    frame = pd.DataFrame(
        {"entity": np.asarray(labels)[entity_index], "window": window, "count": counts}
    )
    return SimulatedData(frame, mu, alpha, phi, pd.Series(theta, index=labels, name="theta"))
