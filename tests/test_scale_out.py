"""The scale-out path: every entity's rate given hyperparameter draws (issue 18, item 3).

References: ``scipy.integrate.quad`` of the conditional density (per draw), the NUTS fit's own
theta draws (with subsample >= J the hyperparameter draws are the fit's, so the exact
conditional means must agree with the fit's theta means within their Monte Carlo error), and
the pandas path for the Dask cluster and the Spark session (same subsample, same fit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

import ratepool
from ratepool.model.simulate import simulate_counts
from ratepool.posterior.entity_conditional import (
    HyperDraws,
    _mode,
    conditional_moments,
    entity_summaries,
)
from ratepool.workflow.scale_out import fit_scaled


def _quad_moments(n, total, mu, alpha, phi):
    """E[theta], E[theta^2] of theta^(a+S-1) e^(-alpha theta) (1 + theta/phi)^-(S + n phi) by
    adaptive quadrature in u = log theta, split around the mode; the far left tail, where the
    log density is linear in u, in closed form."""
    a_s, events = mu * alpha + total, total + n * phi
    mode = float(_mode(np.array(a_s), np.array(alpha), np.array(phi), np.array(events)))
    centre = np.log(mode)
    sd = 1.0 / np.sqrt(alpha * mode + events * phi * mode / (phi + mode) ** 2)

    def log_density(u):
        return a_s * u - alpha * np.exp(u) - events * np.log1p(np.exp(u) / phi)

    peak = log_density(centre)
    cuts = [centre + j * sd for j in (-40, -20, -8, -3, 0, 3, 8, 20, 40)]
    moments = []
    for k in range(3):
        def f(u):
            return np.exp(k * (u - centre) + log_density(u) - peak)
        value = sum(integrate.quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=200)[0]
                    for lo, hi in zip(cuts[:-1], cuts[1:]))
        value += f(cuts[0]) / (a_s + k)
        moments.append(value)
    return moments[1] / moments[0] * mode, moments[2] / moments[0] * mode ** 2


@pytest.mark.parametrize("n, total, mu, alpha, phi", [
    (10, 0, 0.5, 0.1, 2.0),      # no events, a = 0.05: density singular at 0
    (50, 0, 0.05, 0.5, 1.0),     # many empty windows, a = 0.025
    (3, 1, 1e-3, 0.5, 0.2),      # one event, heavy overdispersion
    (10, 3, 0.5, 0.1, 2.0),
    (100, 39, 0.3, 0.2, 0.3),    # just below the switch to Gauss–Hermite
    (5, 45, 2.0, 1.0, 50.0),     # just above it, near-Poisson windows
    (100, 500, 4.0, 1.5, 3.0),
    (1, 200, 3.0, 0.2, 0.1),     # one huge window, phi 0.1
    (300, 900, 4.0, 1.5, 0.5),
])
def test_conditional_moments_match_quadrature(n, total, mu, alpha, phi):
    first, second = conditional_moments(np.array([n]), np.array([total]), np.array([mu]),
                                        np.array([alpha]), np.array([phi]))
    ref_first, ref_second = _quad_moments(n, total, mu, alpha, phi)
    # 1e-8: the rules agree with the adaptive reference to < 5e-10 over these regimes.
    assert first[0] == pytest.approx(ref_first, rel=1e-8)
    assert second[0] == pytest.approx(ref_second, rel=1e-8)


def test_entities_with_the_same_statistics_share_one_row_in_order():
    draws = HyperDraws(np.array([2.0, 2.5]), np.array([0.5, 0.4]), np.array([3.0, 2.0]))
    n = np.array([5, 3, 5, 7])
    total = np.array([10, 0, 10, 1])
    table = entity_summaries(n, total, draws)
    for row in range(4):
        m1, m2 = conditional_moments(n[row], total[row], draws.mu, draws.alpha, draws.phi)
        assert table["mean"][row] == pytest.approx(m1.mean(), rel=1e-12)
        assert table["sd"][row] == pytest.approx(np.sqrt(m2.mean() - m1.mean() ** 2), rel=1e-9)
    assert table.iloc[0].equals(table.iloc[2])
    assert (table["lower"] < table["mean"]).all() and (table["mean"] < table["upper"]).all()


def _zero_heavy_rows(n_entities: int, seed: int) -> pd.DataFrame:
    """mu alpha = 0.1 and about 75% zero windows: the real-panel regime."""
    return simulate_counts(n_entities=n_entities, windows=(3, 15), mu=0.5, alpha=0.2,
                           phi=2.0, seed=seed).frame[["entity", "count"]]


@pytest.mark.slow
def test_with_every_entity_the_means_agree_with_the_nuts_fit():
    """subsample >= J: the hyperparameter draws are the fit's own, so each entity's exact
    conditional mean (averaged over them) estimates the same posterior mean as the fit's theta
    draws: within 3 Monte Carlo standard errors of the fit; the same for the posterior sds
    (their Monte Carlo errors from ArviZ).

    The issue's criterion, >= 99% of entities within 3 MCSE, is one for many entities (at
    J = 1e5 about 0.3% fall outside under exact agreement). With 150 entities it allows one
    outside while 0.4 are expected, and a rounding-level change of the program's draws failed it
    with 3 sds at 3.2-3.4 MCSE (2026-12-04). So here: at most 4 of 150 outside 3 MCSE
    (P(>= 5) < 1e-4 for normal errors, < 2e-3 with twice their tail) and none outside 5, which
    a real disagreement of one entity's law would exceed."""
    import arviz as az

    rows = _zero_heavy_rows(150, seed=8)
    assert (rows["count"] == 0).mean() > 0.6
    config = ratepool.ModelConfig(n_samples=1000, n_tune=500, n_chains=4)
    result = fit_scaled(rows, config, hyperparameters="subsample", subsample=10_000,
                        draws=4000)
    assert result.entities["in_subsample"].all() and result.n_subsample == 150
    posterior = result.hyper.idata.posterior
    theta = posterior["theta"]
    labels = list(posterior["entity"].values)
    assert labels == list(result.entities["entity"])
    mean = theta.mean(("chain", "draw")).values
    mcse = az.mcse(posterior, var_names=["theta"])["theta"].values
    z = np.abs(result.entities["mean"].to_numpy() - mean) / mcse
    assert (z > 3.0).sum() <= 4 and z.max() <= 5.0, np.sort(z)[-5:]
    sd = theta.std(("chain", "draw")).values
    mcse_sd = az.mcse(posterior, var_names=["theta"], method="sd")["theta"].values
    z_sd = np.abs(result.entities["sd"].to_numpy() - sd) / mcse_sd
    assert (z_sd > 3.0).sum() <= 4 and z_sd.max() <= 5.0, np.sort(z_sd)[-5:]


