"""The model's generative process in numpy: the one place Python simulates the model.

``draw_prior`` draws mu, alpha, phi and theta from the prior; ``draw_entity_rates`` draws theta
given mu and alpha; ``nb2_draws`` draws the counts; ``simulate_counts`` chains them for given
hyperparameters (examples, tests, benchmarks) and simulation-based calibration (`ratepool.sbc`)
uses the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SimulatedData", "simulate_counts", "simulate_rows", "draw_prior",
           "draw_entity_rates", "nb2_draws"]

#: Poisson means are capped here only to keep numpy's Poisson sampler from raising (it stops
#: near 9.2e18); counts this large are far beyond what data validation accepts anyway.
POISSON_MEAN_CAP = 1e15


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


def draw_prior(rng: np.random.Generator, *, mu_rate: float, alpha_sd: float, phi_sd: float,
               n_entities: int) -> dict[str, object]:
    """One ancestral draw from the prior: mu ~ Exponential(mu_rate), alpha ~ HalfNormal(alpha_sd),
    phi ~ HalfNormal(phi_sd) (floats) and theta (length ``n_entities``)."""
    mu = float(rng.exponential(1.0 / mu_rate))
    alpha = float(abs(rng.normal(0.0, alpha_sd)))
    phi = float(abs(rng.normal(0.0, phi_sd)))
    theta = draw_entity_rates(rng, mu, alpha, n_entities)
    return {"mu": mu, "alpha": alpha, "phi": phi, "theta": theta}


def draw_entity_rates(rng: np.random.Generator, mu: float, alpha: float,
                      n_entities: int) -> np.ndarray:
    """theta_i ~ Gamma(shape = mu * alpha, rate = alpha), i = 1..n_entities."""
    return rng.gamma(shape=mu * alpha, scale=1.0 / alpha, size=n_entities)


def nb2_draws(rng: np.random.Generator, mean: np.ndarray, phi: float) -> np.ndarray:
    """NegBinomial2(mean, phi) draws (int64) as the Gamma–Poisson mixture the model is.

    numpy's ``negative_binomial(n, p)`` raises for the tiny phi and huge means the prior
    reaches, so the mixture is drawn directly: lam ~ Gamma(phi, rate = phi / mean), then
    Poisson(lam), with lam capped at `POISSON_MEAN_CAP`.
    """
    lam = rng.gamma(shape=phi, scale=np.asarray(mean, dtype=float) / phi)
    return rng.poisson(np.minimum(lam, POISSON_MEAN_CAP)).astype(np.int64)


def simulate_rows(rng: np.random.Generator, theta: np.ndarray, phi: float,
                  n_windows: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Rows ``entity, window, count``: ``n_windows[i]`` NB2(theta[i], phi) windows per entity."""
    entity_index = np.repeat(np.arange(len(theta)), n_windows)
    counts = nb2_draws(rng, np.asarray(theta, dtype=float)[entity_index], phi)
    window = np.concatenate([np.arange(1, n + 1) for n in n_windows])
    return pd.DataFrame({"entity": np.asarray(labels)[entity_index], "window": window,
                         "count": counts})


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
    theta = draw_entity_rates(rng, mu, alpha, n_entities)
    labels = [label_format.format(i + 1) for i in range(n_entities)]
    frame = simulate_rows(rng, theta, phi, n_windows, labels)
    return SimulatedData(frame, mu, alpha, phi, pd.Series(theta, index=labels, name="theta"))
