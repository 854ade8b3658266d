"""Scoring new windows and predicting totals (`ratepool.posterior.score`, `ratepool.posterior.predict`).

The fast tests use synthetic posterior draws and check every probability against an independent
computation: mpmath at 50 digits (explicit sums), scipy.stats.nbinom per draw, brute-force
convolution for k-window totals, and a loop form of Benjamini–Hochberg. The slow tests fit the
example data once (PyStan, 4 chains x 500 draws) and check calibration on data simulated from
that fit's posterior predictive: uniform PIT, the false discovery rate over repeated scoring,
and the power to flag injected 5x spikes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mpmath
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ratepool
from ratepool import DataError, ModelConfig, RatepoolError
from ratepool.cli.main import main
from ratepool.engines.pystan import pystan_available
from ratepool.model.simulate import nb2_draws
from ratepool.outputs.results import load_results, write_results
from ratepool.outputs.score_plots import anomalies_figure
from ratepool.posterior.anomaly import AnomalyRule, benjamini_hochberg
from ratepool.posterior.predict import predict_totals
from ratepool.posterior.mixture_law import (
    MixtureLaw,
    mixture_moments,
    mixture_quantiles,
    tail_probabilities,
)
from ratepool.posterior.predictive import PosteriorRates
from ratepool.posterior.score import score_frame
from ratepool.posterior.score_check import null_flag_rates, predictive_rows, spike_power

from .conftest import EXAMPLE_CSV, engine_params
from .test_results import record_for, synthetic_result


def make_rates(labels: list, n_draws: int = 60, seed: int = 0,
               zero_prob: bool = False) -> PosteriorRates:
    """Synthetic posterior draws: rates spread over 0.05..200, phi over 0.3..50."""
    rng = np.random.default_rng(seed)
    values = np.empty(len(labels), dtype=object)
    values[:] = labels
    theta = np.exp(rng.uniform(np.log(0.05), np.log(200), len(labels)))[None, :] \
        * rng.gamma(20, 1 / 20, (n_draws, len(labels)))
    return PosteriorRates(labels=values, theta=theta,
                          theta_new=np.exp(rng.normal(1.0, 1.0, n_draws)),
                          phi=np.exp(rng.uniform(np.log(0.3), np.log(50), n_draws)),
                          zero_prob=rng.uniform(0.05, 0.4, n_draws) if zero_prob else None)


# ------------------------------------------------------------------------------------------
# Exact tail probabilities against independent references


def _mp_nb2(y: int, mean: float, phi: float, zero: float) -> tuple:
    """P(Y <= y), P(Y > y), P(Y = y) of the zero-inflated NB2 by explicit sums, at 50 digits."""
    with mpmath.workdps(50):
        m, f = mpmath.mpf(mean), mpmath.mpf(phi)
        p, q = f / (m + f), m / (m + f)

        def pmf(k: int) -> mpmath.mpf:
            return mpmath.exp(mpmath.loggamma(k + f) - mpmath.loggamma(f)
                              - mpmath.loggamma(k + 1)) * p**f * q**k

        cdf = mpmath.fsum(pmf(k) for k in range(y + 1))
        sf = 1 - cdf
        if sf < mpmath.mpf(10) ** -40:  # far upper tail: sum it directly instead
            sf = mpmath.nsum(pmf, [y + 1, mpmath.inf])
        z = mpmath.mpf(zero)
        return (z + (1 - z) * cdf, (1 - z) * sf, (1 - z) * pmf(y) + (z if y == 0 else 0))


@pytest.mark.parametrize("zero_prob", [False, True], ids=["nb2", "zero-inflated"])
def test_tail_probabilities_match_mpmath_sums(zero_prob: bool) -> None:
    rates = make_rates(["a", "b", "c"], n_draws=8, seed=3, zero_prob=zero_prob)
    # counts far below, at and far above each entity's rate, and 0
    codes = np.array([0, 0, 1, 1, 2, 2, 3, 0])
    means = rates.rates(codes).mean(axis=0)
    y = np.array([0, int(30 * means[1]) + 40, int(means[2]), int(8 * means[3]) + 25, 0,
                  int(means[5] / 20), int(means[6]) + 3, 1])
    law = rates.law(codes)
    cdf, sf, pmf = tail_probabilities(y, law)
    zeros = rates.zero_prob if zero_prob else np.zeros(rates.n_draws)
    for col in range(len(y)):
        per_draw = [_mp_nb2(int(y[col]), law.mean[s, col], rates.phi[s], zeros[s])
                    for s in range(rates.n_draws)]
        for got, k in ((cdf, 0), (sf, 1), (pmf, 2)):
            expected = float(mpmath.fsum(d[k] for d in per_draw) / rates.n_draws)
            assert got[col] == pytest.approx(expected, rel=1e-9, abs=1e-300), (col, k)
    assert sf[1] < 1e-12  # the far upper tail is resolved, not lost in 1 - cdf


def test_tail_probabilities_match_scipy_nbinom_per_draw() -> None:
    rates = make_rates(list(range(30)), n_draws=200, seed=5)
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 31, 400)  # 30 = unseen: theta_new
    law = rates.law(codes)
    y = rng.poisson(rates.rates(codes).mean(axis=0) * rng.uniform(0.2, 3, 400))
    cdf, sf, pmf = tail_probabilities(y, law)
    n, p = rates.phi[:, None], rates.phi[:, None] / (law.mean + rates.phi[:, None])
    np.testing.assert_allclose(cdf, stats.nbinom.cdf(y, n, p).mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(pmf, stats.nbinom.pmf(y, n, p).mean(axis=0), rtol=1e-9)
    big = sf > 1e-200
    np.testing.assert_allclose(sf[big], stats.nbinom.sf(y, n, p).mean(axis=0)[big],
                               rtol=1e-8)


def test_large_phi_and_tiny_rates_stay_exact() -> None:
    law = MixtureLaw(mean=np.array([[1e-8, 3.0, 3e3]]), phi=np.array([[1e4]]))
    y = np.array([1, 12, 3_400])
    cdf, sf, pmf = tail_probabilities(y, law)
    for col in range(3):
        expected = _mp_nb2(int(y[col]), law.mean[0, col], 1e4, 0.0)
        np.testing.assert_allclose([cdf[col], sf[col], pmf[col]],
                                   [float(v) for v in expected], rtol=1e-9)


def _brute_cdf(law: MixtureLaw, top: int) -> np.ndarray:
    """(C, top + 1) mixture CDF on 0..top from scipy.stats.nbinom per draw."""
    grid = np.arange(top + 1)[:, None, None]
    n = law.phi[None]
    cdf = stats.nbinom.cdf(grid, n, n / (law.mean[None] + n))
    if law.zero_prob is not None:
        cdf = law.zero_prob[None] + (1 - law.zero_prob[None]) * cdf
    return cdf.mean(axis=1).T


@pytest.mark.parametrize("zero_prob", [False, True], ids=["nb2", "zero-inflated"])
def test_quantiles_and_moments_match_brute_force(zero_prob: bool) -> None:
    rates = make_rates(list(range(12)), n_draws=40, seed=7, zero_prob=zero_prob)
    rates = PosteriorRates(rates.labels, np.minimum(rates.theta, 60.0), rates.theta_new,
                           rates.phi, rates.zero_prob)
    law = rates.law(np.arange(13), np.linspace(0.5, 2, 13))
    probs = (0.05, 0.5, 0.95, 0.999)
    got = mixture_quantiles(law, probs, memory_bytes=1)  # one column per chunk
    top = 6000
    cdf = _brute_cdf(law, top)
    assert (cdf[:, -1] > 0.9999).all()
    expected = np.stack([np.argmax(cdf >= p, axis=1) for p in probs], axis=1)
    np.testing.assert_array_equal(got, expected)
    pmf = np.diff(np.concatenate([np.zeros((13, 1)), cdf], axis=1), axis=1)
    grid = np.arange(top + 1)
    mean, var = mixture_moments(law)
    np.testing.assert_allclose(mean, pmf @ grid, rtol=1e-6)
    np.testing.assert_allclose(var, pmf @ grid**2 - (pmf @ grid) ** 2, rtol=1e-4)


# ------------------------------------------------------------------------------------------
# Benjamini–Hochberg


def _bh_reference(p: np.ndarray, q: float) -> np.ndarray:
    """The step-up rule written as in the paper: largest k with p_(k) <= k q / m."""
    m = len(p)
    ordered = sorted(p)
    k = max((i for i in range(1, m + 1) if ordered[i - 1] <= i * q / m), default=0)
    return p <= ordered[k - 1] if k else np.zeros(m, dtype=bool)


def test_benjamini_hochberg_hand_worked_example() -> None:
    # m = 10, q = 0.05: thresholds k q / m = 0.005, 0.010, ..., 0.050. Sorted p: 0.001 (<=
    # 0.005), 0.008 (<= 0.010), 0.039 (> 0.015), 0.041 (> 0.020), 0.042, 0.060, 0.074, 0.205,
    # 0.212, 0.216: the largest k with p_(k) <= k q / m is 2, so two are rejected (a
    # Bonferroni cut at 0.005 would reject one).
    p = np.array([0.039, 0.001, 0.212, 0.041, 0.008, 0.042, 0.060, 0.074, 0.205, 0.216])
    reject, adjusted = benjamini_hochberg(p, 0.05)
    assert reject.tolist() == [False, True, False, False, True] + [False] * 5
    # adjusted p of 0.001: min over j >= 1 of 10 p_(j) / j = 10 * 0.008 / 2 = 0.04 (< 0.01 * 10)
    assert adjusted[1] == pytest.approx(0.01) and adjusted[4] == pytest.approx(0.04)
    assert adjusted[0] == pytest.approx(10 * 0.042 / 5)  # 0.039 -> min(0.13, 0.1025, 0.084)


def test_benjamini_hochberg_matches_the_step_up_rule() -> None:
    rng = np.random.default_rng(11)
    for trial in range(300):
        m = int(rng.integers(1, 60))
        p = np.where(rng.random(m) < 0.3, rng.random(m) * 1e-3, rng.random(m))
        p = np.round(p, int(rng.integers(2, 6)))  # ties
        q = float(rng.choice([0.01, 0.05, 0.2]))
        reject, adjusted = benjamini_hochberg(p, q)
        np.testing.assert_array_equal(reject, _bh_reference(p, q))
        assert (adjusted >= p - 1e-15).all() and (adjusted <= 1).all()


def test_anomaly_rule_options() -> None:
    assert AnomalyRule.from_options().fdr == 0.01
    assert AnomalyRule.from_options(per_window_alpha=0.001).fdr is None
    with pytest.raises(RatepoolError, match="not both"):
        AnomalyRule.from_options(0.05, 0.01)
    for bad in (0.0, 1.0, -0.1, float("nan"), True):
        with pytest.raises(RatepoolError, match="strictly between 0 and 1"):
            AnomalyRule.from_options(fdr=bad)


# ------------------------------------------------------------------------------------------
# Labels: matched with their types


def _rows(labels: list, counts: list | None = None) -> pd.DataFrame:
    return pd.DataFrame({"entity": pd.Series(labels, dtype=object),
                         "count": counts or [1] * len(labels)})


def test_007_is_not_7() -> None:
    text = make_rates(["007", "008"])
    scored = score_frame(text, _rows(["007", 7, "7", "008"])).table
    assert scored["unseen"].tolist() == [False, True, True, False]
    numbers = make_rates([7, 8])
    frame = pd.DataFrame({"entity": np.array([7, 8], dtype=np.int64), "count": [1, 2]})
    assert not score_frame(numbers, frame).table["unseen"].any()
    scored = score_frame(numbers, _rows(["007", "7", 7.0, True, 8])).table
    assert scored["unseen"].tolist() == [True, True, True, True, False]
    # an unseen entity is scored with theta_new, a known one with its own draws
    row = scored.iloc[[0, 4]]
    law_new, law_8 = numbers.law(np.array([2])), numbers.law(np.array([1]))
    assert row["pred_mean"].tolist() == pytest.approx(
        [law_new.mean.mean(), law_8.mean.mean()], rel=1e-12)
    assert list(scored["entity"]) == ["007", "7", 7.0, True, 8]  # labels kept as given


def test_text_labels_that_equal_a_fitted_label_warn(caplog) -> None:
    rates = make_rates([7, 8])
    with caplog.at_level(logging.WARNING, logger="ratepool"):
        score_frame(rates, _rows(["7", "8"]))
    assert "'7' (str) against the fit's 7 (int)" in caplog.text
    assert "none of the 2 rows' entities is in the fit" in caplog.text


def test_mixed_labels_match_per_row() -> None:
    rates = make_rates(["x", 7, 3.5])
    scored = score_frame(rates, _rows([7, "x", 3.5, "3.5", 7.0, 1, True])).table
    assert scored["unseen"].tolist() == [False, False, False, True, True, True, True]


# ------------------------------------------------------------------------------------------
# The score table


def test_rows_are_scored_independently_of_order_and_chunking() -> None:
    rates = make_rates(list("abcdef"), n_draws=100)
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"entity": rng.choice(list("abcdefz"), 500),
                          "window": np.arange(500), "count": rng.poisson(8, 500)})
    whole = score_frame(rates, frame, window_col="window").table
    chunked = score_frame(rates, frame, window_col="window", memory_bytes=1).table
    pd.testing.assert_frame_equal(whole, chunked)
    order = rng.permutation(500)
    shuffled = score_frame(rates, frame.iloc[order], window_col="window").table
    columns = ["pred_mean", "pred_lower", "pred_upper", "p_upper", "p_lower", "p_mid"]
    pd.testing.assert_frame_equal(shuffled[columns].reset_index(drop=True),
                                  whole.iloc[order][columns].reset_index(drop=True))
    # each row's values are those of its (entity, count) alone
    one = score_frame(rates, frame.iloc[[17]], window_col="window").table
    pd.testing.assert_frame_equal(one[columns], whole.iloc[[17]][columns].reset_index(drop=True))


def test_score_columns_are_consistent() -> None:
    rates = make_rates(list("abc"), n_draws=100)
    frame = pd.DataFrame({"entity": list("abcabc"), "count": [0, 3, 900, 1, 0, 40]})
    table = score_frame(rates, frame).table
    assert (table["p_upper"] + table["p_lower"] >= 1 - 1e-12).all()  # overlap is P(Y = y)
    assert ((table["p_value"] >= table["p_mid"]) | np.isclose(table["p_value"], 1)).all()
    assert (table["pred_lower"] <= table["pred_upper"]).all()
    assert table.loc[table["count"] == 900, "direction"].item() == "high"
    assert np.isclose(table.loc[0, "p_upper"], 1.0)  # P(Y >= 0) = 1
    q = benjamini_hochberg(table["p_value"].to_numpy(), 0.01)
    np.testing.assert_array_equal(table["anomaly"], q[0])
    np.testing.assert_allclose(table["q_value"], q[1])
    plain = score_frame(rates, frame, rule=AnomalyRule(fdr=None, per_window_alpha=0.2)).table
    assert "q_value" not in plain
    np.testing.assert_array_equal(plain["anomaly"], plain["p_value"] <= 0.2)


def test_bad_new_data_is_refused_with_the_column_named() -> None:
    rates = make_rates(["a", "b"])
    with pytest.raises(DataError, match="no column.*'hits'"):
        score_frame(rates, _rows(["a"]), count_col="hits")
    with pytest.raises(DataError, match="'count'.*negative"):
        score_frame(rates, pd.DataFrame({"entity": ["a", "b"], "count": [1, -2]}))
    with pytest.raises(DataError, match="missing entity labels"):
        score_frame(rates, pd.DataFrame({"entity": ["a", None], "count": [1, 2]}))
    with pytest.raises(DataError, match="no rows"):
        score_frame(rates, _rows([]))
    with pytest.raises(RatepoolError, match="interval"):
        score_frame(rates, _rows(["a"]), interval=1.5)


def test_figure_shows_the_most_surprising_rows() -> None:
    rates = make_rates(list("abcd"), n_draws=50)
    frame = pd.DataFrame({"entity": list("abcd") * 10, "count": np.arange(40) * 3})
    result = score_frame(rates, frame)
    figure = anomalies_figure(result, top=7)
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    expected = result.table.nsmallest(7, "p_value")["entity"].tolist()[::-1]
    assert labels == expected


# ------------------------------------------------------------------------------------------
# Predictions of k-window totals


def test_k_window_totals_match_convolution() -> None:
    rates = make_rates(["a", "b"], n_draws=30, seed=9)
    rates = PosteriorRates(rates.labels, np.minimum(rates.theta, 20.0), rates.theta_new,
                           rates.phi, None)
    k, exposure, top = 3, np.array([1.0, 0.5, 2.0]), 4000
    table = predict_totals(rates, ["a", "b", "new"], windows=k, exposure=exposure,
                           interval=0.8)
    grid = np.arange(top + 1)
    codes = np.array([0, 1, 2])
    means = rates.rates(codes) * exposure
    mixture = np.zeros((3, top + 1))
    for s in range(rates.n_draws):  # the k-fold convolution of one window's pmf, per draw
        for col in range(3):
            phi = rates.phi[s]
            one = stats.nbinom.pmf(grid, phi, phi / (means[s, col] + phi))
            total = one
            for _ in range(k - 1):
                total = np.convolve(total, one)[: top + 1]
            mixture[col] += total / rates.n_draws
    cdf = np.cumsum(mixture, axis=1)
    assert (cdf[:, -1] > 1 - 1e-9).all()
    for column, p in (("lower", 0.1), ("median", 0.5), ("upper", 0.9)):
        assert table[column].tolist() == np.argmax(cdf >= p, axis=1).tolist()
    np.testing.assert_allclose(table["mean"], mixture @ grid, rtol=1e-8)
    np.testing.assert_allclose(table["sd"] ** 2, mixture @ grid**2 - (mixture @ grid) ** 2,
                               rtol=1e-6)
    assert table["unseen"].tolist() == [False, False, True]


def test_predict_refuses_bad_arguments() -> None:
    rates = make_rates(["a", "b"])
    for bad in (0, 2.5, True):
        with pytest.raises(DataError, match="windows"):
            predict_totals(rates, ["a"], windows=bad)
    with pytest.raises(DataError, match="exposure.*positive"):
        predict_totals(rates, ["a", "b"], exposure=[1.0, -1.0])
    with pytest.raises(DataError, match="one per entity"):
        predict_totals(rates, ["a", "b"], exposure=[1.0, 2.0, 3.0])


# ------------------------------------------------------------------------------------------
# Results folders and the command line (synthetic draws: these test files, not statistics)


def test_cli_scores_a_saved_results_folder(tmp_path: Path, capsys) -> None:
    result = synthetic_result(["host-b", "host-a", "host-c"])
    folder = write_results(tmp_path / "res", result, record=record_for(result))
    new = pd.DataFrame({"entity": ["host-a", "host-b", "host-z"], "window": [7, 7, 1],
                        "count": [2, 400, 3]})
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "scored" / "scores.csv"
    code = main(["score", str(folder), str(tmp_path / "new.csv"), "-o", str(out),
                 "--window-col", "window", "--fdr", "0.05", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Benjamini-Hochberg at false discovery rate q = 0.05" in printed
    table = pd.read_csv(out)
    expected = result.score(new, window_col="window", fdr=0.05).table
    expected["direction"] = expected["direction"].astype(str)  # categorical in memory
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    assert table["anomaly"].tolist() == [False, True, False]
    summary = json.loads((out.parent / "scores.summary.json").read_text())
    assert summary["rule"]["method"] == "benjamini_hochberg" and summary["rule"]["fdr"] == 0.05
    assert summary["unseen_rows"] == 1 and summary["anomalies_high"] == 1
    assert (out.parent / "scores.anomalies.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "scores.anomalies.png", "scores.csv", "scores.summary.json"]  # no temp files left


def test_cli_score_errors_exit_2(tmp_path: Path, capsys) -> None:
    result = synthetic_result(["a", "b"])
    folder = write_results(tmp_path / "res", result, record=record_for(result))
    pd.DataFrame({"entity": ["a"], "hits": [1]}).to_csv(tmp_path / "new.csv", index=False)
    args = ["score", str(folder), str(tmp_path / "new.csv"), "-o", str(tmp_path / "s.csv")]
    assert main(args) == 2
    assert "no column(s) ['count']" in capsys.readouterr().err
    assert main([*args, "--count-col", "hits", "--fdr", "2"]) == 2
    assert "--fdr" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "nowhere"), str(tmp_path / "new.csv"), "-o",
                 str(tmp_path / "s.csv")]) == 2
    assert not (tmp_path / "s.csv").exists()


def test_parquet_new_data_keeps_integer_labels(tmp_path: Path) -> None:
    result = synthetic_result([30, 10, 20])
    folder = write_results(tmp_path / "res", result, record=record_for(result))
    rates = PosteriorRates.from_idata(load_results(folder).inference_data())
    pd.DataFrame({"entity": [10, 30, 99], "count": [1, 2, 3]}).to_parquet(tmp_path / "n.pq")
    table = score_frame(rates, tmp_path / "n.pq").table
    assert table["unseen"].tolist() == [False, False, True]


def test_scores_a_results_folder_built_from_cmdstan_output(tmp_path: Path,
                                                           run_dir: Path) -> None:
    folder = tmp_path / "cmdstan-res"
    assert main(["report", "--from-cmdstan-csv",
                 *map(str, sorted((run_dir / "centred").glob("out_*.csv"))),
                 "--data", str(run_dir / "data.json"),
                 "--labels", str(run_dir / "data.labels.csv"),
                 "--out", str(folder), "--quiet"]) == 0
    out = tmp_path / "s.csv"
    assert main(["score", str(folder), str(EXAMPLE_CSV), "-o", str(out), "--window-col",
                 "window", "--quiet"]) == 0
    table = pd.read_csv(out)
    assert len(table) == 624 and not table["unseen"].any()
    rates = PosteriorRates.from_idata(load_results(folder).inference_data())
    assert rates.n_draws == 200  # the two chains kept in tests/fixtures, 100 draws each
    row = table.iloc[0]
    direct = tail_probabilities(np.array([row["count"]]), rates.law(np.array([0])))
    assert row["p_lower"] == pytest.approx(direct[0][0], rel=1e-12)


# ------------------------------------------------------------------------------------------
# Calibration on the fitted model's own posterior predictive (one small fit, reused)


@pytest.fixture(scope="module", params=engine_params())
def example_fit(request) -> ratepool.FitResult:
    data = ratepool.load_counts(EXAMPLE_CSV, window_col="window")
    config = ModelConfig(n_chains=4, n_tune=500, n_samples=500, random_seed=123,
                         engine=request.param)
    return ratepool.fit(data, config)


@pytest.fixture(scope="module")
def example_rates(example_fit: ratepool.FitResult) -> PosteriorRates:
    return PosteriorRates.from_idata(example_fit.idata)


@pytest.mark.slow
def test_pit_is_uniform_on_posterior_predictive_data(example_fit: ratepool.FitResult,
                                                     example_rates: PosteriorRates) -> None:
    """The randomised PIT is exactly Uniform(0, 1) under the predictive (mid-p is not: a count
    has atoms, so mid-p piles up at the atoms' midpoints). 2,250 rows: KS has power ~1 against
    the doubled overdispersion below."""
    rng = np.random.default_rng(2024)
    frame, theta = predictive_rows(example_rates, n_windows=50, rng=rng, n_new=5)
    table = example_fit.score(frame, window_col="window", seed=7).table
    assert table["unseen"].sum() == 250
    assert stats.kstest(table["pit"], "uniform").pvalue > 0.01
    # the test can fail: counts twice as overdispersed as the model give a non-uniform PIT
    wider = frame.assign(count=nb2_draws(rng, theta, rng.choice(example_rates.phi,
                                                                len(frame)) / 2))
    pit = example_fit.score(wider, window_col="window", seed=7).table["pit"]
    assert stats.kstest(pit, "uniform").pvalue < 1e-4


@pytest.mark.slow
def test_fdr_holds_over_repeated_null_scoring(example_fit: ratepool.FitResult,
                                              example_rates: PosteriorRates) -> None:
    """With no anomalies every flag is false, so the FDR is P(any flag); BH must keep it <= q
    (to 3 Monte Carlo standard errors) over 1,000 repeats of scoring 400 rows."""
    rates = null_flag_rates(example_rates, n_repeats=1000, n_windows=10,
                            fdr_levels=(0.01, 0.1), seed=31)
    for row in rates.itertuples():
        assert row.any_flag_rate <= row.q + 3 * row.mcse, row
    assert rates["any_flag_rate"].iloc[1] > 0  # BH does flag sometimes: the check can fail
    # one repeat scored on its own through FitResult.score gives the same flags
    frame = predictive_rows(example_rates, 10, np.random.default_rng(31))[0]
    scored = example_fit.score(frame, fdr=0.1).table
    assert (scored["anomaly"] == benjamini_hochberg(scored["p_value"].to_numpy(), 0.1)[0]).all()


@pytest.mark.slow
def test_injected_spikes_are_flagged(example_rates: PosteriorRates) -> None:
    """5x spikes in 5% of 2,000 rows at q = 0.01. scripts/score_calibration.py measured power
    0.2-0.3 on such a fit (phi ~ 3: a 5x window is often within the counts' own spread; see
    the README); ~100 spikes give a standard error of ~0.04, so 0.1 is a floor ~3 SE below."""
    found = spike_power(example_rates, n_windows=50, factor=5.0, share=0.05, fdr=0.01, seed=78)
    assert found["spikes"] > 70
    assert found["power"] >= 0.1, found
    assert found["fdp"] <= 0.1, found
    stronger = spike_power(example_rates, n_windows=50, factor=20.0, share=0.05, fdr=0.01,
                           seed=78)
    assert stronger["power"] > found["power"] + 0.2, stronger


# ------------------------------------------------------------------------------------------
# Fits with the model options: exposure, zero-inflation, covariates


@pytest.fixture(scope="module")
def options_fit():
    from ratepool.model.simulate import simulate_counts

    simulated = simulate_counts(n_entities=10, windows=(5, 10), mu=4.0, alpha=1.5, phi=3.0,
                                seed=5, exposure=(0.5, 20.0), covariate_effects={"x1": 0.1},
                                zero_inflation=0.2)
    data = ratepool.from_dataframe(simulated.frame, window_col="window",
                                   exposure_col="exposure", covariates=["x1"])
    config = ratepool.ModelConfig(n_samples=200, n_tune=300, n_chains=2, zero_inflation=True)
    return simulated, ratepool.fit(data, config, engine="pystan")


@pytest.mark.slow
@pytest.mark.skipif(not pystan_available(), reason="pystan is not installed")
def test_scores_use_the_fits_exposure_zero_inflation_and_covariates(options_fit) -> None:
    """Against a direct scipy computation over the draws: P(Y <= y) of a known entity's
    window is the average of pi + (1 - pi) NB2cdf(y | E theta, phi); an unseen entity is
    scored at its own covariates (its predictive mean tracks mu exp(z' beta) E (1 - pi))."""
    from scipy import stats

    simulated, result = options_fit
    assert result.config.exposure_col == "exposure" and result.config.covariates == ("x1",)
    posterior = result.idata.posterior
    theta = posterior["theta"].values.reshape(-1, result.data.n_entities)
    phi = posterior["phi"].values.ravel()
    pi = posterior["pi"].values.ravel()
    label = result.data.labels[3]
    new = pd.DataFrame({"entity": [label, label, "new-1"], "count": [0, 4, 2],
                        "exposure": [2.5, 7.0, 3.0], "x1": [np.nan, np.nan, 14.0]})
    table = result.score(new).table
    for row in (0, 1):
        mean = new["exposure"][row] * theta[:, 3]
        cdf = pi + (1 - pi) * stats.nbinom.cdf(new["count"][row], phi, phi / (phi + mean))
        assert table["p_lower"][row] == pytest.approx(cdf.mean(), rel=1e-9)
        assert table["pred_mean"][row] == pytest.approx(((1 - pi) * mean).mean(), rel=1e-9)
    assert table["unseen"].tolist() == [False, False, True]
    mu, beta = posterior["mu"].values.ravel(), posterior["beta"].values.reshape(len(phi), -1)
    z = (14.0 - result.data.covariates.center[0]) / result.data.covariates.scale[0]
    expected = (mu * np.exp(beta[:, 0] * z) * 3.0 * (1 - pi)).mean()
    # The unseen entity's rate is integrated out per draw (quadrature exact for the mean), so
    # its predictive mean is the exact average over draws (a single Gamma draw per posterior
    # draw, as before, was off by a few percent).
    assert table["pred_mean"][2] == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ratepool.DataError, match="covariate column"):
        result.score(new.drop(columns="x1"))


@pytest.mark.slow
@pytest.mark.skipif(not pystan_available(), reason="pystan is not installed")
def test_predict_puts_unseen_entities_at_their_own_covariates(options_fit) -> None:
    """predict() and score() give an unseen entity the same law, at its own covariates: the
    predictive mean is the average over draws of mu exp(z' beta) e (1 - pi) (not the law at
    z = 0, which Stan's theta_new has), and missing covariates are refused."""
    simulated, result = options_fit
    posterior = result.idata.posterior
    mu, pi = posterior["mu"].values.ravel(), posterior["pi"].values.ravel()
    beta = posterior["beta"].values.reshape(len(mu), -1)
    covariates = pd.DataFrame({"entity": ["new-1", "new-2"], "x1": [14.0, 2.0]})
    predicted = result.predict(["new-1", "new-2"], exposure=3.0, covariates=covariates)
    assert predicted["unseen"].tolist() == [True, True]
    for row, x1 in enumerate((14.0, 2.0)):
        z = (x1 - result.data.covariates.center[0]) / result.data.covariates.scale[0]
        expected = (mu * np.exp(beta[:, 0] * z) * 3.0 * (1 - pi)).mean()
        assert predicted["mean"][row] == pytest.approx(expected, rel=1e-9)
    scored = result.score(pd.DataFrame({"entity": ["new-1"], "count": [2], "exposure": [3.0],
                                        "x1": [14.0]})).table
    assert scored["pred_mean"][0] == pytest.approx(predicted["mean"][0], rel=1e-12)
    with pytest.raises(ratepool.DataError, match="covariates"):
        result.predict(["new-1"], exposure=3.0)
