"""The AR(1) temporal model (``ModelConfig(temporal="ar1")``, stan/temporal_negbinom.stan): its
log density against an independent scipy computation, window ordering and gaps, input
validation, the prior (its log density and the program's prior draws of rho, s and sigma against
scipy's laws), recovery on simulated AR data, and the sigma -> 0 limit against the static
model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import linalg, stats

import ratepool
from ratepool.model.program import temporal_program
from ratepool.model.simulate import simulate_ar_counts, simulate_counts
from ratepool.model.temporal import check_temporal, temporal_stan_data, window_layout

from .conftest import engine_params

CONFIG = ratepool.ModelConfig(temporal="ar1", mu_prior_rate=0.2, alpha_prior_sd=1.5,
                              overdispersion_prior_sd=3.0, stationary_sd_prior_sd=0.7)


def gappy_panel(seed: int) -> pd.DataFrame:
    """Rows in shuffled order, integer windows with gaps of 1-4 steps, one single-window
    entity, exposures."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate([6, 1, 4, 8]):
        windows = np.cumsum(rng.integers(1, 5, size=n)) + 10 * i
        for w in windows:
            rows.append((f"e{i}", int(w), int(rng.poisson(3)), float(rng.choice([0.5, 1, 3]))))
    frame = pd.DataFrame(rows, columns=["entity", "window", "count", "exposure"])
    return frame.sample(frac=1, random_state=seed).reset_index(drop=True)


def scipy_log_density(data: ratepool.CountData, params: dict, config: ratepool.ModelConfig
                      ) -> float:
    """The joint density written independently of the program's recursion: per entity, the
    latent deviations eta = L z with L the Cholesky factor of the stationary AR(1) covariance
    s^2 rho^|t_j - t_k| at the entity's observed windows (for ordered windows that factor is
    exactly the gap transition the program uses)."""
    mu, alpha, phi, theta = params["mu"], params["alpha"], params["phi"], params["theta"]
    rho, s, z_sorted = params["rho"], params["s"], np.asarray(params["z"])
    s2 = s**2
    lp = (stats.expon.logpdf(mu, scale=1 / config.mu_prior_rate)
          + stats.halfnorm.logpdf(alpha, scale=config.alpha_prior_sd)
          + stats.halfnorm.logpdf(phi, scale=config.overdispersion_prior_sd)
          + stats.gamma.logpdf(theta, a=mu * alpha, scale=1 / alpha).sum()
          + stats.beta.logpdf(rho, 2, 2, loc=-1, scale=2)
          + stats.halfnorm.logpdf(s, scale=config.stationary_sd_prior_sd)
          + stats.norm.logpdf(z_sorted).sum())
    windows = np.asarray(data.window, dtype=float)
    exposure = data.exposure if data.exposure is not None else np.ones(len(data.y))
    position = 0
    for entity in range(data.n_entities):
        rows = np.flatnonzero(data.entity_index == entity)
        rows = rows[np.argsort(windows[rows])]
        t = windows[rows]
        covariance = s2 * rho ** np.abs(t[:, None] - t[None, :])
        eta = linalg.cholesky(covariance, lower=True) @ z_sorted[position:position + len(rows)]
        position += len(rows)
        mean = exposure[rows] * theta[entity] * np.exp(eta)  # theta: the median rate
        lp += stats.nbinom.logpmf(data.y[rows], n=phi, p=phi / (phi + mean)).sum()
    return float(lp)


@pytest.mark.parametrize("engine_name", engine_params())
def test_log_density_matches_scipy_with_gaps_exposure_and_shuffled_rows(engine_name: str
                                                                        ) -> None:
    engine = ratepool.get_engine(engine_name)
    data = ratepool.from_dataframe(gappy_panel(5), window_col="window",
                                   exposure_col="exposure")
    config = CONFIG.replace(exposure_col="exposure")
    values = temporal_stan_data(data, config, obs_predictions=False)
    rng = np.random.default_rng(17)
    for rho in (0.85, -0.6, 0.05):
        params = {"mu": rng.gamma(2, 2), "alpha": rng.gamma(2, 0.5), "phi": rng.gamma(2, 1),
                  "theta": rng.gamma(3, 1, data.n_entities), "rho": rho,
                  "s": rng.uniform(0.1, 0.8), "z": rng.normal(size=data.n_windows_total)}
        expected = scipy_log_density(data, params, config)
        got = engine.log_density(temporal_program(), values, params)
        assert got == pytest.approx(expected, rel=1e-8, abs=1e-8), rho


