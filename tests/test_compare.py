"""`ratepool.compare` and ``ratepool compare``: the entity marginal log likelihood against an
independent numerical integral (scipy.integrate.quad of scipy.stats densities), the LOO numbers
against ArviZ on the same InferenceData, the recommendation on data simulated with and without
zero-inflation, the predictive-check statistics against a pandas computation, candidates
refused before compiling and skipped with a reason, and the CLI's folder.

The fits are tiny (20 entities, 8-12 windows, 2 chains x (300 + 300) draws, PyStan) and shared
through module-scoped fixtures: four fits for the library tests, two for the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.cli.main import main
from ratepool.engines.pystan import pystan_available
from ratepool.model.simulate import simulate_counts
from ratepool.posterior.comparison_checks import window_statistics
from ratepool.posterior.entity_marginal import (
    entity_marginal_log_lik,
    marginal_log_likelihood,
    with_entity_marginal,
)
from ratepool.posterior.model_comparison import loo_table, recommend
from ratepool.workflow import compare as compare_module
from ratepool.workflow.compare import _rankable, candidate_configs

pytestmark = pytest.mark.skipif(not pystan_available(), reason="pystan is not installed")

TINY = ratepool.ModelConfig(n_chains=2, n_tune=300, n_samples=300, engine="pystan",
                            random_seed=7)
PAIR = ["base", "zero-inflation"]


def simulated(seed: int, zero_inflation: float | None) -> pd.DataFrame:
    """20 entities of 8-12 windows, mean rate 5, phi 5. With zero-inflation 0.4 about 42% of
    windows are zero against about 3% from the NB part alone. Not cherry-picked: at six other
    seeds (20-25) zero-inflation won by 14 to 32 elpd (3.7 to 5.9 se) on such data, and
    without zero-inflation the base model was recommended at all six."""
    return simulate_counts(n_entities=20, windows=(8, 12), mu=5.0, alpha=2.0, phi=5.0,
                           seed=seed, zero_inflation=zero_inflation).frame


@pytest.fixture(scope="module")
def with_zeros() -> ratepool.ComparisonResult:
    return ratepool.compare(simulated(11, 0.4), PAIR, config=TINY, window_col="window")


@pytest.fixture(scope="module")
def without_zeros() -> ratepool.ComparisonResult:
    return ratepool.compare(simulated(12, None), PAIR, config=TINY, window_col="window")


@pytest.mark.slow
@pytest.mark.parametrize("unit, var_name", [("window", "y"), ("entity", "entity_marginal")])
def test_loo_numbers_are_arviz(with_zeros, unit, var_name):
    """Every number of the ranking equals az.loo / az.compare called directly (same draws, so
    equal to rounding); entity LOO on the InferenceData with the entity marginal added."""
    idatas = {label: fit.idata for label, fit in with_zeros.fits.items()}
    if unit == "entity":
        idatas = {label: with_entity_marginal(idata) for label, idata in idatas.items()}
    table = with_zeros.tables[unit]
    reference = az.compare(idatas, var_name=var_name, ic="loo", method="stacking")
    for label in idatas:
        loo = az.loo(idatas[label], var_name=var_name, pointwise=True)
        assert table.loc[label, "elpd_loo"] == pytest.approx(loo.elpd_loo, rel=1e-12)
        assert table.loc[label, "se"] == pytest.approx(loo.se, rel=1e-12)
        assert table.loc[label, "max_pareto_k"] == pytest.approx(float(loo.pareto_k.max()))
        assert table.loc[label, "n_k_high"] == int((loo.pareto_k > 0.7).sum())
        for column in ("elpd_diff", "dse", "weight", "p_loo"):
            assert table.loc[label, column] == pytest.approx(reference.loc[label, column],
                                                             abs=1e-9)
    assert list(table.index) == list(reference.index)


@pytest.mark.slow
def test_zero_inflation_recommended_on_zero_inflated_data(with_zeros):
    assert with_zeros.table.index[0] == "base + zero-inflation"
    assert with_zeros.recommended == "base + zero-inflation"
    diff = with_zeros.table.loc["base", ["elpd_diff", "dse"]]
    assert diff["elpd_diff"] > 2 * diff["dse"]  # a clear win, not a tie
    assert "base + zero-inflation" in with_zeros.recommendation


@pytest.mark.slow
def test_base_recommended_without_zero_inflation(without_zeros):
    """No structural zeros: the two models tie (pi near 0) and the simpler one is chosen."""
    assert without_zeros.recommended == "base"
    row = without_zeros.table.loc["base + zero-inflation"]
    if without_zeros.table.index[0] == "base":
        assert row["elpd_diff"] >= 0
    else:  # zero-inflation ahead, but within 2 se: the simpler model is recommended
        assert without_zeros.table.loc["base", "elpd_diff"] < 2 * without_zeros.table.loc[
            "base", "dse"]


@pytest.mark.slow
def test_check_statistics_against_pandas(with_zeros):
    """Observed statistics of the checks table equal a pandas groupby computation on the raw
    rows; the replicated zero share of the zero-inflated model covers the observed one."""
    frame = simulated(11, 0.4)
    grouped = frame.groupby("entity")["count"]
    expected = {"zero_share": (frame["count"] == 0).mean(),
                "vmr": (grouped.var(ddof=1) / grouped.mean()).mean(),
                "max_window": grouped.max().mean()}
    checks = with_zeros.checks.set_index(["model", "statistic"])
    for name, value in expected.items():
        assert checks.loc[("base", name), "observed"] == pytest.approx(value, rel=1e-12)
    zi = checks.loc[("base + zero-inflation", "zero_share")]
    assert zi["low"] <= zi["observed"] <= zi["high"]


def test_window_statistics_per_draw():
    """Leading draw axes: each row is computed as on its own (here: against pandas)."""
    rng = np.random.default_rng(3)
    entity = np.repeat([4, 1, 9], [3, 5, 2])
    y = rng.poisson(3.0, size=(6, entity.size))
    stats = window_statistics(y, entity)
    for row in range(6):
        frame = pd.DataFrame({"e": entity, "y": y[row]}).groupby("e")["y"]
        assert stats["max_window"][row] == pytest.approx(frame.max().mean())
        assert stats["vmr"][row] == pytest.approx((frame.var() / frame.mean()).mean())


@pytest.fixture()
def no_fitting(monkeypatch):
    """Any fit or compile fails the test: refusals must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a candidate was fitted before every candidate was validated")
    monkeypatch.setattr(compare_module, "fit", refuse)


