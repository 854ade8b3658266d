"""Threads per chain: the base model's entity sum split into chunks (`reduce_sum_static`).

The program sums the fused base path's entity terms in one pass (``grainsize = 0``) or in
chunks of ``grainsize`` entities, which a build with STAN_THREADS runs on the chain's threads.
The chunked sum must be the same density (checked against scipy and against the one-pass sum
on both engines, and on CmdStan's threaded build), the threaded fit the same posterior as the
one-thread fit (within Monte Carlo error) and reproducible for a seed and thread count; the
PyStan engine, which cannot set a thread count per chain, refuses more than one thread.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool.engines.cmdstan import find_cmdstan
from ratepool.errors import ConfigError, DataError
from ratepool.model.config import ModelConfig
from ratepool.model.program import default_program
from ratepool.model.simulate import simulate_counts
from ratepool.model.standata import (
    entity_grainsize,
    stan_data,
    sums_entities_in_chunks,
    threads_per_chain,
)
from ratepool.workflow.cmdstan_files import read_stan_data, write_stan_data
from ratepool.workflow.fit import prepare_fit

from .conftest import CMDSTAN_SKIP_REASON, engine_params, pystan_available
from .test_log_density import CONFIG, SEEDS, _dataset, _points, scipy_log_density

@pytest.mark.parametrize("entities", [1, 7, 1000, 100_003])
@pytest.mark.parametrize("threads", [2, 3, 16])
def test_grainsize_is_the_smallest_that_gives_four_pieces_per_thread(entities: int,
                                                                      threads: int) -> None:
    grainsize = entity_grainsize(entities, threads)
    assert 1 <= grainsize <= entities
    assert math.ceil(entities / grainsize) <= 4 * threads  # at most 4T pieces of grainsize
    if grainsize > 1:  # and one entity less per piece would need more than 4T pieces
        assert math.ceil(entities / (grainsize - 1)) > 4 * threads
    assert entity_grainsize(entities, 1) == 0


def test_config_refuses_a_thread_count_below_one() -> None:
    with pytest.raises(ConfigError, match="threads_per_chain"):
        ModelConfig(threads_per_chain=0)
    with pytest.raises(ConfigError, match="threads_per_chain"):
        ModelConfig(threads_per_chain=1.5)
    assert ModelConfig.from_dict({"sampling": {"threads_per_chain": 4}}).threads_per_chain == 4


def _magnitude(data: ratepool.CountData, mu: float, alpha: float, phi: float,
               theta: np.ndarray) -> float:
    """Sum of the absolute entity terms: the scale of the entity sum's rounding error."""
    total = np.asarray(data.entity_total, dtype=float)
    return float(np.sum((total + abs(mu * alpha - 1)) * np.abs(np.log(theta)) + alpha * theta
                        + (data.n_windows * phi + total) * np.log1p(theta / phi)))


@pytest.mark.parametrize("engine_name", engine_params())
@pytest.mark.parametrize("kind", ["zeros_and_unequal", "large_counts", "heterogeneous"])
def test_chunked_entity_sum_is_the_same_density(engine_name: str, kind: str) -> None:
    """Every chunk size gives scipy's density, and the one-pass sum's to rounding."""
    engine = ratepool.get_engine(engine_name)
    rng = np.random.default_rng(SEEDS[kind])
    data = _dataset(kind, rng)
    program = default_program()
    values = stan_data(data, CONFIG, obs_predictions=False)
    assert values["grainsize"] == 0 and sums_entities_in_chunks(data, CONFIG)
    for mu, alpha, phi, theta in _points(data, rng):
        expected = scipy_log_density(data, mu, alpha, phi, theta)
        params = {"mu": mu, "alpha": alpha, "phi": phi, "theta": theta}
        one_pass = engine.log_density(program, values, params)
        assert one_pass == pytest.approx(expected, rel=1e-8, abs=1e-8)
        # Another order of summation: the sums differ by rounding, a few ulps of the terms'
        # magnitudes (S_i log theta_i reaches 1e8 on the large counts; their sum is 1e5).
        # (CmdStan's plain build calls the partial sum once over all entities whatever the
        # grainsize; PyStan's httpstan builds with STAN_THREADS, so there the pieces are real.)
        magnitude = _magnitude(data, mu, alpha, phi, theta)
        for grainsize in (1, 2, 3, data.n_entities, data.n_entities + 5):
            chunked = engine.log_density(program, {**values, "grainsize": grainsize}, params)
            assert abs(chunked - one_pass) <= 16 * np.finfo(float).eps * magnitude, grainsize


