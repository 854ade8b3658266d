"""Scoring and predicting with a temporal (AR(1)) fit: the predictive law at the new window.

Per draw, the count g steps after an entity's last fitted window is NB2(E theta exp(eta), phi)
with theta the entity's median rate and eta the AR(1) state there
(stan/temporal_negbinom.stan). The law is checked against a step-by-step simulation of the
AR(1) and against scipy quadrature; on a real fit, `score`,
`predict` and ``ratepool score`` against the average over the posterior draws of that law
(computed here from the draws with scipy alone, so these tests also show the static law that
scoring used before is wrong for temporal fits).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import ratepool
from ratepool.model.simulate import simulate_ar_counts

# The brief's example: theta 5, phi 3, rho 0.8, sigma 0.3, the state 0.8 at the last window.
THETA, PHI, RHO, SIGMA, ETA_LAST = 5.0, 3.0, 0.8, 0.3, 0.8
S2 = SIGMA**2 / (1 - RHO**2)


def one_draw_rates(mean_corrected: bool = False):
    """The temporal rates of one posterior draw at the example's values: entity "a" last fitted
    at window 10 (integer windows); ``mean_corrected``: read as a fit of the earlier program
    (theta the long-run mean rate, the log mean carrying -s^2 / 2)."""
    from ratepool.posterior.temporal_score import TemporalRates

    labels = np.array(["a"], dtype=object)
    return TemporalRates(labels=labels, theta=np.array([[THETA]]), theta_new=np.array([THETA]),
                         phi=np.array([PHI]), rho=np.array([RHO]), sigma=np.array([SIGMA]),
                         mean_corrected=mean_corrected,
                         eta_last=np.array([[ETA_LAST]]), last_step=np.array([10]),
                         window_origin="0", window_step="1")


def quad_tails(y: int, centre: float, sd: float, phi: float) -> tuple[float, float]:
    """(P(Y >= y), P(Y <= y)) of NB2(exp(centre + sd x), phi) mixed over x ~ N(0, 1), by
    scipy.integrate.quad split at the integrand's peak."""
    def integrand(x: float, upper: bool) -> float:
        mean = math.exp(centre + sd * x)
        law = stats.nbinom(phi, phi / (phi + mean))
        return stats.norm.pdf(x) * (law.sf(y - 1) if upper else law.cdf(y))

    out = []
    for upper in (True, False):
        grid = np.linspace(-12, 12, 481)
        peak = grid[np.argmax([integrand(x, upper) for x in grid])]
        out.append(sum(integrate.quad(integrand, a, b, args=(upper,), epsabs=0,
                                      epsrel=1e-11, limit=200)[0]
                       for a, b in ((-40, peak), (peak, 40))))
    return out[0], out[1]


@pytest.mark.parametrize("gap, mean_corrected", [(1, False), (3, False), (50, False),
                                                 (3, True)])