@pytest.mark.parametrize("bad, message", [
    (TINY.replace(temporal="ar1"), "window"),
    (TINY.replace(temporal="ar1", zero_inflation=True), "zero_inflation"),
    (TINY.replace(exposure_col="no_such_column"), "no_such_column"),
])
def test_bad_explicit_candidate_refused_before_fitting(no_fitting, bad, message):
    frame = simulated(11, 0.4).drop(columns=["window"]) if message == "window" else \
        simulated(11, 0.4)
    with pytest.raises(ratepool.RatepoolError, match=message) as error:
        ratepool.compare(frame, {"good": TINY, "bad": bad})
    assert "'bad'" in str(error.value)


def test_unknown_candidate_name_refused(no_fitting):
    with pytest.raises(ratepool.ConfigError, match="zero-inflated"):
        ratepool.compare(simulated(11, 0.4), ["base", "zero-inflated"], config=TINY)


def test_named_candidates_the_data_do_not_allow_are_skipped():
    configs, skipped = candidate_configs(["base", "exposure", "covariates", "temporal",
                                          "zero-inflation"], TINY, window_col=None,
                                         exposure_col=None, covariates=None)
    assert list(configs) == ["base", "base + zero-inflation"]
    assert set(skipped) == {"exposure", "covariates", "temporal"}
    assert "--exposure-col" in skipped["exposure"] and "--window-col" in skipped["temporal"]
    configs, skipped = candidate_configs(["all"], TINY, window_col="w", exposure_col="e",
                                         covariates=["x"])
    assert len(configs) == 9 and not skipped  # 2^3 static combinations + temporal
    assert configs["base + exposure + covariates + zero-inflation"].zero_inflation
    configs, skipped = candidate_configs(["all"], TINY, window_col=None, exposure_col="e",
                                         covariates=None)
    assert list(configs) == ["base", "base + exposure", "base + zero-inflation",
                             "base + exposure + zero-inflation"]
    assert set(skipped) == {"covariates", "temporal"}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> tuple[Path, int]:
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "counts.csv"
    simulated(11, 0.4).to_csv(data, index=False)
    (folder / "tiny.toml").write_text(TINY.to_toml(), encoding="utf-8")
    out = folder / "out"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier run")
    code = main(["compare", str(data), "--candidates", "base,zero-inflation",
                 "--window-col", "window", "--sampling-config", str(folder / "tiny.toml"),
                 "--out", str(out), "-q"])
    return out, code