@pytest.mark.parametrize("n, total, mu, alpha, phi", [
    (7, 0, 0.5, 0.2, 2.0), (4, 0, 0.5, 0.2, 2.0), (7, 2, 0.5, 0.2, 2.0), (40, 60, 2.0, 1.0, 1.0)])
def test_interval_is_within_five_percent_of_its_width_of_the_exact_quantiles(
        n, total, mu, alpha, phi):
    """One draw: the reported interval (a Gamma law with the conditional's exact mean and
    variance) against the exact conditional's 5% / 95% quantiles, found by root-finding on
    its CDF by quadrature (in v = theta^(a+S), where the density is bounded). Measured: at
    most 3.8% of the width (all-zero entities, whose upper tail is heavier than a Gamma's)."""
    from scipy import optimize

    draws = HyperDraws(np.array([mu]), np.array([alpha]), np.array([phi]))
    table = entity_summaries(np.array([n]), np.array([total]), draws, interval=0.9)
    a_s, events = mu * alpha + total, total + n * phi

    mean = table["mean"][0]
    scale = 50.0 * mean
    if a_s < 1:  # theta = v^(1/(a+S)): the density in v is bounded
        power = a_s

        def g(v):
            t = v ** (1.0 / a_s)
            return np.exp(-alpha * t - events * np.log1p(t / phi))
    else:
        power = 1.0
        mode = float(_mode(np.array(a_s), np.array(alpha), np.array(phi), np.array(events)))

        def log_f(t):
            return (a_s - 1) * np.log(t) - alpha * t - events * np.log1p(t / phi)

        def g(t):
            return np.exp(log_f(t) - log_f(mode)) if t > 0 else 0.0
    norm = integrate.quad(g, 0, scale ** power, limit=500, epsabs=0, epsrel=1e-11)[0]

    def cdf(q):
        return integrate.quad(g, 0, q ** power, limit=500, epsabs=0, epsrel=1e-11)[0] / norm

    exact = [optimize.brentq(lambda q, p=p: cdf(q) - p, 1e-300, scale) for p in (0.05, 0.95)]
    width = exact[1] - exact[0]
    assert abs(table["lower"][0] - exact[0]) <= 0.05 * width
    assert abs(table["upper"][0] - exact[1]) <= 0.05 * width