def test_log_density_puts_the_prior_on_s_and_vanishes_at_rho_one() -> None:
    """At one point the program's log density equals scipy's with s ~ HalfNormal and
    (rho + 1) / 2 ~ Beta(2, 2), and moving rho towards 1 at fixed s (and z) changes it by
    exactly log(1 - rho^2) plus the likelihood's change: rho's prior density 3/4 (1 - rho^2)
    goes to 0 at +-1 (under the earlier Uniform(-1, 1) prior it stayed at 1/2)."""
    engine = ratepool.get_engine("pystan")
    data = ratepool.from_dataframe(gappy_panel(3), window_col="window")
    values = temporal_stan_data(data, CONFIG, obs_predictions=False, prior_only=True)
    rng = np.random.default_rng(5)
    params = {"mu": 3.0, "alpha": 1.2, "phi": 2.5, "theta": rng.gamma(3, 1, data.n_entities),
              "rho": 0.3, "s": 0.45, "z": rng.normal(size=data.n_windows_total)}
    # prior_only = 1: the target is the prior alone (no likelihood term).
    for rho in (0.3, 0.99, 0.9999):
        point = {**params, "rho": rho}
        expected = (stats.expon.logpdf(3.0, scale=1 / CONFIG.mu_prior_rate)
                    + stats.halfnorm.logpdf(1.2, scale=CONFIG.alpha_prior_sd)
                    + stats.halfnorm.logpdf(2.5, scale=CONFIG.overdispersion_prior_sd)
                    + stats.gamma.logpdf(params["theta"], a=3.6, scale=1 / 1.2).sum()
                    + np.log(0.75 * (1 - rho**2))
                    + stats.halfnorm.logpdf(0.45, scale=CONFIG.stationary_sd_prior_sd)
                    + stats.norm.logpdf(params["z"]).sum())
        got = engine.log_density(temporal_program(), values, point)
        assert got == pytest.approx(expected, rel=1e-10, abs=1e-10), rho