@pytest.mark.slow
def test_cli_writes_report_and_table(cli_run):
    out, code = cli_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "checks.csv", "checks.png", "comparison.csv", "comparison.json",
        "comparison_window.csv", "report.html"]
    table = pd.read_csv(out / "comparison.csv", index_col="model")
    assert set(table.index) == {"base", "base + zero-inflation"}
    checks = pd.read_csv(out / "checks.csv")
    assert len(checks) == 2 * 3
    page = (out / "report.html").read_text()
    assert "Recommended:" in page and "base + zero-inflation" in page
    assert "ranking by window LOO" in page  # the default unit is the entity; window for reference
    assert json.loads((out / "comparison.json").read_text())["unit"] == "entity"


@pytest.mark.slow
def test_cli_failed_run_leaves_folder_untouched(cli_run, tmp_path):
    out, _ = cli_run
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace(temporal="ar1", zero_inflation=True).to_toml())
    code = main(["compare", str(out.parent / "counts.csv"), "--config", str(bad),
                 "--window-col", "window", "--out", str(out), "-q"])
    assert code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("diff, dse, expected", [(1.0, 0.8, "base"), (3.0, 1.0, "zi"),
                                                 (1.9, 1.0, "base"), (2.1, 1.0, "zi")])
def test_recommend_simpler_model_when_within_two_se(diff, dse, expected):
    """The rule written out by hand: the best by elpd (zi) unless the simpler base model is
    within 2 se of it. The more complex third model, tied with zi, is never chosen."""
    table = pd.DataFrame({"elpd_diff": [0.0, 0.5, diff], "dse": [0.0, 1.0, dse],
                          "weight": [0.7, 0.1, 0.2], "n_k_high": [0, 0, 0]},
                         index=["zi", "exp+zi", "base"])
    options = {"zi": ("zero-inflation",), "exp+zi": ("exposure", "zero-inflation"),
               "base": ()}
    chosen, text = recommend(table, options)
    assert chosen == expected
    assert text.startswith(expected + ":") and "Caution" not in text
    assert ("simplest model within 2" in text) == (expected == "base")


# --------------------------------------------------------------------------------------------
# The entity marginal log likelihood against an independent integral


def reference_marginal(y, exposure, mu, alpha, phi, pi):
    """log of the integral over theta of Gamma(mu alpha, alpha) pdf x prod_j p(y_j | e_j theta)
    (scipy.stats' gamma and nbinom; pi [y = 0] + (1 - pi) NB2 with zero-inflation), by
    scipy.integrate.quad over u = log theta, split around the integrand's peak."""
    from scipy import integrate, stats

    def log_f(u):
        u = np.atleast_1d(u)
        theta = np.exp(u)[:, None]
        mean = exposure[None, :] * theta
        p = phi / (phi + mean)
        with np.errstate(divide="ignore", invalid="ignore"):
            nb = np.where(p < 1.0, stats.nbinom.logpmf(y[None, :], phi, p),
                          np.where(y[None, :] == 0, -mean, -np.inf))  # p == 1: mean < 1e-16
        if pi is not None:
            nb = np.where(y[None, :] == 0, np.logaddexp(np.log(pi), np.log1p(-pi) + nb),
                          np.log1p(-pi) + nb)
        return stats.gamma.logpdf(theta[:, 0], mu * alpha, scale=1 / alpha) + u + nb.sum(1)

    grid = np.linspace(-700, 15, 100001)
    values = log_f(grid)
    peak = grid[int(np.argmax(values))]
    top = values.max()
    points = [-700.0, *(peak + d for d in (-3, -1, -0.3, 0, 0.3, 1, 3)), 15.0]
    # (quad may warn of roundoff at epsrel 1e-11; the results agree to ~1e-12 regardless)
    total = sum(integrate.quad(lambda u: float(np.exp(log_f(u)[0] - top)), lo, hi,
                               limit=500, epsabs=0, epsrel=1e-11)[0]
                for lo, hi in zip(points[:-1], points[1:]))
    return top + np.log(total)


