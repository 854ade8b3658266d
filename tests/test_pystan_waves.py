"""The PyStan engine runs its chains in waves (`ratepool.engines._pystan_child`), so that only one
wave's PyStan output is held at a time. Waves must not change what a run is: each chain its own
stream (a repeated seed would repeat chains), the first wave the chains a one-call run has, the
posterior the same, each chain started from its own inits. The fits httpstan serves lose the
diagnostic writer's lines, which PyStan never reads."""

from __future__ import annotations

import gzip
from pathlib import Path

import arviz as az
import numpy as np
import pytest

import ratepool
from ratepool.engines.base import SamplerSettings
from ratepool.engines.progress import SamplingProgress
from ratepool.engines.pystan import WAVE_CHAINS_ENV, PyStanEngine, pystan_available
from ratepool.model.config import ModelConfig
from ratepool.model.program import default_program
from ratepool.model.simulate import simulate_counts
from ratepool.model.standata import stan_data
from ratepool.model.warm_start import warm_start

pytestmark = pytest.mark.skipif(not pystan_available(), reason="pystan is not installed")

CHAINS = 4
HYPER = ("mu", "alpha", "phi")


@pytest.fixture(scope="module")
def values() -> dict:
    """Stan data of 60 simulated entities (the benchmark's regime)."""
    sim = simulate_counts(n_entities=60, windows=(10, 30), seed=4, mu=4.0, alpha=2.0, phi=3.0)
    data = ratepool.from_dataframe(sim.frame, entity_col="entity", count_col="count")
    return stan_data(data, ModelConfig())


def _sample(values: dict, monkeypatch, wave_chains: int, *, draws: int = 300,
            fixed_param: bool = False, inits=None, seed: int = 11) -> dict[str, np.ndarray]:
    """The engine's variables and sampler stats of one run with ``wave_chains`` per wave."""
    monkeypatch.setenv(WAVE_CHAINS_ENV, str(wave_chains))
    settings = SamplerSettings(chains=CHAINS, warmup=0 if fixed_param else 300, draws=draws,
                               adapt_delta=0.8, seed=seed, fixed_param=fixed_param,
                               inits=inits)
    result = PyStanEngine().sample(default_program(), values, settings)
    return {**result.variables, **{f"stat.{k}": v for k, v in result.sample_stats.items()}}