def test_one_draw_matches_simulation_and_quadrature(gap: int, mean_corrected: bool) -> None:
    """P(Y >= y) and P(Y <= y) at a window g steps after the last: within 4 binomial standard
    errors of 10^6 counts simulated step by step through the AR(1) (eta <- rho eta + sigma z,
    g times), and within 1e-9 relative of scipy quadrature over the state's normal law. theta
    is the median rate; with ``mean_corrected`` (fits of the earlier program) the long-run
    mean rate, the log mean shifted by -s^2 / 2."""
    from ratepool.posterior.score import score_rows

    rng = np.random.default_rng(20261203 + gap)
    n = 1_000_000
    eta = np.full(n, ETA_LAST)
    for _ in range(gap):
        eta = RHO * eta + SIGMA * rng.standard_normal(n)
    shift = S2 / 2 if mean_corrected else 0.0
    mean = THETA * np.exp(eta - shift)
    counts = rng.poisson(rng.gamma(PHI, mean / PHI))
    ys = np.array([0, 3, 10, 25, 40])
    scored = score_rows(one_draw_rates(mean_corrected),
                        pd.Series(["a"] * len(ys), dtype=object), ys,
                        window=10 + gap + np.zeros(len(ys), dtype=np.int64)).table
    assert np.allclose(scored["pred_mean"], counts.mean(), rtol=0,
                       atol=4 * counts.std() / math.sqrt(n))
    centre = math.log(THETA) - shift + RHO**gap * ETA_LAST
    sd = math.sqrt(S2 * (1 - RHO ** (2 * gap)))
    for y, p_upper, p_lower in zip(ys, scored["p_upper"], scored["p_lower"]):
        for p, simulated in ((p_upper, (counts >= y).mean()), (p_lower, (counts <= y).mean())):
            assert abs(simulated - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12, (y, p)
        exact_upper, exact_lower = quad_tails(int(y), centre, sd, PHI)
        assert p_upper == pytest.approx(exact_upper, rel=1e-9)
        assert p_lower == pytest.approx(exact_lower, rel=1e-9)


def test_pit_of_counts_drawn_from_the_model_is_uniform() -> None:
    """Counts simulated through the AR(1) three steps after the last window: their randomised
    PIT is Uniform(0, 1) (Kolmogorov-Smirnov at level 0.001), which needs cdf, pmf and their
    use in the table to agree with the law."""
    from ratepool.posterior.score import score_rows

    rng = np.random.default_rng(7)
    n = 4000
    eta = ETA_LAST
    for _ in range(3):
        eta = RHO * eta + SIGMA * rng.standard_normal(n)
    counts = rng.poisson(rng.gamma(PHI, THETA * np.exp(eta) / PHI))
    table = score_rows(one_draw_rates(), pd.Series(["a"] * n, dtype=object), counts,
                       window=np.full(n, 13), seed=3).table
    assert stats.kstest(table["pit"], "uniform").pvalue > 1e-3


def test_far_tails_keep_their_relative_precision() -> None:
    """Counts far above the predictive (P down to ~1e-35) and a zero far below a large rate:
    the adaptive quadrature against scipy quadrature to 1e-9 relative."""
    from ratepool.posterior.temporal_law import temporal_tails

    cases = [(60, 1.5, 0.4, 3.0), (400, 1.5, 0.4, 3.0), (2000, 1.2, 0.3, 3.0),
             (150, -0.5, 1.0, 2.0), (0, 4.0, 0.3, 10.0)]
    for y, centre, sd, phi in cases:
        cdf, sf, pmf = temporal_tails(np.array([y]), np.array([[centre]]), np.array([[sd]]),
                                      np.array([[phi]]))
        exact_upper, exact_lower = quad_tails(y, centre, sd, phi)
        assert sf[0, 0] + pmf[0, 0] == pytest.approx(exact_upper, rel=1e-9), y
        assert cdf[0, 0] == pytest.approx(exact_lower, rel=1e-9), y


def test_the_static_law_flags_fifteen_times_too_often() -> None:
    """The worked example: P(Y >= 25) is 4.4e-4 under NB2(5, 3), but 6.9e-3 at a typical
    window (50 steps on: nearly stationary) and 3.0e-2 one step after eta = 0.8. The example
    has theta 5 as the long-run mean rate (the earlier program's convention, read through
    ``mean_corrected``); with theta the median rate the temporal law's tails are heavier
    still."""
    from ratepool.posterior.score import score_rows

    table = score_rows(one_draw_rates(mean_corrected=True), pd.Series(["a", "a"], dtype=object),
                       np.array([25, 25]), window=np.array([11, 60])).table
    static = stats.nbinom.sf(24, PHI, PHI / (PHI + THETA))
    assert static == pytest.approx(4.4e-4, rel=0.05)
    assert table["p_upper"].to_numpy() == pytest.approx([3.0e-2, 6.9e-3], rel=0.02)


def test_windows_in_or_before_the_fitted_span_are_refused() -> None:
    from ratepool.posterior.predict import predict_totals
    from ratepool.posterior.score import score_rows
    from ratepool.posterior.temporal_score import TemporalWindowError

    rates = one_draw_rates()
    for window in (10, 4):
        with pytest.raises(TemporalWindowError, match=rf"entity 'a' window {window} \(its "
                                                      r"last fitted window is 10\).*later"):
            score_rows(rates, pd.Series(["a"], dtype=object), np.array([3]),
                       window=np.array([window]))
    with pytest.raises(TemporalWindowError, match="give the window column"):
        score_rows(rates, pd.Series(["a"], dtype=object), np.array([3]))
    with pytest.raises(TemporalWindowError, match="holds dates but the fit's windows were "
                                                  "integers"):
        score_rows(rates, pd.Series(["a"], dtype=object), np.array([3]),
                   window=np.array(["2026-01-05"]))
    dated = dataclasses.replace(rates, window_origin="2026-01-01 00:00:00+00:00",
                                window_step="1 day")
    with pytest.raises(TemporalWindowError, match=r"not a whole number of the fit's step "
                                                  r"\(1 day\).*e\.g\. '2026-01-12T06:00'; put"):
        score_rows(dated, pd.Series(["a", "a"], dtype=object), np.array([3, 3]),
                   window=np.array(["2026-01-12", "2026-01-12T06:00"]))
    with pytest.raises(TemporalWindowError, match="total of 3"):
        predict_totals(rates, ["a"], windows=3)


# --------------------------------------------------------------------------------------------
# A real fit


CONFIG = ratepool.ModelConfig(temporal="ar1", mu_prior_rate=0.2, alpha_prior_sd=1.5,
                              overdispersion_prior_sd=3.0, stationary_sd_prior_sd=0.7, n_chains=2,
                              n_tune=150, n_samples=60, random_seed=11)


def _simulated() -> pd.DataFrame:
    return simulate_ar_counts(n_entities=3, windows=10, mu=5.0, alpha=2.0, phi=3.0, rho=0.7,
                              sigma=0.4, seed=7, missing=0.2).frame


def expected_tails(idata, frame: pd.DataFrame, new: pd.DataFrame, steps: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """P(Y >= y), P(Y <= y) of each new row: the average over draws of the model's law g steps
    after the entity's last fitted window (the state from the draw's latent rate there), or at
    the stationary state with theta_new for an unseen entity; by scipy quadrature."""
    post = idata.posterior
    flat = {name: post[name].stack(s=("chain", "draw")).transpose("s", ...).to_numpy()
            for name in ("theta", "theta_new", "phi", "rho", "sigma", "lambda")}
    s2 = flat["sigma"] ** 2 / (1 - flat["rho"] ** 2)
    labels = list(post["entity"].values)
    uppers, lowers = [], []
    for (_, row), step in zip(new.iterrows(), steps):
        if row["entity"] in labels:
            j = labels.index(row["entity"])
            rows = np.flatnonzero(frame["entity"].to_numpy() == row["entity"])
            last = rows[np.argmax(frame["window"].to_numpy()[rows])]
            eta = np.log(flat["lambda"][:, last] / flat["theta"][:, j])
            gap = step - frame["window"].to_numpy()[last]
            centre = np.log(flat["theta"][:, j]) + flat["rho"] ** gap * eta
            sd = np.sqrt(s2 * (1 - flat["rho"] ** (2 * gap)))
        else:
            centre, sd = np.log(flat["theta_new"]), np.sqrt(s2)

        def integrand(x: float, upper: bool) -> float:
            mean = np.exp(centre + sd * x)
            law = stats.nbinom(flat["phi"], flat["phi"] / (flat["phi"] + mean))
            return float(np.mean(stats.norm.pdf(x) * (law.sf(row["count"] - 1) if upper
                                                     else law.cdf(row["count"]))))

        for out, upper in ((uppers, True), (lowers, False)):
            out.append(sum(integrate.quad(integrand, a, b, args=(upper,), epsabs=0,
                                          epsrel=1e-10, limit=200)[0]
                           for a, b in ((-30, 0), (0, 30))))
    return np.array(uppers), np.array(lowers)


@pytest.fixture(scope="module")
def temporal_fit():
    frame = _simulated()
    data = ratepool.from_dataframe(frame, window_col="window")
    return frame, ratepool.fit(data, CONFIG, engine="pystan")


def _new_rows(frame: pd.DataFrame) -> pd.DataFrame:
    last = frame.groupby("entity")["window"].max()
    rows = [(entity, int(last[entity]) + gap, count) for entity in last.index
            for gap, count in ((1, 2), (4, 14))]
    return pd.DataFrame(rows + [("new-entity", 3, 9)], columns=["entity", "window", "count"])


@pytest.mark.slow
def test_score_and_predict_a_real_fit_from_the_law_at_the_window(temporal_fit) -> None:
    """score(): P(Y >= y) and P(Y <= y) equal the draws' average of the model's law at each
    row's window to 1e-6 relative; predict(): the next window's quantiles are the least y with
    F(y) >= p under that law. (Before temporal scoring, the static NB2(theta, phi) law was used:
    this fails there.)"""
    frame, fit = temporal_fit
    new = _new_rows(frame)
    table = fit.score(new, window_col="window").table
    upper, lower = expected_tails(fit.idata, frame, new, new["window"].to_numpy())
    np.testing.assert_allclose(table["p_upper"], upper, rtol=1e-6)
    np.testing.assert_allclose(table["p_lower"], lower, rtol=1e-6)
    assert table["unseen"].tolist() == [False] * 6 + [True]

    entities = sorted(frame["entity"].unique())
    predicted = fit.predict(entities, interval=0.8)
    nxt = frame.groupby("entity")["window"].max().loc[entities].to_numpy() + 1
    for column, prob in (("lower", 0.1), ("median", 0.5), ("upper", 0.9)):
        q = predicted[column].to_numpy()
        at_q = expected_tails(fit.idata, frame, pd.DataFrame(
            {"entity": entities, "count": q}), nxt)[1]
        below_q = expected_tails(fit.idata, frame, pd.DataFrame(
            {"entity": entities, "count": q - 1}), nxt)[1]
        assert np.all(at_q >= prob - 1e-9) and np.all((below_q < prob) | (q == 0)), column


@pytest.mark.slow
def test_cli_scores_a_temporal_results_folder_with_date_windows(tmp_path, capsys
                                                                  ) -> None:
    """``ratepool fit --temporal ar1`` on daily windows, then ``ratepool score`` on later days:
    the written p-values are the model's law at each day, and a day inside the fitted span is
    refused naming the entity and the day."""
    from ratepool.cli.main import main
    from ratepool.outputs.results import load_inference_data

    frame = _simulated()
    start = pd.Timestamp("2026-01-01")
    dated = frame.assign(window=(start + pd.to_timedelta(frame["window"] - 1, unit="D"))
                         .dt.strftime("%Y-%m-%d"))
    dated.to_csv(tmp_path / "counts.csv", index=False)
    (tmp_path / "c.toml").write_text("[sampling]\nn_chains = 2\nn_tune = 150\nn_samples = 60\n"
                                     "random_seed = 5\n")
    out = tmp_path / "fit"
    assert main(["fit", str(tmp_path / "counts.csv"), "--window-col", "window", "--temporal",
                 "ar1", "--engine", "pystan", "--config", str(tmp_path / "c.toml"), "--out",
                 str(out), "--quiet"]) == 0
    new = _new_rows(frame)
    steps = new["window"].to_numpy()
    new["window"] = (start + pd.to_timedelta(steps - 1, unit="D")).strftime("%Y-%m-%d")
    new.to_csv(tmp_path / "new.csv", index=False)
    assert main(["score", str(out), str(tmp_path / "new.csv"), "--output",
                 str(tmp_path / "scores.csv"), "--quiet"]) == 0
    scores = pd.read_csv(tmp_path / "scores.csv")
    upper, lower = expected_tails(load_inference_data(out / "inference_data.nc"), frame, new,
                                  steps)
    np.testing.assert_allclose(scores["p_upper"], upper, rtol=1e-6)
    np.testing.assert_allclose(scores["p_lower"], lower, rtol=1e-6)

    inside = dated.iloc[[0]]
    inside.to_csv(tmp_path / "inside.csv", index=False)
    capsys.readouterr()
    assert main(["score", str(out), str(tmp_path / "inside.csv"), "--output",
                 str(tmp_path / "inside-scores.csv"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert f"entity '{inside['entity'].iloc[0]}' window" in error, error
    assert inside["window"].iloc[0] in error and "Score only later windows" in error, error
