"""The model's generative process in numpy: the one place Python simulates the model.

``draw_prior`` draws mu, alpha, phi and theta from the prior; ``draw_entity_rates`` draws theta
given mu and alpha; ``nb2_draws`` draws the counts; ``simulate_counts`` chains them for given
hyperparameters (examples, tests, benchmarks) and simulation-based calibration (`ratepool.workflow.sbc`)
uses the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SimulatedData", "SimulatedTemporalData", "simulate_counts", "simulate_ar_counts",
           "simulate_rows", "draw_prior", "draw_entity_rates", "nb2_draws", "entity_replicates"]

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
    #: Per covariate: the true log rate ratio per unit, and per unit of sd (the model's beta).
    beta_per_unit: dict[str, float] | None = None
    beta_scaled: dict[str, float] | None = None
    pi: float | None = None
    #: With bytes: m0, tau, sigma_w, sigma_e and the entities' m_i (a Series by label).
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


def draw_prior(rng: np.random.Generator, *, mu_rate: float, alpha_sd: float, phi_sd: float,
               n_entities: int) -> dict[str, object]:
    """One ancestral draw from the prior: mu ~ Exponential(mu_rate), alpha ~ HalfNormal(alpha_sd),
    phi ~ HalfNormal(phi_sd) (floats) and theta (length ``n_entities``)."""
    mu = float(rng.exponential(1.0 / mu_rate))
    alpha = float(abs(rng.normal(0.0, alpha_sd)))
    phi = float(abs(rng.normal(0.0, phi_sd)))
    theta = draw_entity_rates(rng, mu, alpha, n_entities)
    return {"mu": mu, "alpha": alpha, "phi": phi, "theta": theta}


def draw_entity_rates(rng: np.random.Generator, mu: float | np.ndarray, alpha: float,
                      n_entities: int) -> np.ndarray:
    """theta_i ~ Gamma(shape = mu_i * alpha, rate = alpha), i = 1..n_entities (``mu`` one value,
    or one per entity with covariates)."""
    return rng.gamma(shape=mu * alpha, scale=1.0 / alpha, size=n_entities)


def nb2_draws(rng: np.random.Generator, mean: np.ndarray, phi: float) -> np.ndarray:
    """NegBinomial2(mean, phi) draws (int64) as the Gamma–Poisson mixture the model is.

    numpy's ``negative_binomial(n, p)`` raises for the tiny phi and huge means the prior
    reaches, so the mixture is drawn directly: lam ~ Gamma(phi, rate = phi / mean), then
    Poisson(lam), with lam capped at `POISSON_MEAN_CAP`.
    """
    lam = rng.gamma(shape=phi, scale=np.asarray(mean, dtype=float) / phi)
    return rng.poisson(np.minimum(lam, POISSON_MEAN_CAP)).astype(np.int64)


def entity_replicates(rng: np.random.Generator, theta: np.ndarray, phi: np.ndarray,
                      n_windows: np.ndarray) -> dict[str, np.ndarray]:
    """Per-entity predictive draws given posterior (or prior) draws, as the Stan program's
    generated quantities draw them for the base model (no exposure, no zero-inflation).

    Parameters
    ----------
    rng : numpy.random.Generator
    theta : numpy.ndarray
        Entity rates, shaped (..., J).
    phi : numpy.ndarray
        Overdispersion, shaped (...) (one value per draw).
    n_windows : numpy.ndarray
        Windows per entity, length J.

    Returns
    -------
    dict
        ``y_pred`` (a count in one new window, NB2(theta_i, phi)), ``y_rep_total`` (a replicated
        total over the entity's n_i windows, NB2(n_i theta_i, n_i phi)) and ``y_rep_zeros``
        (replicated zero windows, Binomial(n_i, (1 + theta_i / phi)^-phi)), int64, shaped like
        ``theta``.
    """
    theta = np.asarray(theta, dtype=float)
    phi = np.asarray(phi, dtype=float)[..., None]
    n = np.asarray(n_windows, dtype=np.int64)
    p_zero = np.exp(-phi * np.log1p(theta / phi))
    return {
        "y_pred": nb2_draws(rng, theta, phi),
        "y_rep_total": nb2_draws(rng, n * theta, n * phi),
        "y_rep_zeros": rng.binomial(n, p_zero).astype(np.int64),
    }


def simulate_rows(rng: np.random.Generator, theta: np.ndarray, phi: float,
                  n_windows: np.ndarray, labels: list[str],
                  exposure: np.ndarray | None = None) -> pd.DataFrame:
    """Rows ``entity, window, count``: ``n_windows[i]`` NB2(theta[i], phi) windows per entity
    (NB2(exposure * theta[i], phi) with a per-row ``exposure``)."""
    entity_index = np.repeat(np.arange(len(theta)), n_windows)
    mean = np.asarray(theta, dtype=float)[entity_index]
    counts = nb2_draws(rng, mean if exposure is None else exposure * mean, phi)
    window = np.concatenate([np.arange(1, n + 1) for n in n_windows])
    return pd.DataFrame({"entity": np.asarray(labels)[entity_index], "window": window,
                         "count": counts})


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
        ``{"m0": ..., "tau": ..., "sigma_w": ..., "sigma_e": ...}``: adds column ``bytes``
        built event by event, not from the model's lognormal approximation: m_i ~ Normal(m0,
        tau); a window with y > 0 events draws its factor w ~ Normal(-sigma_w^2 / 2, sigma_w)
        and its y events' sizes LogNormal(m_i - sigma_e^2 / 2 + w, sigma_e) (so exp(m_i) is the
        mean size of an event), and b is their sum (0 bytes without events); from its own
        random stream.

    Without the options the draws are those of the base model (the options draw from their
    own random stream).
    """
    rng = np.random.default_rng(seed)
    options_rng = np.random.default_rng([seed, 8])
    n_windows = _draw_windows(rng, n_entities, windows)
    labels = [label_format.format(i + 1) for i in range(n_entities)]
    entity_index = np.repeat(np.arange(n_entities), n_windows)
    columns: dict[str, np.ndarray] = {}
    mean_rate: float | np.ndarray = mu
    beta_per_unit = beta_scaled = None
    if covariate_effects:
        beta_per_unit, beta_scaled = dict(covariate_effects), {}
        for name, effect in covariate_effects.items():
            values = options_rng.normal(10.0, 3.0, n_entities)
            mean_rate = mean_rate * np.exp(effect * (values - values.mean()))
            beta_scaled[name] = float(effect * values.std())
            columns[name] = values[entity_index]
    theta = draw_entity_rates(rng, mean_rate, alpha, n_entities)
    window_exposure = None
    if exposure is not None:
        size = np.exp(options_rng.uniform(np.log(exposure[0]), np.log(exposure[1]), n_entities))
        window_exposure = size[entity_index] * options_rng.choice([0.5, 1.0, 2.0],
                                                                  len(entity_index))
        columns["exposure"] = window_exposure
    frame = simulate_rows(rng, theta, phi, n_windows, labels, exposure=window_exposure)
    if zero_inflation is not None:
        structural = options_rng.random(len(frame)) < zero_inflation
        frame["count"] = np.where(structural, 0, frame["count"].to_numpy())
    bytes_truth = None
    if bytes_per_event is not None:
        counts = frame["count"].to_numpy()
        bytes_rng = np.random.default_rng([seed, 9])
        m0, tau, sigma_w, sigma_e = (float(bytes_per_event[k])
                                     for k in ("m0", "tau", "sigma_w", "sigma_e"))
        m = bytes_rng.normal(m0, tau, n_entities)
        columns["bytes"] = window_bytes_from_events(bytes_rng, counts, m[entity_index],
                                                    sigma_w, sigma_e)
        bytes_truth = {"m0": m0, "tau": tau, "sigma_w": sigma_w, "sigma_e": sigma_e,
                       "m": pd.Series(m, index=labels, name="m")}
    frame = frame.assign(**columns)
    return SimulatedData(frame, mu, alpha, phi, pd.Series(theta, index=labels, name="theta"),
                         beta_per_unit, beta_scaled, zero_inflation, bytes_truth)


def window_bytes_from_events(rng: np.random.Generator, counts: np.ndarray, m: np.ndarray,
                             sigma_w: float, sigma_e: float) -> np.ndarray:
    """The bytes of windows of ``counts`` events, summed over per-event sizes: each window
    draws a factor w ~ Normal(-sigma_w^2 / 2, sigma_w), each of its events a size
    LogNormal(m - sigma_e^2 / 2 + w, sigma_e) (``m`` per window: the log mean size); 0 bytes
    in a window without events. Memory is O(total events)."""
    counts = np.asarray(counts, dtype=np.int64)
    factor = rng.normal(-sigma_w**2 / 2, sigma_w, len(counts)) + np.asarray(m) - sigma_e**2 / 2
    window_of_event = np.repeat(np.arange(len(counts)), counts)
    sizes = np.exp(rng.normal(factor[window_of_event], sigma_e))
    return np.bincount(window_of_event, weights=sizes, minlength=len(counts))


@dataclass(frozen=True)
class SimulatedTemporalData(SimulatedData):
    """Rows simulated from the AR(1) temporal model, with its true rho, sigma and rate path.

    ``s`` (the stationary sd, ``sigma / sqrt(1 - rho^2)``) is derived."""

    rho: float = 0.0
    sigma: float = 0.0
    #: The true latent rate lambda_ij of each row of ``frame``.
    rate_path: np.ndarray | None = None

    def truth(self) -> dict[str, object]:
        """The true values as a JSON-ready dict (with rho, s and sigma)."""
        return {**super().truth(), "rho": self.rho, "s": self.s, "sigma": self.sigma}

    @property
    def s(self) -> float:
        """The stationary sd of the log-rate deviation."""
        return float(self.sigma / np.sqrt((1.0 - self.rho) * (1.0 + self.rho)))


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

    theta_i ~ Gamma(mu alpha, alpha) (the entity's median rate); over windows 1..T_i the
    log-rate deviation starts at its stationary law N(0, s^2), s = sigma / sqrt(1 - rho^2), and
    steps eta_t = rho eta_{t-1} + sigma e_t; lambda_it = theta_i exp(eta_t);
    y_it ~ NB2(lambda_it, phi). Then each
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
        rate.append(theta[i] * np.exp(eta[keep]))
    entity_index = np.asarray(entity)
    rate_path = np.concatenate(rate)
    counts = nb2_draws(rng, rate_path, phi)
    frame = pd.DataFrame({"entity": np.asarray(labels)[entity_index],
                          "window": np.concatenate(window), "count": counts})
    return SimulatedTemporalData(frame, mu, alpha, phi,
                                 pd.Series(theta, index=labels, name="theta"),
                                 rho=rho, sigma=sigma, rate_path=rate_path)