@pytest.fixture(scope="module")
def runs(values) -> dict[int, dict[str, np.ndarray]]:
    """The same run (seed 11, 4 chains x (300 + 300)) in one wave, waves of 2 and of 1."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return {size: _sample(values, monkeypatch, size) for size in (CHAINS, 2, 1)}


@pytest.mark.parametrize("size", [2, 1])
def test_every_chain_is_a_stream_of_its_own(runs, size: int) -> None:
    """No two chains share a draw of theta (a wave repeating a seed repeats whole chains)."""
    theta = runs[size]["theta"]
    assert theta.shape == runs[CHAINS]["theta"].shape == (CHAINS, 300, 60)
    for a in range(CHAINS):
        for b in range(a + 1, CHAINS):
            assert not np.any(np.all(theta[a] == theta[b], axis=-1)), (a, b)


@pytest.mark.parametrize("size", [2, 1])
def test_the_first_wave_is_the_one_call_runs_first_chains(runs, size: int) -> None:
    """The first wave keeps the run's seed: its chains are exactly a one-call run's first ones
    (so a one-wave run draws what the engine drew before waves); later waves differ."""
    one, waved = runs[CHAINS], runs[size]
    assert set(one) == set(waved)
    for key in one:
        assert one[key].dtype == waved[key].dtype, key
        np.testing.assert_array_equal(waved[key][:size], one[key][:size], err_msg=key)
    assert not np.array_equal(waved["theta"][size:], one["theta"][size:])


def test_waves_are_reproducible(values, monkeypatch, runs) -> None:
    again = _sample(values, monkeypatch, 2)
    for key, array in runs[2].items():
        np.testing.assert_array_equal(again[key], array, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("size", [2, 1])
def test_waves_sample_the_same_posterior(runs, size: int) -> None:
    """mu, alpha, phi and every theta: waved and one-call means within 4 combined Monte Carlo
    standard errors (for theta, at least 58 of 60 entities: 60 comparisons at 4 sigma fail
    rarely, and a shared first wave makes the difference's error smaller, not larger)."""
    posteriors = {key: az.convert_to_inference_data({name: runs[key][name]
                                                     for name in (*HYPER, "theta")})
                  for key in (CHAINS, size)}
    for name in (*HYPER, "theta"):
        means = [runs[key][name].mean(axis=(0, 1)) for key in (CHAINS, size)]
        mcse = np.hypot(*(az.mcse(posteriors[key], var_names=[name])[name].values
                          for key in (CHAINS, size)))
        within = np.abs(means[0] - means[1]) < 4 * mcse
        assert np.sum(~within) <= (2 if name == "theta" else 0), (name, means, mcse)


def test_each_chain_starts_from_its_own_inits(values, monkeypatch) -> None:
    """The fixed_param sampler's draws are its inits: in waves of 1 and 2 (the inits sliced per
    wave) every chain's draws are its own chain's inits."""
    inits = warm_start(values, chains=CHAINS, seed=7).inits
    assert len({init["mu"] for init in inits}) == CHAINS
    for size in (1, 2):
        drawn = _sample(values, monkeypatch, size, draws=3, fixed_param=True, inits=inits)
        for chain, init in enumerate(inits):
            for name in HYPER:
                np.testing.assert_allclose(drawn[name][chain], init[name], rtol=1e-12)
            np.testing.assert_allclose(drawn["theta"][chain],
                                       np.tile(init["theta"], (3, 1)), rtol=1e-12)


def test_a_bad_wave_size_is_refused(values, monkeypatch) -> None:
    monkeypatch.setenv(WAVE_CHAINS_ENV, "0")
    settings = SamplerSettings(chains=2, warmup=10, draws=10, adapt_delta=0.8, seed=1)
    with pytest.raises(ValueError, match=WAVE_CHAINS_ENV):
        PyStanEngine().sample(default_program(), values, settings)


def test_progress_counts_the_waves() -> None:
    """PyStan's share is the current wave's; the child's wave line places it in the run."""
    progress = SamplingProgress(chains=4, iterations=100)
    progress.pystan_line("Sampling:  50% (100/200)")
    assert progress.share == pytest.approx(0.5)  # one call of all chains: as before waves
    progress = SamplingProgress(chains=4, iterations=100)
    lines = ["ratepool: sampling chains 1-2 of 4", "Sampling:  50% (100/200)",
             "Sampling: 100%, done.", "ratepool: sampling chains 3-4 of 4", "Sampling:   0%",
             "Sampling:  50% (100/200)"]
    shares = []
    for line in lines:
        progress.pystan_line(line)
        shares.append(progress.share)
    assert shares == pytest.approx([0, 0.25, 0.5, 0.5, 0.5, 0.75])


# ---------------------------------------------------------------------------------------------
# httpstan's fits served without the diagnostic writer's lines (PyStan never reads them)


def _stored_fit(members: list[list[bytes]]) -> bytes:
    """Lines as httpstan's cache stores them: one gzip member per Stan writer."""
    return b"".join(gzip.compress(b"".join(line + b"\n" for line in lines))
                    for lines in members)


def test_a_stored_fit_loses_only_its_diagnostic_lines() -> None:
    """Every other line is kept, in order, across gzip members, whatever the chunk size."""
    from ratepool.engines import _pystan_child as child

    logger = [b'{"version":1,"topic":"logger","values":["info:Iteration: 1 / 2"]}']
    sample = [b'{"version":1,"topic":"sample","values":{"lp__":-1.5,"mu":%d.25}}' % i
              for i in range(300)]
    diagnostic = [b'{"version":1,"topic":"diagnostic","values":{"p_mu":%d.5}}' % i
                  for i in range(300)]
    stored = _stored_fit([logger, sample[:150], diagnostic, sample[150:], logger])
    expected = b"".join(line + b"\n" for line in (*logger, *sample, *logger))
    for chunk in (7, 1000, 1 << 22):  # lines split between chunks, and not
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setattr(child, "_FILTER_CHUNK", chunk)
            assert gzip.decompress(child._without_diagnostics(stored)) == expected
    no_diagnostics = _stored_fit([logger, sample])
    assert gzip.decompress(child._without_diagnostics(no_diagnostics)) == gzip.decompress(
        no_diagnostics)


def test_httpstan_serves_fits_through_the_filter(monkeypatch) -> None:
    """The child replaces httpstan's ``cache.load_fit`` (what its fit handler reads) once."""
    import httpstan.cache
    import httpstan.views

    from ratepool.engines import _pystan_child as child

    assert "httpstan.cache.load_fit(" in Path(httpstan.views.__file__).read_text()
    stored = _stored_fit([[b'{"version":1,"topic":"diagnostic","values":{}}',
                           b'{"version":1,"topic":"sample","values":{"mu":1.0}}']])
    monkeypatch.setattr(httpstan.cache, "load_fit", lambda name: stored)
    child._Child.install_fit_filter()
    child._Child.install_fit_filter()  # a second call wraps nothing more
    assert gzip.decompress(httpstan.cache.load_fit("any")) == (
        b'{"version":1,"topic":"sample","values":{"mu":1.0}}\n')