def simulated_entity(rng, mu, alpha, phi, pi, n, exposure_scale):
    theta = rng.gamma(mu * alpha, 1 / alpha)
    exposure = rng.uniform(0.5, 2.0, n) * exposure_scale
    y = rng.negative_binomial(phi, phi / (phi + exposure * theta))
    if pi is not None:
        y = np.where(rng.uniform(size=n) < pi, 0, y)
    return y, exposure


# mu alpha = 0.05 is the real panels' regime (40-90% zero windows): an entity without events
# has most of its probability at rates near 0, far below the prior's mean; mu alpha = 6 with
# exposures of 5-20 gives totals of hundreds, a likelihood much narrower than the prior.
MARGINAL_CASES = [
    # mu, alpha, phi, pi, windows, exposure scale, all zero
    (0.5, 0.1, 3.0, None, 20, 10.0, True),
    (0.5, 0.1, 3.0, 0.3, 20, 10.0, True),
    (2.0, 0.025, 2.0, 0.5, 30, 3.0, False),
    (2.0, 0.025, 2.0, 0.5, 30, 3.0, True),
    (4.0, 1.5, 3.0, 0.3, 20, 10.0, False),
    (4.0, 1.5, 3.0, None, 30, 1.0, False),
    (4.0, 1.5, 3.0, None, 30, 1.0, True),
    (2.0, 5.0, 50.0, None, 25, 5.0, False),
]


@pytest.mark.parametrize("seed, case", list(enumerate(MARGINAL_CASES)))
def test_entity_marginal_against_quad(seed, case):
    """One entity at one draw against the independent integral, to 1e-8 in log (quad's
    relative tolerance 1e-11; the rule's error is about 1e-10 in these cases). The same
    entity with exposure x 1000 and the rates / 1000 (alpha x 1000) gives the same number."""
    mu, alpha, phi, pi, n, scale, zeros = case
    rng = np.random.default_rng(100 + seed)
    y, exposure = simulated_entity(rng, mu, alpha, phi, pi, n, scale)
    if zeros:
        y = np.zeros_like(y)
    expected = reference_marginal(y, exposure, mu, alpha, phi, pi)
    zero = None if pi is None else np.array([pi])
    got = marginal_log_likelihood(y, np.zeros(n, int), np.array([[mu]]), np.array([alpha]),
                                  np.array([phi]), exposure=exposure, zero_prob=zero)
    assert got[0, 0] == pytest.approx(expected, abs=1e-8)
    other_unit = marginal_log_likelihood(y, np.zeros(n, int), np.array([[mu / 1000]]),
                                         np.array([alpha * 1000]), np.array([phi]),
                                         exposure=exposure * 1000, zero_prob=zero)
    assert other_unit[0, 0] == pytest.approx(expected, abs=1e-8)


def synthetic_idata(rng, *, zero_inflation, temporal=False):
    """A fit-shaped InferenceData (2 chains x 3 draws, 4 entities, exposure, 2 covariates) in
    the user's units, without sampling."""
    n_entities, chains, draws = 4, 2, 3
    windows = np.array([5, 1, 8, 3])
    entity_index = np.repeat(np.arange(n_entities), windows)
    design = rng.normal(size=(n_entities, 2))
    exposure = rng.uniform(0.5, 20.0, entity_index.size) * 1000
    y = rng.negative_binomial(2.0, 0.3, size=entity_index.size)
    y[entity_index == 1] = 0
    posterior = {"mu": rng.uniform(1e-3, 5e-3, (chains, draws)),
                 "alpha": rng.uniform(10.0, 50.0, (chains, draws)),
                 "phi": rng.uniform(1.0, 5.0, (chains, draws)),
                 "beta": rng.normal(0, 0.3, (chains, draws, 2)),
                 "theta": rng.uniform(1e-3, 5e-3, (chains, draws, n_entities)),
                 "theta_new": rng.uniform(1e-3, 5e-3, (chains, draws))}
    if zero_inflation:
        posterior["pi"] = rng.uniform(0.1, 0.5, (chains, draws))
    if temporal:
        posterior["rho"] = rng.uniform(0, 1, (chains, draws))
    return az.from_dict(
        posterior=posterior, observed_data={"y": y},
        constant_data={"entity_index": entity_index + 1, "exposure": exposure,
                       "covariate_scaled": design},
        log_likelihood={"y": rng.normal(size=(chains, draws, y.size))},
        coords={"entity": [f"e{i}" for i in range(n_entities)], "covariate": ["x1", "x2"],
                "obs": np.arange(y.size)},
        dims={"theta": ["entity"], "beta": ["covariate"], "y": ["obs"],
              "entity_index": ["obs"], "exposure": ["obs"],
              "covariate_scaled": ["entity", "covariate"]})