@pytest.mark.cmdstan
@pytest.mark.skipif(find_cmdstan() is None, reason=CMDSTAN_SKIP_REASON)
@pytest.mark.parametrize("grainsize", [1, 3, 5])
def test_threaded_build_sums_chunks_to_the_same_density(grainsize: int, monkeypatch) -> None:
    monkeypatch.setenv("STAN_NUM_THREADS", "2")
    engine = ratepool.get_engine("cmdstan")
    rng = np.random.default_rng(SEEDS["heterogeneous"])
    data = _dataset("heterogeneous", rng)
    model = engine.cmdstan_model(default_program(), threads=True)
    assert model.exe_info().get("STAN_THREADS", "").lower() == "true"
    values = {**stan_data(data, CONFIG, obs_predictions=False), "grainsize": grainsize}
    plain = engine.cmdstan_model(default_program())
    for mu, alpha, phi, theta in _points(data, rng):
        params = {"mu": mu, "alpha": alpha, "phi": phi, "theta": theta.tolist()}
        chunked = float(model.log_prob(params=params, data=values, jacobian=False,
                                       sig_figs=18)["lp__"].iloc[0])
        one_pass = float(plain.log_prob(params=params, data={**values, "grainsize": 0},
                                        jacobian=False, sig_figs=18)["lp__"].iloc[0])
        assert chunked == pytest.approx(scipy_log_density(data, mu, alpha, phi, theta),
                                        rel=1e-8, abs=1e-8)
        assert abs(chunked - one_pass) <= 16 * np.finfo(float).eps * _magnitude(
            data, mu, alpha, phi, theta)


def _sim_data() -> ratepool.CountData:
    sim = simulate_counts(n_entities=1500, windows=(5, 40), mu=0.4, alpha=0.6, phi=1.5, seed=5)
    return ratepool.from_dataframe(sim.frame, entity_col="entity", count_col="count")


@pytest.mark.slow
@pytest.mark.cmdstan
@pytest.mark.skipif(find_cmdstan() is None, reason=CMDSTAN_SKIP_REASON)
def test_threaded_fit_has_the_posterior_of_the_one_thread_fit() -> None:
    import arviz as az

    data = _sim_data()
    # 2 x 1000 draws: at 2 x 500 one sparse entity's tail ESS was 92 (< 100: not converged)
    config = ModelConfig(n_chains=2, n_tune=400, n_samples=1000, random_seed=8)
    fits = {threads: ratepool.fit(data, config.replace(threads_per_chain=threads),
                                  engine="cmdstan")
            for threads in (1, 2)}
    again = ratepool.fit(data, config.replace(threads_per_chain=2), engine="cmdstan")
    # reproducible for a seed and a thread count: the chunks are fixed (reduce_sum_static)
    for name in ("mu", "alpha", "phi", "theta"):
        np.testing.assert_array_equal(again.idata.posterior[name].values,
                                      fits[2].idata.posterior[name].values)
    # a different sum's rounding: other draws, the same posterior
    assert not np.array_equal(fits[1].idata.posterior["mu"].values,
                              fits[2].idata.posterior["mu"].values)
    posts = {t: fit.idata.posterior for t, fit in fits.items()}
    for name in ("mu", "alpha", "phi"):
        means = [float(p[name].mean()) for p in posts.values()]
        mcse = np.hypot(*(float(az.mcse(p[name]).to_array().item()) for p in posts.values()))
        assert abs(means[0] - means[1]) < 4 * mcse, name
    theta = [p["theta"].mean(("chain", "draw")).values for p in posts.values()]
    mcse = np.hypot(*(az.mcse(p["theta"])["theta"].values for p in posts.values()))
    # 4 combined MCSE: a share of 6e-5 of entities outside under normal errors
    assert np.mean(np.abs(theta[0] - theta[1]) < 4 * mcse) >= 0.99
    for fit in fits.values():
        assert fit.diagnostics()["converged"]


