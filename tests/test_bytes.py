"""Counts together with bytes (`--bytes-col`): the bytes factor's log density on both
likelihood paths against scipy's per-row lognormal densities, its sufficient statistics, input
validation, recovery on simulated data, and the outputs (tables, results folder, CLI)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ratepool
from ratepool.event_bytes import bytes_statistics
from ratepool.program import default_program
from ratepool.standata import stan_data

from .conftest import engine_params
from .test_options import CONFIG, _point, panel, scipy_log_density

BYTES_CONFIG = CONFIG.replace(bytes_m0_prior_mean=6.0, bytes_m0_prior_sd=3.0,
                              bytes_tau_prior_sd=1.2, bytes_sigma_prior_sd=0.8)


def bytes_panel(seed: int) -> pd.DataFrame:
    """`test_options.panel` plus bytes: 0 where the count is 0, else count x a lognormal size
    whose entity median varies over three orders of magnitude."""
    frame = panel(seed)
    rng = np.random.default_rng(seed + 1000)
    medians = {label: rng.uniform(2.0, 9.0) for label in frame["entity"].unique()}
    log_size = frame["entity"].map(medians).to_numpy() + rng.normal(0, 0.7, len(frame))
    frame["bytes"] = np.where(frame["count"] > 0, frame["count"] * np.exp(log_size), 0.0)
    return frame


def scipy_bytes_log_density(data: ratepool.CountData, params: dict,
                            config: ratepool.ModelConfig) -> float:
    """Priors of m0, tau, sigma_b, m and one LogNormal(b | median y exp(m_i), sigma_b) density
    per window with events: scipy's own densities, row by row."""
    m0, tau, sigma_b, m = (params["m0"][0], params["tau"][0], params["sigma_b"][0],
                           np.asarray(params["m"]))
    lp = (stats.norm.logpdf(m0, config.bytes_m0_prior_mean, config.bytes_m0_prior_sd)
          + stats.halfnorm.logpdf(tau, scale=config.bytes_tau_prior_sd)
          + stats.halfnorm.logpdf(sigma_b, scale=config.bytes_sigma_prior_sd)
          + stats.norm.logpdf(m, m0, tau).sum())
    events = data.y > 0
    scale = data.y[events] * np.exp(m[data.entity_index[events]])
    return float(lp + stats.lognorm.logpdf(data.window_bytes[events], s=sigma_b,
                                           scale=scale).sum())


def _bytes_point(data: ratepool.CountData, rng: np.random.Generator) -> dict:
    return {"m0": [rng.normal(5, 1)], "tau": [rng.gamma(2, 0.5)],
            "sigma_b": [rng.gamma(2, 0.4)], "m": rng.normal(5, 2, data.n_entities)}


COUNT_OPTIONS = {
    "base": dict(),
    "all": dict(exposure_col="exposure", covariates=["baseline", "region"]),
}


@pytest.mark.parametrize("engine_name", engine_params())
@pytest.mark.parametrize("option", sorted(COUNT_OPTIONS))
def test_bytes_log_density_matches_scipy_on_both_paths(engine_name: str, option: str) -> None:
    """The whole joint density (counts with every option, plus bytes) equals scipy's count
    densities plus scipy's per-row lognormal bytes densities, on the sufficient (O(J)) path
    and the per-row reference path, at random points."""
    engine = ratepool.get_engine(engine_name)
    zero_inflation = option == "all"
    rng = np.random.default_rng(41)
    data = ratepool.from_dataframe(bytes_panel(8), bytes_col="bytes", **COUNT_OPTIONS[option])
    config = BYTES_CONFIG.replace(zero_inflation=zero_inflation, bytes_col="bytes")
    for _ in range(3):
        params = {**_point(data, rng, zero_inflation), **_bytes_point(data, rng)}
        expected = (scipy_log_density(data, params, config, zero_inflation)
                    + scipy_bytes_log_density(data, params, config))
        values = []
        for likelihood in ("sufficient", "observation"):
            values.append(engine.log_density(
                default_program(),
                stan_data(data, config.replace(likelihood=likelihood), obs_predictions=False),
                params))
            assert values[-1] == pytest.approx(expected, rel=1e-8, abs=1e-8), likelihood
        assert values[0] == pytest.approx(values[1], rel=1e-8, abs=1e-8)