@pytest.mark.parametrize("zero_inflation", [False, True])
def test_entity_marginal_of_a_fit_reads_its_draws(zero_inflation):
    """From an InferenceData: mu_i = mu exp(z_i' beta) at the scaled covariates, the user's
    exposure with the user-unit mu and alpha, pi when zero-inflated; each (draw, entity)
    equals the independent integral (an entity with one window and one without events)."""
    rng = np.random.default_rng(5)
    idata = synthetic_idata(rng, zero_inflation=zero_inflation)
    values = entity_marginal_log_lik(idata)
    assert values.shape == (2, 3, 4)
    posterior = idata.posterior
    entity_index = idata.constant_data["entity_index"].values - 1
    for chain, draw, entity in [(0, 0, 0), (1, 2, 1), (0, 1, 2), (1, 0, 3)]:
        pick = posterior.isel(chain=chain, draw=draw)
        z = idata.constant_data["covariate_scaled"].values[entity]
        mu = float(pick["mu"]) * np.exp(z @ pick["beta"].values)
        rows = entity_index == entity
        expected = reference_marginal(
            idata.observed_data["y"].values[rows], idata.constant_data["exposure"].values[rows],
            mu, float(pick["alpha"]), float(pick["phi"]),
            float(pick["pi"]) if zero_inflation else None)
        assert values[chain, draw, entity] == pytest.approx(expected, abs=1e-8)
    added = with_entity_marginal(idata)
    np.testing.assert_array_equal(added.log_likelihood["entity_marginal"].values, values)
    assert "entity_marginal" not in idata.log_likelihood  # a copy: the fit is untouched


def test_temporal_candidates_are_not_ranked_by_entity():
    """Entity mode skips a temporal candidate with how to compare it; window mode keeps it."""
    rng = np.random.default_rng(6)

    class Fake:
        def __init__(self, temporal):
            self.idata = synthetic_idata(rng, zero_inflation=False, temporal=temporal)
            self.config = TINY.replace(temporal="ar1" if temporal else None)

    fits = {"static": Fake(False), "temporal": Fake(True)}
    idatas, why_not = _rankable(fits, "entity")
    assert list(idatas) == ["static"] and "entity_marginal" in idatas["static"].log_likelihood
    assert "--loo window" in why_not["temporal"]
    idatas, why_not = _rankable(fits, "window")
    assert set(idatas) == {"static", "temporal"} and not why_not
    with pytest.raises(ratepool.RatepoolError, match="--loo window"):
        entity_marginal_log_lik(fits["temporal"].idata)


def test_each_candidate_validated_and_warned_once(monkeypatch, caplog):
    """compare validates every candidate (prepare_fit) before sampling any, and the fit reuses
    that validation: the prior-clash warning is logged once per candidate, not twice."""
    from ratepool.engines.base import Engine

    class Refusing(Engine):
        name = "refusing"

        def compile(self, program):
            return False

        def sample(self, program, data, settings):
            raise ratepool.RatepoolError("sampling reached")

        def log_density(self, *args, **kwargs):
            raise NotImplementedError

        def versions(self):
            return {}

    monkeypatch.setattr(compare_module, "get_engine", lambda name: Refusing())
    frame = simulated(11, None)
    frame["count"] = frame["count"] * 10**6  # a mean rate far in mu's Exponential(0.1) tail
    with caplog.at_level("WARNING", logger="ratepool.workflow.fit"):
        with pytest.raises(ratepool.RatepoolError, match="sampling reached"):
            ratepool.compare(frame, ["base"], config=TINY)
    clashes = [r for r in caplog.records if "implausible under mu" in r.getMessage()]
    assert len(clashes) == 1
