"""Simulation-based calibration of the AR(1) temporal program (``stan/temporal_negbinom.stan``).

The same simulate-fit-rank cycle as `ratepool.workflow.sbc` (Talts et al. 2018), for the
temporal model: each simulation draws mu, alpha, phi, theta, the stationary sd
s ~ HalfNormal(s_sd) and rho with (rho + 1) / 2 ~ Beta(2, 2) from the prior, simulates every
entity's log-rate path step by step (numpy: eta_1 from the stationary law, then
eta_t = rho eta_{t-1} + sigma e_t with sigma = s sqrt(1 - rho^2)), its counts
NB2(theta_i exp(eta_t), phi) (theta_i: the entity's median rate), fits them with the temporal
program and ranks each truth among thinned posterior draws: rho, s and the innovation sd sigma
as well as mu, alpha, phi and the first thetas.

`run_temporal_sbc` returns one row per simulation in the layout of `run_sbc` (truths, ranks,
divergences, R-hat, ESS, errors); the checks of `ratepool.posterior.sbc_checks` read it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from ratepool.data.counts import CountData
from ratepool.data.frame import from_dataframe
from ratepool.engines import get_engine
from ratepool.engines.base import Engine, SamplerSettings
from ratepool.errors import ConfigError, RatepoolError
from ratepool.model.config import ModelConfig
from ratepool.model.program import StanProgram, temporal_program
from ratepool.model.simulate import draw_prior, nb2_draws
from ratepool.model.temporal import temporal_stan_data
from ratepool.workflow.sbc import (
    SBCPrior,
    SBCSettings,
    _empty_row,
    _seeds,
    rank_of,
    thin_draws,
)

__all__ = ["TemporalPrior", "draw_temporal_parameters", "simulate_temporal_data",
           "temporal_ranked_parameters", "run_temporal_simulation", "run_temporal_sbc"]

log = logging.getLogger(__name__)

#: Population parameters whose R-hat and ESS each row reports.
_SUMMARISED = ("mu", "alpha", "phi", "rho", "s", "sigma")


@dataclass(frozen=True)
class TemporalPrior(SBCPrior):
    """`SBCPrior` plus ``s ~ HalfNormal(s_sd)`` (rho's scaled Beta(2, 2) has no setting)."""

    s_sd: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        ModelConfig(stationary_sd_prior_sd=self.s_sd)  # raises ConfigError naming the scale


def temporal_ranked_parameters(settings: SBCSettings) -> list[str]:
    """mu, alpha, phi, rho, s (the stationary sd), sigma and theta[1]..theta[n_theta]."""
    return (["mu", "alpha", "phi", "rho", "s", "sigma"]
            + [f"theta[{i + 1}]" for i in range(settings.n_theta)])


def draw_temporal_parameters(rng: np.random.Generator, prior: TemporalPrior,
                             n_entities: int) -> dict[str, Any]:
    """One ancestral prior draw: mu, alpha, phi, theta (as `draw_prior`), rho, s and sigma."""
    truth = draw_prior(rng, mu_rate=prior.mu_rate, alpha_sd=prior.alpha_sd,
                       phi_sd=prior.phi_sd, n_entities=n_entities)
    truth["rho"] = float(2.0 * rng.beta(2.0, 2.0) - 1.0)
    truth["s"] = float(abs(rng.normal(0.0, prior.s_sd)))
    truth["sigma"] = truth["s"] * float(np.sqrt((1 - truth["rho"]) * (1 + truth["rho"])))
    return truth


def simulate_temporal_data(rng: np.random.Generator, truth: dict[str, Any],
                           n_windows: int) -> CountData:
    """``n_windows`` consecutive windows per entity from the AR(1) model, step by step.

    Raises
    ------
    DataError
        If a count exceeds Stan's integer range (the fit is then recorded as failed).
    """
    theta = np.asarray(truth["theta"], dtype=float)
    rho, sigma, s = truth["rho"], truth["sigma"], truth["s"]
    eta = np.empty((len(theta), n_windows))
    eta[:, 0] = s * rng.standard_normal(len(theta))
    for t in range(1, n_windows):
        eta[:, t] = rho * eta[:, t - 1] + sigma * rng.standard_normal(len(theta))
    with np.errstate(over="ignore"):
        rate = theta[:, None] * np.exp(eta)
    counts = nb2_draws(rng, rate.reshape(-1), float(truth["phi"]))
    labels = np.repeat([f"e{i:03d}" for i in range(len(theta))], n_windows)
    frame = pd.DataFrame({"entity": labels, "window": np.tile(np.arange(n_windows), len(theta)),
                          "count": counts})
    return from_dataframe(frame, window_col="window")


def run_temporal_simulation(index: int, *, seed: int, settings: SBCSettings,
                            prior: TemporalPrior, engine: Engine,
                            program: StanProgram) -> dict[str, Any]:
    """Simulate, fit and rank once; one row of `run_temporal_sbc`'s table."""
    import arviz as az

    rng, stan_seed = _seeds(seed, index)
    truth = draw_temporal_parameters(rng, prior, settings.n_entities)
    names = temporal_ranked_parameters(settings)
    true_values = {name: truth[name] for name in names if not name.startswith("theta[")}
    true_values.update({f"theta[{i + 1}]": float(truth["theta"][i])
                        for i in range(settings.n_theta)})
    row = _empty_row(index, stan_seed, true_values, names)
    start = time.perf_counter()
    try:
        data = simulate_temporal_data(rng, truth, settings.n_windows)
        row["total_count"] = int(data.entity_total.sum())
        row["zero_share"] = float(np.mean(data.y == 0))
        config = ModelConfig(
            temporal="ar1", mu_prior_rate=prior.mu_rate, alpha_prior_sd=prior.alpha_sd,
            overdispersion_prior_sd=prior.phi_sd, stationary_sd_prior_sd=prior.s_sd,
            obs_predictions=False, entity_predictions=False, random_seed=stan_seed)
        values = temporal_stan_data(data, config, obs_predictions=False)
        draws = engine.sample(program, values, SamplerSettings(
            chains=settings.n_chains, warmup=settings.n_tune, draws=settings.n_samples,
            adapt_delta=settings.target_accept, seed=stan_seed))
    except RatepoolError as error:
        row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        row["seconds"] = time.perf_counter() - start
        log.warning("temporal SBC simulation %d failed: %s", index, row["error"])
        return row
    row["seconds"] = time.perf_counter() - start
    posterior = {name: np.asarray(draws.variables[name], dtype=float) for name in
                 ("mu", "alpha", "phi", "rho", "s", "sigma", "theta")}
    for name in names:
        values_ = (posterior["theta"][..., int(name[6:-1]) - 1] if name.startswith("theta[")
                   else posterior[name])
        row[f"rank_{name}"] = rank_of(true_values[name],
                                      thin_draws(values_, settings.n_ranked_draws), rng)
    stats = draws.sample_stats
    row["divergences"] = int(np.sum(stats["diverging"]))
    depth = stats.get("tree_depth")
    row["max_treedepth_hits"] = int(np.sum(np.asarray(depth) >= 10)) if depth is not None else 0
    summary = {name: posterior[name] for name in _SUMMARISED}
    row["r_hat_max"] = float(max(float(az.rhat(values_)) for values_ in summary.values()))
    row["ess_bulk_min"] = float(min(float(az.ess(values_, method="bulk"))
                                    for values_ in summary.values()))
    return row


def run_temporal_sbc(
    n_simulations: int,
    *,
    seed: int,
    settings: SBCSettings | None = None,
    prior: TemporalPrior | None = None,
    engine: Engine | str = "cmdstan",
    program: StanProgram | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    first_simulation: int = 0,
) -> pd.DataFrame:
    """Run ``n_simulations`` simulate-fit-rank cycles of the temporal program.

    ``settings`` gives the dataset size (``n_entities`` x ``n_windows`` consecutive windows),
    the sampler settings and the number of thetas ranked; its model options are not used.
    Simulation i depends only on (seed, i). Returns the table of `run_sbc` with rho, s and
    sigma ranked too (see `temporal_ranked_parameters`).
    """
    if isinstance(n_simulations, bool) or not isinstance(n_simulations, int) \
            or n_simulations < 1:
        raise ConfigError(f"n_simulations must be a positive integer, got {n_simulations!r}")
    settings = settings or SBCSettings()
    prior = prior or TemporalPrior()
    runner = get_engine(engine) if isinstance(engine, str) else engine
    program = program or temporal_program()
    runner.compile(program)
    rows = []
    for index in range(first_simulation, first_simulation + n_simulations):
        row = run_temporal_simulation(index, seed=seed, settings=settings, prior=prior,
                                      engine=runner, program=program)
        rows.append(row)
        log.info("temporal SBC simulation %d: %.1f s, %s divergences%s", index,
                 row["seconds"], row["divergences"], f", {row['error']}" if row["error"] else "")
        if progress is not None:
            progress(row)
    return pd.DataFrame(rows)
