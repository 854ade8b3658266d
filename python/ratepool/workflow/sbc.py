"""Simulation-based calibration (SBC; Talts, Betancourt, Simpson, Vehtari & Gelman, 2018).

Each simulation draws (mu, alpha, phi, theta) from the prior and simulates a dataset of
``n_entities`` x ``n_windows`` counts with `ratepool.model.simulate` (numpy, independently of Stan),
fits it with Stan, thins the posterior to ``n_ranked_draws`` (L) nearly independent draws and
records the rank of each true value among them: the number of thinned draws below it, 0..L.
If the program, the simulator and the sampler are all correct, every rank is uniform on 0..L.
Ranks piled at one end mean biased posteriors; a U shape means posteriors that are too narrow;
a hump, too wide.

`run_sbc` returns one row per simulation (truths, ranks, divergences, R-hat, ESS, errors);
`uniformity_tests`, `rank_histograms` and `divergence_breakdown` summarise it.
``scripts/sbc.py`` prints those summaries; this module only logs.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ratepool.data.counts import MAX_STAN_INT, CountData
from ratepool.data.frame import from_dataframe
from ratepool.engines import get_engine
from ratepool.engines.base import Engine, SamplerSettings
from ratepool.errors import ConfigError, RatepoolError
from ratepool.model.program import StanProgram, default_program
from ratepool.model.simulate import draw_entity_rates, draw_prior, simulate_rows
from ratepool.model.standata import stan_data
from ratepool.posterior.diagnostics import get_model_diagnostics
from ratepool.posterior.inference import build_inference_data
from ratepool.posterior.sbc_checks import (
    REGIONS,
    divergence_breakdown,
    fit_ran,
    rank_histograms,
    uniformity_tests,
)
from ratepool.workflow.sbc_settings import SBCPrior, SBCSettings, ranked_parameters

__all__ = [
    "SBCPrior",
    "SBCSettings",
    "REGIONS",
    "draw_parameters",
    "simulate_data",
    "thin_draws",
    "rank_of",
    "run_simulation",
    "run_sbc",
    "ranked_parameters",
    "rank_histograms",
    "uniformity_tests",
    "divergence_breakdown",
    "fit_ran",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# One simulation


def draw_parameters(rng: np.random.Generator, prior: SBCPrior, n_entities: int,
                    settings: SBCSettings | None = None) -> dict[str, Any]:
    """One ancestral draw from the prior: mu, alpha, phi (floats) and theta (length J); with
    the options of ``settings`` also the design (covariates z, J x P, centred and scaled as
    ratepool does), beta and pi, theta then drawn at mu_i = mu exp(z_i' beta)."""
    settings = settings or SBCSettings(n_entities=n_entities)
    if not settings.n_covariates and not settings.zero_inflation:
        return draw_prior(rng, mu_rate=prior.mu_rate, alpha_sd=prior.alpha_sd,
                          phi_sd=prior.phi_sd, n_entities=n_entities)
    truth = draw_prior(rng, mu_rate=prior.mu_rate, alpha_sd=prior.alpha_sd,
                       phi_sd=prior.phi_sd, n_entities=0)
    if settings.n_covariates:
        x = rng.normal(size=(n_entities, settings.n_covariates))
        truth["x"] = x
        z = (x - x.mean(axis=0)) / x.std(axis=0)
        truth["beta"] = rng.normal(0.0, prior.beta_sd, settings.n_covariates)
        mean_rate = truth["mu"] * np.exp(z @ truth["beta"])
    else:
        mean_rate = truth["mu"]
    if settings.zero_inflation:
        truth["pi"] = float(rng.beta(1.0, 1.0))
    truth["theta"] = draw_entity_rates(rng, mean_rate, truth["alpha"], n_entities)
    return truth


def simulate_data(rng: np.random.Generator, truth: Mapping[str, Any], n_windows: int,
                  settings: SBCSettings | None = None) -> CountData:
    """``n_windows`` NB2(theta_i, phi) counts per entity, as validated `CountData` (with the
    options of ``settings``: exposures, covariate columns, structural zeros).

    Entity labels are ``e000``, ``e001``, ...; they sort in simulation order, so Stan's entity
    i + 1 is ``truth["theta"][i]``.

    Raises
    ------
    DataError
        If a simulated count exceeds Stan's integer range (then the fit is recorded as failed).
    """
    theta = np.asarray(truth["theta"], dtype=float)
    width = max(3, len(str(len(theta) - 1)))
    labels = [f"e{i:0{width}d}" for i in range(len(theta))]
    settings = settings or SBCSettings(n_entities=len(theta), n_windows=n_windows)
    exposure = (np.exp(rng.uniform(np.log(0.25), np.log(4.0), len(theta) * n_windows))
                if settings.exposure else None)
    frame = simulate_rows(rng, theta, float(truth["phi"]), np.full(len(theta), n_windows),
                          labels, exposure=exposure)
    if "pi" in truth:
        structural = rng.random(len(frame)) < truth["pi"]
        frame["count"] = np.where(structural, 0, frame["count"].to_numpy())
    if frame["count"].max() > MAX_STAN_INT:
        log.info("simulated count %d exceeds Stan's int range", int(frame["count"].max()))
    columns = ["entity", "count"]
    if exposure is not None:
        frame["exposure"] = exposure
        columns.append("exposure")
    covariates = [f"x{p + 1}" for p in range(np.shape(truth.get("x", np.zeros((0, 0))))[1])]
    for p, name in enumerate(covariates):
        frame[name] = np.repeat(truth["x"][:, p], n_windows)
    return from_dataframe(frame[columns + covariates],
                          exposure_col="exposure" if exposure is not None else None,
                          covariates=covariates or None)


def thin_draws(draws: np.ndarray, n_keep: int) -> np.ndarray:
    """``n_keep`` draws evenly spaced over the chains' draws (chain, draw) concatenated."""
    flat = np.asarray(draws, dtype=float).reshape(-1)
    if n_keep > flat.size:
        raise ConfigError(f"cannot keep {n_keep} draws out of {flat.size}")
    index = np.floor(np.arange(n_keep) * (flat.size / n_keep)).astype(np.int64)
    return flat[index]


def rank_of(true_value: float, draws: np.ndarray, rng: np.random.Generator) -> int:
    """Number of ``draws`` below ``true_value``, ties broken uniformly at random (0..len)."""
    draws = np.asarray(draws, dtype=float)
    below = int(np.sum(draws < true_value))
    ties = int(np.sum(draws == true_value))
    return below + (int(rng.integers(0, ties + 1)) if ties else 0)


def _seeds(seed: int, index: int) -> tuple[np.random.Generator, int]:
    """Simulation ``index``'s numpy generator and Stan seed (independent of the run's size)."""
    sequence = np.random.SeedSequence(seed, spawn_key=(index,))
    stan_seed = int(sequence.generate_state(1, dtype=np.uint32)[0] % (2**31 - 1))
    return np.random.default_rng(sequence), stan_seed


def _empty_row(index: int, stan_seed: int, true_values: dict[str, float],
               names: Sequence[str]) -> dict[str, Any]:
    """One simulation's table row before its fit: the truths, and NaN for what the fit fills
    in (ranks, sampler checks, data summaries, time)."""
    row: dict[str, Any] = {"simulation": index, "stan_seed": stan_seed}
    row.update({f"true_{name}": value for name, value in true_values.items()})
    row.update({f"rank_{name}": np.nan for name in names})
    row.update(divergences=np.nan, max_treedepth_hits=np.nan, r_hat_max=np.nan,
               ess_bulk_min=np.nan, total_count=np.nan, zero_share=np.nan, seconds=np.nan,
               error="")
    return row


def run_simulation(
    index: int,
    *,
    seed: int,
    settings: SBCSettings,
    simulator_prior: SBCPrior,
    model_prior: SBCPrior,
    engine: Engine,
    program: StanProgram,
) -> dict[str, Any]:
    """Simulate, fit and rank once; returns one row of `run_sbc`'s table.

    A fit that fails (the sampler cannot start, or the simulated data are rejected) gives a row
    with ``error`` set and missing ranks rather than an exception.
    """
    rng, stan_seed = _seeds(seed, index)
    truth = draw_parameters(rng, simulator_prior, settings.n_entities, settings)
    names = ranked_parameters(settings)
    true_values = {"mu": truth["mu"], "alpha": truth["alpha"], "phi": truth["phi"],
                   **{f"beta[{p + 1}]": float(truth["beta"][p])
                      for p in range(settings.n_covariates)},
                   **({"pi": truth["pi"]} if settings.zero_inflation else {}),
                   **{f"theta[{i + 1}]": float(truth["theta"][i])
                      for i in range(settings.n_theta)}}
    row = _empty_row(index, stan_seed, true_values, names)
    start = time.perf_counter()
    try:
        data = simulate_data(rng, truth, settings.n_windows, settings)
        row["total_count"] = int(data.entity_total.sum())
        row["zero_share"] = float(np.mean(data.y == 0))
        config = settings.model_config(model_prior, stan_seed)
        draws = engine.sample(program, stan_data(data, config), SamplerSettings(
            chains=config.n_chains, warmup=config.n_tune, draws=config.n_samples,
            adapt_delta=config.target_accept, seed=stan_seed))
    except RatepoolError as error:
        row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        row["seconds"] = time.perf_counter() - start
        log.warning("SBC simulation %d failed: %s", index, row["error"])
        return row
    row["seconds"] = time.perf_counter() - start
    idata = build_inference_data(draws, data)  # the one place that names the entity rates
    posterior = idata.posterior
    for name in names:
        thinned = thin_draws(_values(posterior, name), settings.n_ranked_draws)
        row[f"rank_{name}"] = rank_of(true_values[name], thinned, rng)
    diagnostics = get_model_diagnostics(idata)
    row["divergences"] = diagnostics["divergences"]
    row["max_treedepth_hits"] = diagnostics["treedepth_hits"]
    row["r_hat_max"] = diagnostics["r_hat_max"]
    row["ess_bulk_min"] = diagnostics["ess_bulk_min"]
    return row


def _values(posterior: Any, name: str) -> np.ndarray:
    """(chain, draw) draws of ``mu``, ``alpha``, ``phi``, ``pi``, ``beta[p]`` or ``theta[i]``
    (1-based)."""
    for vector in ("theta", "beta"):
        if name.startswith(f"{vector}["):
            return posterior[vector].values[..., int(name[len(vector) + 1:-1]) - 1]
    return posterior[name].values


def run_sbc(
    n_simulations: int,
    *,
    seed: int,
    settings: SBCSettings | None = None,
    simulator_prior: SBCPrior | None = None,
    model_prior: SBCPrior | None = None,
    engine: Engine | str = "pystan",
    program: StanProgram | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    first_simulation: int = 0,
) -> pd.DataFrame:
    """Run ``n_simulations`` simulate-fit-rank cycles.

    Parameters
    ----------
    n_simulations : int
        Number of simulations.
    seed : int
        Master seed; simulation i's parameters, data and sampler seed depend only on
        (seed, i), so a larger run repeats a smaller one's first simulations.
    settings : SBCSettings, optional
        Dataset and sampler sizes.
    simulator_prior, model_prior : SBCPrior, optional
        The prior the truths are drawn from, and the prior the model is fitted with; both
        default to the package's default priors. Making them differ is a deliberately
        miscalibrated run, which SBC should flag.
    engine : str or Engine
        The Stan engine.
    program : StanProgram, optional
        The Stan program; the packaged one by default.
    progress : callable, optional
        Called with each finished row.
    first_simulation : int
        Index of the first simulation (to split a long run into parts).

    Returns
    -------
    pandas.DataFrame
        One row per simulation: ``simulation``, ``stan_seed``, ``true_<name>`` and
        ``rank_<name>`` for each of `ranked_parameters`, ``divergences``,
        ``max_treedepth_hits``, ``r_hat_max`` and ``ess_bulk_min`` (over mu, alpha, phi),
        ``total_count``, ``zero_share``, ``seconds`` and ``error`` (empty when the fit ran).
    """
    if isinstance(n_simulations, bool) or not isinstance(n_simulations, int) \
            or n_simulations < 1:
        raise ConfigError(f"n_simulations must be a positive integer, got {n_simulations!r}")
    settings = settings or SBCSettings()
    simulator_prior = simulator_prior or SBCPrior()
    model_prior = model_prior or SBCPrior()
    runner = get_engine(engine) if isinstance(engine, str) else engine
    program = program or default_program()
    runner.compile(program)
    rows = []
    log.info("SBC: %d simulations of %d entities x %d windows, %d chains x (%d + %d) iterations",
             n_simulations, settings.n_entities, settings.n_windows, settings.n_chains,
             settings.n_tune, settings.n_samples)
    for index in range(first_simulation, first_simulation + n_simulations):
        row = run_simulation(index, seed=seed, settings=settings,
                             simulator_prior=simulator_prior, model_prior=model_prior,
                             engine=runner, program=program)
        rows.append(row)
        log.info("SBC simulation %d: %.1f s, %s divergences%s", index, row["seconds"],
                 row["divergences"], f", {row['error']}" if row["error"] else "")
        if progress is not None:
            progress(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Summaries