def test_bytes_statistics_are_sufficient() -> None:
    """W_i, mean and centred sum of squares of log(b / y) give back every entity's
    sum_j (l_ij - c)^2 at any c, and the Jacobian total is sum log b over windows with events."""
    data = ratepool.from_dataframe(bytes_panel(3), bytes_col="bytes")
    statistics = bytes_statistics(data)
    events = data.y > 0
    log_per_event = np.log(data.window_bytes[events] / data.y[events])
    entity = data.entity_index[events]
    for i in range(data.n_entities):
        rows = log_per_event[entity == i]
        assert statistics["bytes_windows"][i] == len(rows)
        for c in (-3.0, 0.0, 7.5):
            direct = float(((rows - c) ** 2).sum())
            from_stats = (statistics["bytes_log_ss"][i] + statistics["bytes_windows"][i]
                          * (statistics["bytes_log_mean"][i] - c) ** 2)
            assert from_stats == pytest.approx(direct, rel=1e-12, abs=1e-12)
    assert statistics["bytes_log_total"] == pytest.approx(
        float(np.log(data.window_bytes[events]).sum()), rel=1e-14)


# --------------------------------------------------------------------------------------------
# Input validation: a clear error naming the column and row, before anything compiles


def _rows(**columns) -> pd.DataFrame:
    base = {"entity": ["a", "a", "b", "b", "c", "c"], "count": [1, 0, 3, 2, 0, 5],
            "bytes": [100.0, 0.0, 900.0, 40.0, 0.0, 5e6]}
    base.update(columns)
    return pd.DataFrame(base)


@pytest.mark.parametrize("values, message, row", [
    ([100.0, 12.0, 900.0, 40.0, 0.0, 5e6], "bytes in windows with no events", "index 1: 12"),
    ([100.0, 0.0, 0.0, 40.0, 0.0, 5e6], "0 bytes in windows with events", "index 2: 0"),
    ([100.0, 0.0, 900.0, -40.0, 0.0, 5e6], "negative bytes", "index 3: -40"),
    ([100.0, 0.0, 900.0, 40.0, 0.0, None], "missing bytes", "index 5"),
    ([100.0, 0.0, float("inf"), 40.0, 0.0, 5e6], "infinite bytes", "index 2"),
    (["100", "0", "x", "40", "0", "5"], "not numbers", "index 2: 'x'"),
])
def test_bad_bytes_are_refused_naming_column_and_row(values, message, row) -> None:
    with pytest.raises(ratepool.DataError, match=message) as error:
        ratepool.from_dataframe(_rows(bytes=values), bytes_col="bytes")
    assert "'bytes'" in str(error.value) and row in str(error.value)


def test_bad_bytes_in_a_file_name_the_line(tmp_path) -> None:
    path = tmp_path / "counts.csv"
    _rows(bytes=[100.0, 0.0, 900.0, 40.0, 7.0, 5e6]).to_csv(path, index=False)
    with pytest.raises(ratepool.DataError, match=r"bytes in windows with no events.*line 6"):
        ratepool.load_counts(path, bytes_col="bytes")
    with pytest.raises(ratepool.DataError, match="no column"):
        ratepool.load_counts(path, bytes_col="octets")


def test_bytes_config_needs_bytes_data_and_valid_priors(tmp_path) -> None:
    config = ratepool.ModelConfig(bytes_col="bytes", bytes_m0_prior_mean=-2.0)
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml())
    assert ratepool.ModelConfig.from_toml(path) == config
    with pytest.raises(ratepool.ConfigError, match="bytes_col"):
        stan_data(ratepool.from_dataframe(_rows()), config)
    with pytest.raises(ratepool.ConfigError, match="bytes_tau_prior_sd"):
        ratepool.ModelConfig(bytes_tau_prior_sd=0.0)
    with pytest.raises(ratepool.ConfigError, match="bytes_m0_prior_mean"):
        ratepool.ModelConfig(bytes_m0_prior_mean=float("nan"))


def test_bytes_off_adds_nothing_to_the_data_but_switched_off_fields() -> None:
    """Without bytes the Stan data has has_bytes = 0 and empty bytes fields; the counts'
    fields are those of the same data loaded with bytes."""
    frame = _rows()
    plain = stan_data(ratepool.from_dataframe(frame), ratepool.ModelConfig())
    with_bytes = stan_data(ratepool.from_dataframe(frame, bytes_col="bytes"),
                           ratepool.ModelConfig(bytes_col="bytes"))
    assert plain["has_bytes"] == 0 and plain["bytes_windows"] == [] and plain["bytes"] == []
    assert with_bytes["has_bytes"] == 1 and with_bytes["bytes_windows"] == [1, 2, 1]
    bytes_keys = {"has_bytes", "bytes", "bytes_windows", "bytes_log_mean", "bytes_log_ss",
                  "bytes_log_total"}
    assert {k: v for k, v in plain.items() if k not in bytes_keys} == \
        {k: v for k, v in with_bytes.items() if k not in bytes_keys}