def test_prior_draws_of_rho_s_and_sigma_follow_their_laws() -> None:
    """The program's ancestral prior draws (fixed_param sampler, 4000 draws, fixed seed):
    rho against scipy's Beta(2, 2) on (-1, 1), s against HalfNormal(stationary_sd_prior_sd)
    and sigma against the law of s sqrt(1 - rho^2) (its CDF by quadrature over rho), each by
    a one-sample Kolmogorov-Smirnov test at level 0.001 (a correct program fails one of the
    three with probability under 0.3%; under the earlier prior, rho uniform, the KS distance
    to Beta(2, 2) is about 0.1, a p-value near 1e-30 at 4000 draws); and sigma is
    s sqrt(1 - rho^2) draw by draw."""
    from scipy import integrate

    data = ratepool.from_dataframe(gappy_panel(3), window_col="window")
    config = CONFIG.replace(random_seed=20261204)
    prior = ratepool.sample_prior(data, config, draws=4000, engine="pystan").prior
    rho, s, sigma = (prior[name].to_numpy().ravel() for name in ("rho", "s", "sigma"))
    assert len(rho) == len(s) == len(sigma) == 4000
    scale = config.stationary_sd_prior_sd
    rho_law = stats.beta(2, 2, loc=-1, scale=2)
    assert stats.kstest(rho, rho_law.cdf).pvalue > 1e-3
    assert stats.kstest(s, stats.halfnorm(scale=scale).cdf).pvalue > 1e-3

    def sigma_cdf(x: float) -> float:
        """P(s sqrt(1 - rho^2) <= x) = E_rho[P(s <= x / sqrt(1 - rho^2))]."""
        return integrate.quad(lambda r: rho_law.pdf(r) * stats.halfnorm.cdf(
            x / np.sqrt(1 - r**2), scale=scale), -1, 1, epsabs=1e-12)[0]

    assert stats.kstest(sigma, np.vectorize(sigma_cdf)).pvalue > 1e-3
    np.testing.assert_allclose(sigma, s * np.sqrt(1 - rho**2), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Window order, steps and gaps (no compile)


def test_layout_orders_rows_and_measures_gaps() -> None:
    frame = gappy_panel(5)
    data = ratepool.from_dataframe(frame, window_col="window")
    layout = window_layout(data)
    entity = data.entity_index[layout.order]
    window = frame["window"].to_numpy()[layout.order]
    assert np.all(np.diff(entity) >= 0)
    for i in range(data.n_entities):
        w = window[entity == i]
        assert np.all(np.diff(w) > 0)
        np.testing.assert_array_equal(layout.gap[entity == i], np.r_[0, np.diff(w)])
    np.testing.assert_array_equal(layout.steps, frame["window"] - frame["window"].min())


def test_date_windows_use_the_smallest_difference_as_the_step() -> None:
    frame = pd.DataFrame({"entity": ["a", "a", "a", "b", "b"],
                          "window": ["2026-03-01", "2026-03-15", "2026-03-08", "2026-03-22",
                                     "2026-03-01"],
                          "count": [1, 2, 3, 4, 5]})
    layout = window_layout(ratepool.from_dataframe(frame, window_col="window"))
    assert layout.step == "7 days"
    # a: 03-01, 03-08, 03-15 -> gaps 0, 1, 1; b: 03-01, 03-22 -> 0, 3.
    assert layout.gap.tolist() == [0, 1, 1, 0, 3]
    assert layout.steps.tolist() == [0, 2, 1, 3, 0]


@pytest.mark.parametrize("window, step", [
    (pd.to_datetime(["2026-01-01 06:00", "2026-01-01 12:00", "2026-01-01 00:00",
                     "2026-01-02 00:00"]), "6 hours"),
    (np.array([3, 4, 7, 8], dtype=object), "1"),
    ([pd.Timestamp("2026-01-01").date(), pd.Timestamp("2026-01-02").date(),
      pd.Timestamp("2026-01-03").date(), pd.Timestamp("2026-01-05").date()], "1 day"),
])
def test_windows_of_other_types(window, step) -> None:
    data = ratepool.from_dataframe(_frame(window), window_col="window")
    assert window_layout(data).step == step


def test_integer_windows_read_as_text_from_a_csv(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("entity,window,count\na,10,1\na,9,2\nb,1,0\nb,3,4\n")
    data = ratepool.load_counts(path, window_col="window")
    layout = window_layout(data)
    assert layout.step == "1"
    assert layout.gap.tolist() == [0, 1, 0, 2]


# --------------------------------------------------------------------------------------------
# Refused before anything compiles


def _frame(window) -> pd.DataFrame:
    return pd.DataFrame({"entity": ["a", "a", "b", "b"], "window": window,
                         "count": [1, 2, 3, 4]})


@pytest.mark.parametrize("window, message", [
    ([1.0, 2.5, 1.0, 2.0], "not whole"),
    (["x", "y", "1", "2"], "neither integers nor dates"),
    (["2026-01-01", "2026-01-03", "2026-01-01", "2026-01-04"], "not whole multiples"),
    ([True, False, True, False], "true/false"),
    ([1, "2", 1, 2], "neither integers nor dates"),
])
def test_unorderable_windows_are_refused(window, message) -> None:
    data = ratepool.from_dataframe(_frame(window), window_col="window")
    with pytest.raises(ratepool.DataError, match=message) as error:
        check_temporal(data, CONFIG)
    assert "window column" in str(error.value)
    with pytest.raises(ratepool.DataError, match="window column 'day'"):
        window_layout(data, "day")


def test_duplicate_windows_are_refused_even_when_allowed_for_the_static_model() -> None:
    data = ratepool.from_dataframe(_frame([1, 1, 1, 2]), window_col="window",
                                   allow_duplicate_windows=True)
    with pytest.raises(ratepool.DataError, match=r"more than once.*entity 'a' window 1"):
        check_temporal(data, CONFIG)


def test_missing_window_column_and_aggregates_are_refused() -> None:
    with pytest.raises(ratepool.DataError, match="window_col"):
        ratepool.fit(ratepool.from_dataframe(_frame([1, 2, 1, 2])), CONFIG)
    entities = pd.DataFrame({"entity": ["a", "b"], "n_windows": [2, 2], "total_count": [3, 7]})
    histogram = pd.DataFrame({"value": [1, 2, 3, 4], "frequency": [1, 1, 1, 1]})
    with pytest.raises(ratepool.DataError, match="needs the window"):
        ratepool.fit(ratepool.from_aggregates(entities, histogram), CONFIG)


def test_inputs_above_the_measured_limit_point_to_the_static_model() -> None:
    data = ratepool.from_dataframe(_frame([1, 2, 1, 2]), window_col="window")
    with pytest.raises(ratepool.DataError, match="static model") as error:
        ratepool.fit(data, CONFIG.replace(max_temporal_windows=3))
    assert "N = 4" in str(error.value) and "max_temporal_windows = 3" in str(error.value)


@pytest.mark.parametrize("changes, name", [
    (dict(zero_inflation=True), "zero_inflation"),
    (dict(parameterization="non_centered"), "non_centered"),
])
def test_options_the_temporal_model_lacks_are_refused(changes, name) -> None:
    data = ratepool.from_dataframe(_frame([1, 2, 1, 2]), window_col="window")
    with pytest.raises(ratepool.ConfigError, match=name):
        ratepool.fit(data, CONFIG.replace(**changes))


def test_config_keys_round_trip_and_are_validated(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[model]\ntemporal = "ar1"\nmax_temporal_windows = 500\n'
                    '[priors]\nstationary_sd_prior_sd = 0.25\n')
    config = ratepool.ModelConfig.from_toml(path)
    assert (config.temporal, config.max_temporal_windows, config.stationary_sd_prior_sd) == \
        ("ar1", 500, 0.25)
    path.write_text(config.to_toml())
    assert ratepool.ModelConfig.from_toml(path) == config
    assert ratepool.ModelConfig().temporal is None
    with pytest.raises(ratepool.ConfigError, match="temporal"):
        ratepool.ModelConfig(temporal="ar2")
    with pytest.raises(ratepool.ConfigError, match="stationary_sd_prior_sd"):
        ratepool.ModelConfig(stationary_sd_prior_sd=0.0)


def test_the_removed_sigma_prior_sd_names_its_replacement(tmp_path) -> None:
    """sigma_prior_sd (the prior on the innovation sd) was replaced by stationary_sd_prior_sd:
    any value but its old default is refused with a message naming the new key, in a file and
    in `ModelConfig.replace`; the old default (written into every saved run's config) is read
    and ignored, so results folders saved before still load."""
    path = tmp_path / "c.toml"
    path.write_text('[priors]\nsigma_prior_sd = 0.25\n')
    with pytest.raises(ratepool.ConfigError, match="stationary_sd_prior_sd"):
        ratepool.ModelConfig.from_toml(path)
    with pytest.raises(ratepool.ConfigError, match="stationary_sd_prior_sd"):
        ratepool.ModelConfig.from_dict({"sigma_prior_sd": 1.0})
    with pytest.raises(ratepool.ConfigError, match="stationary_sd_prior_sd"):
        ratepool.ModelConfig().replace(sigma_prior_sd=0.25)
    old = ratepool.ModelConfig.from_dict({"priors": {"sigma_prior_sd": 0.5}, "temporal": "ar1"})
    assert old == ratepool.ModelConfig(temporal="ar1")
    assert "sigma_prior_sd" not in ratepool.ModelConfig().to_toml()


# --------------------------------------------------------------------------------------------
# Sampling (slow): recovery, and the sigma -> 0 limit


#: Fixed seed, small panel, 4 chains x (1000 + 1000): rho and sigma mix slowest (bulk ESS
#: of a few hundred per 4000 draws), and shorter chains left their R-hat near 1.01.
RECOVERY = ratepool.ModelConfig(temporal="ar1", n_chains=4, n_tune=1000, n_samples=1000,
                                random_seed=7)
RECOVERY_TRUTH = dict(n_entities=20, windows=(20, 30), mu=5.0, alpha=2.0, phi=3.0, rho=0.7,
                      sigma=0.35, missing=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_recovery_on_simulated_ar_data(engine: str) -> None:
    """rho, sigma, phi, mu, alpha inside their central 90% intervals; the latent path's 90%
    intervals cover about 90% of the true rates (at least 80%: with ~600 correlated windows
    the coverage's Monte Carlo spread is a few percent); R-hat < 1.01 over every parameter;
    no divergences."""
    import arviz as az

    simulated = simulate_ar_counts(seed=12, **RECOVERY_TRUTH)
    frame = simulated.frame.sample(frac=1, random_state=3)  # the model must order the rows
    data = ratepool.from_dataframe(frame, window_col="window")
    result = ratepool.fit(data, RECOVERY, engine=engine)
    posterior = result.idata.posterior
    for name in ("rho", "sigma", "phi", "mu", "alpha"):
        low, high = np.quantile(posterior[name].to_numpy().ravel(), [0.05, 0.95])
        assert low < RECOVERY_TRUTH[name] < high, (name, low, high)
    path = posterior["lambda"].to_numpy().reshape(-1, data.n_windows_total)
    low, high = np.quantile(path, [0.05, 0.95], axis=0)
    true_path = simulated.rate_path[frame.index.to_numpy()]
    assert np.mean((low < true_path) & (true_path < high)) > 0.80
    assert float(az.rhat(result.idata, var_names=["mu", "alpha", "phi", "theta", "rho",
                                                  "sigma", "lambda"]).to_array().max()) < 1.01
    diagnostics = result.diagnostics()
    assert diagnostics["divergences"] == 0
    assert result.idata.posterior_predictive["y_next"].shape[-1] == data.n_entities


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_static_data_gives_sigma_near_zero_and_the_static_thetas(engine: str) -> None:
    """On data from the static model (sigma = 0), sigma's posterior concentrates near 0 and
    each theta matches the static model's.

    Without autocorrelation in the data, a latent log-normal deviation and NB2 overdispersion
    add the same extra variance (theta^2 (exp(s^2) - 1) against theta^2 / phi), so sigma can
    only go to 0 if phi is free to be large: the data are near-Poisson (phi = 1000) and
    phi's prior sd is 300. With rates near 20 and ~600 windows the extra variance is then
    pinned to ~0 (relative sd of a variance estimate sqrt(2 / 600) = 0.06, i.e. s^2 resolved
    to ~0.006). theta: difference of posterior means within 4 combined MCSE plus 10% of the
    posterior sd (the spread the residual sigma adds)."""
    import arviz as az

    simulated = simulate_counts(n_entities=20, windows=(25, 35), mu=20.0, alpha=2.0,
                                phi=1000.0, seed=4)
    data = ratepool.from_dataframe(simulated.frame, window_col="window")
    config = RECOVERY.replace(overdispersion_prior_sd=300.0, mu_prior_rate=0.05, n_tune=500,
                              n_samples=500, target_accept=0.95)
    temporal = ratepool.fit(data, config, engine=engine)
    static = ratepool.fit(data, config.replace(temporal=None), engine=engine)
    sigma = temporal.idata.posterior["sigma"].to_numpy().ravel()
    assert np.quantile(sigma, 0.9) < 0.1, np.quantile(sigma, [0.5, 0.9])
    assert temporal.diagnostics()["divergences"] <= 10
    ours = az.summary(temporal.idata, var_names=["theta"])
    theirs = az.summary(static.idata, var_names=["theta"])
    tolerance = (4 * np.hypot(ours["mcse_mean"], theirs["mcse_mean"])
                 + 0.1 * theirs["sd"]).to_numpy()
    difference = np.abs(ours["mean"].to_numpy() - theirs["mean"].to_numpy())
    assert np.all(difference < tolerance), np.max(difference / tolerance)


@pytest.mark.slow
def test_cli_fit_prints_rho_sigma_and_writes_the_temporal_outputs(tmp_path, capsys) -> None:
    """The command line end to end on date windows: rho and sigma printed, graded in the
    diagnostics and summarised; the forecast table, the path figure and the report section
    written; prior draws carry rho and sigma too."""
    import json

    from ratepool.cli.main import main
    from ratepool.outputs.results import load_inference_data

    simulated = simulate_ar_counts(n_entities=4, windows=12, mu=5.0, alpha=2.0, phi=3.0,
                                   rho=0.6, sigma=0.3, seed=2, missing=0.2)
    frame = simulated.frame.assign(window=(pd.Timestamp("2026-01-01") + pd.to_timedelta(
        simulated.frame["window"] - 1, unit="D")).dt.strftime("%Y-%m-%d"))
    data_file = tmp_path / "counts.csv"
    frame.to_csv(data_file, index=False)
    config = tmp_path / "c.toml"
    config.write_text("[sampling]\nn_chains = 2\nn_tune = 150\nn_samples = 150\n")
    out = tmp_path / "out"
    code = main(["fit", str(data_file), "--window-col", "window", "--temporal", "ar1",
                 "--engine", "pystan", "--config", str(config), "--prior-draws", "30",
                 "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "rho" in printed and "sigma" in printed
    forecast = pd.read_csv(out / "entity_forecast.csv", index_col="entity")
    assert list(forecast.index) == sorted(frame["entity"].unique())
    last = frame.groupby("entity")["window"].max()
    assert (forecast["last_window"] == last.loc[forecast.index]).all()
    assert (forecast["y_next_q05"] <= forecast["y_next_q95"]).all()
    assert (out / "latent_paths.png").stat().st_size > 1000
    assert "Temporal dynamics (AR(1))" in (out / "report.html").read_text()
    population = pd.read_csv(out / "population_summary.csv", index_col="parameter")
    assert {"rho", "sigma"} <= set(population.index)
    run = json.loads((out / "run.json").read_text())
    assert run["stan_program"]["file"] == "temporal_negbinom.stan"
    idata = load_inference_data(out / "inference_data.nc")
    assert idata.posterior["lambda"].dims == ("chain", "draw", "obs")
    assert {"rho", "sigma"} <= set(idata.prior.data_vars)
    assert idata.posterior_predictive["y_next"].dims == ("chain", "draw", "entity")
    # The latent rates of each row belong to that row: rows are back in file order.
    mean_path = idata.posterior["lambda"].mean(("chain", "draw")).to_numpy()
    assert np.corrcoef(mean_path, simulated.rate_path)[0, 1] > 0.3


def test_diagnostics_grade_rho_and_sigma() -> None:
    """A temporal fit whose rho chains disagree is graded Problem in the checks over every
    parameter (naming rho), although mu, alpha and phi mixed: the design document's keys stay
    over mu, alpha and phi, and `diagnose --strict` fails on any Problem."""
    import arviz as az

    from ratepool.posterior.diagnostics import get_model_diagnostics

    rng = np.random.default_rng(0)
    mixed = {name: rng.normal(1.0, 0.1, (4, 500)) for name in ("mu", "alpha", "phi", "sigma")}
    stuck = rng.normal(0.0, 0.05, (4, 500)) + np.array([[0.0], [0.5], [0.0], [0.5]])
    good = get_model_diagnostics(az.from_dict(posterior=mixed))
    bad = get_model_diagnostics(az.from_dict(posterior={**mixed, "rho": stuck}))
    assert good["grades"]["r_hat_all"] == "Good"
    assert bad["grades"]["r_hat_all"] == "Problem"
    assert bad["all_parameters"]["r_hat_where"] == "rho"
    assert bad["grades"]["r_hat"] == "Good"