@pytest.mark.skipif(not pystan_available(), reason="pystan is not installed")
def test_pystan_refuses_threads_before_any_work() -> None:
    data = _sim_data()
    with pytest.raises(ConfigError, match="threads_per_chain = 2 needs the CmdStan engine"):
        prepare_fit(data, ModelConfig(threads_per_chain=2), "pystan")


def test_only_the_fused_path_splits_and_gets_threads() -> None:
    data = _sim_data()
    config = ModelConfig(threads_per_chain=2)
    assert sums_entities_in_chunks(data, config)
    assert stan_data(data, config)["grainsize"] == entity_grainsize(data.n_entities, 2)
    for change in ({"parameterization": "non_centered"}, {"zero_inflation": True},
                   {"likelihood": "observation"}, {"temporal": "ar1"}):
        assert not sums_entities_in_chunks(data, config.replace(**change)), change
        assert threads_per_chain(data, config.replace(**change)) == 1, change
    sim = simulate_counts(n_entities=30, windows=(3, 8), mu=2.0, alpha=1.0, phi=2.0, seed=2,
                          exposure=(1.0, 50.0), covariate_effects={"size": 0.2},
                          bytes_per_event={"m0": 8.0, "tau": 0.5, "sigma_w": 0.3,
                                           "sigma_e": 0.5})
    frame = sim.frame
    for columns in ({"exposure_col": "exposure"}, {"covariates": ["size"]}):
        optioned = ratepool.from_dataframe(frame, **columns)
        assert not sums_entities_in_chunks(optioned, config), columns
        assert stan_data(optioned, config.replace(
            exposure_col=columns.get("exposure_col"),
            covariates=columns.get("covariates", ())))["grainsize"] == 0, columns
    with_bytes = ratepool.from_dataframe(frame, bytes_col="bytes")
    assert sums_entities_in_chunks(with_bytes, config)  # a separate factor: the sum still splits


def test_data_json_keeps_its_grainsize_and_reads_older_files(tmp_path) -> None:
    data = _sim_data()
    values = stan_data(data, ModelConfig(threads_per_chain=3))
    assert values["grainsize"] == entity_grainsize(data.n_entities, 3) > 0
    json_path, labels_path = write_stan_data(values, data, tmp_path / "data.json", None)
    _, read = read_stan_data(json_path, labels_path)
    assert read["grainsize"] == values["grainsize"]
    older = {k: v for k, v in json.loads(json_path.read_text()).items() if k != "grainsize"}
    json_path.write_text(json.dumps(older))
    _, read = read_stan_data(json_path, labels_path)
    assert read["grainsize"] == 0
    json_path.write_text(json.dumps({**older, "grainsize": -2}))
    with pytest.raises(DataError, match="grainsize = -2"):
        read_stan_data(json_path, labels_path)


def test_export_data_writes_the_grainsize_and_the_thread_count(tmp_path, capsys) -> None:
    from ratepool.cli.main import main

    from .conftest import EXAMPLE_CSV

    data_json = tmp_path / "data.json"
    assert main(["export-data", str(EXAMPLE_CSV), "--window-col", "window",
                 "--threads-per-chain", "2", "-o", str(data_json)]) == 0
    values = json.loads(data_json.read_text())
    assert values["grainsize"] == entity_grainsize(values["J"], 2) > 0
    out = capsys.readouterr().out
    assert "num_threads=8" in out and "STAN_THREADS=true" in out  # 4 chains x 2 threads
    assert main(["export-data", str(EXAMPLE_CSV), "--window-col", "window", "--zero-inflation",
                 "--threads-per-chain", "2", "-o", str(data_json)]) == 0
    assert json.loads(data_json.read_text())["grainsize"] == 0  # not the fused path
    assert "num_threads" not in capsys.readouterr().out
    assert main(["export-data", str(EXAMPLE_CSV), "--window-col", "window",
                 "-o", str(data_json)]) == 0
    assert json.loads(data_json.read_text())["grainsize"] == 0
    assert "num_threads" not in capsys.readouterr().out