def test_options_and_bad_sizes_are_refused_before_any_work():
    rows = _zero_heavy_rows(10, seed=1)
    for config in (ratepool.ModelConfig(zero_inflation=True),
                   ratepool.ModelConfig(exposure_col="exposure"),
                   ratepool.ModelConfig(temporal="ar1")):
        with pytest.raises(ratepool.ConfigError, match="base model only"):
            fit_scaled(rows, config)
    with pytest.raises(ratepool.ConfigError, match="subsample"):
        fit_scaled(rows, subsample=1)
    with pytest.raises(ratepool.ConfigError, match="hyperparameters must be one of"):
        fit_scaled(rows, hyperparameters="everything")
    with pytest.raises(ratepool.DataError, match="pandas, Dask or Spark"):
        fit_scaled(rows.to_dict())


def _split_rows(n_entities: int = 60) -> pd.DataFrame:
    return simulate_counts(n_entities=n_entities, windows=(2, 8), mu=3.0, alpha=0.8, phi=2.0,
                           seed=21).frame[["entity", "count"]]


_CLUSTER_CONFIG = dict(n_samples=300, n_tune=300, n_chains=2)


@pytest.fixture(scope="module")
def pandas_scaled():
    """The in-memory result the cluster runs must reproduce: half the entities fitted."""
    return fit_scaled(_split_rows(), ratepool.ModelConfig(**_CLUSTER_CONFIG),
                      hyperparameters="subsample", subsample=30, draws=200)


@pytest.fixture(scope="module")
def pandas_scaled_all():
    """The in-memory result with the hyperparameters from every entity."""
    scaled = fit_scaled(_split_rows(), draws=200)
    assert scaled.method == "all" and scaled.marginal.reliable
    return scaled


def _same_result(scaled, reference) -> None:
    assert scaled.n_subsample == reference.n_subsample
    assert scaled.entities["in_subsample"].sum() == reference.n_subsample
    pd.testing.assert_series_equal(scaled.entities["in_subsample"],
                                   reference.entities["in_subsample"])
    np.testing.assert_array_equal(scaled.draws.mu, reference.draws.mu)
    for column in ("entity", "n_windows", "total"):
        assert scaled.entities[column].tolist() == reference.entities[column].tolist()
    for column in ("mean", "sd", "lower", "upper"):
        np.testing.assert_allclose(scaled.entities[column], reference.entities[column],
                                   rtol=1e-12)


@pytest.mark.slow
def test_the_dask_cluster_gives_the_in_memory_result(client, pandas_scaled,
                                                    pandas_scaled_all):
    """Rows on a real local Dask cluster (4 partitions): the same subsample is aggregated
    there, the same fit results, and the per-entity map run on the workers gives the
    in-memory numbers; with the hyperparameters from every entity, the statistics aggregated
    there give the same draws and numbers."""
    import dask.dataframe as dd

    rows = dd.from_pandas(_split_rows(), npartitions=4)
    _same_result(fit_scaled(rows, ratepool.ModelConfig(**_CLUSTER_CONFIG),
                            hyperparameters="subsample", subsample=30, draws=200), pandas_scaled)
    _same_result(fit_scaled(rows, draws=200), pandas_scaled_all)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
@pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")
def test_the_spark_session_gives_the_in_memory_result(spark, pandas_scaled, pandas_scaled_all):
    """The same on a local Spark session: filter by a broadcast join, map by mapInPandas."""
    rows = spark.createDataFrame(_split_rows())
    _same_result(fit_scaled(rows, ratepool.ModelConfig(**_CLUSTER_CONFIG),
                            hyperparameters="subsample", subsample=30, draws=200), pandas_scaled)
    _same_result(fit_scaled(rows, draws=200), pandas_scaled_all)
