"""The fit does not depend on the exposure unit (issue 17, item 3): the programs see exposure
divided by a typical window's (`ratepool.model.standata.exposure_scale`) and the rates are
reported per the user's unit."""

from __future__ import annotations

import numpy as np
import pytest

import ratepool
from ratepool.model.simulate import simulate_counts
from ratepool.model.standata import exposure_scale, stan_data

from .conftest import engine_params

CONFIG = ratepool.ModelConfig(n_samples=300, n_tune=300, n_chains=2)


def _data(sim, unit: float = 1.0, **kwargs) -> ratepool.CountData:
    frame = sim.frame.assign(exposure=sim.frame["exposure"] * unit)
    return ratepool.from_dataframe(frame, entity_col="entity", count_col="count",
                                   exposure_col="exposure", **kwargs)


@pytest.fixture(scope="module")
def persons():
    """Yearly counts per county-like entity: populations 1e3-1e6 persons, 2 events per 10,000
    persons a year, entity rates with a CV of 0.5 (alpha = 4 / mu = 20,000 per person)."""
    mu = 2e-4
    return simulate_counts(n_entities=60, windows=8, mu=mu, alpha=4 / mu, phi=20.0, seed=5,
                           exposure=(1e3, 1e6))


def test_the_scale_is_a_power_of_two_near_the_median_window(persons) -> None:
    data = _data(persons)
    scale = exposure_scale(data)
    assert np.log2(scale) == round(np.log2(scale))
    assert 2 ** -0.5 <= np.median(data.exposure) / scale <= 2 ** 0.5
    values = stan_data(data, CONFIG)
    assert values["exposure_scale"] == scale
    assert np.array_equal(np.asarray(values["exposure"]) * scale, data.exposure)  # exact
    plain = ratepool.from_dataframe(persons.frame, entity_col="entity", count_col="count")
    assert exposure_scale(plain) == 1.0 and "exposure_scale" not in stan_data(plain, CONFIG)


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_the_truth_in_persons_is_recovered(engine: str, persons) -> None:
    """Against the simulation's true values per person: mu and alpha inside their 99%
    intervals. Before the exposure scale, alpha ~ HalfNormal(2) per person could not reach
    20,000 (the prior fought the data, as on the real county panel)."""
    post = ratepool.fit(_data(persons), CONFIG, engine=engine).idata.posterior
    for name, truth in (("mu", persons.mu), ("alpha", persons.alpha)):
        low, high = np.quantile(post[name].values, [0.005, 0.995])
        assert low < truth < high, (name, low, truth, high)


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_exposure_in_another_unit_scales_the_rates_and_nothing_else(engine: str,
                                                                    persons) -> None:
    """Exposure x 64 (a power of 2: the programs see identical data, so the draws are the same
    numbers, exactly scaled) and x 100 (different data to the sampler: the same posterior
    within Monte Carlo error, 4 MCSE of the difference), with zero-inflation on."""
    import arviz as az

    config = CONFIG.replace(zero_inflation=True)
    fits = {unit: ratepool.fit(_data(persons, unit), config, engine=engine).idata.posterior
            for unit in (1.0, 64.0, 100.0)}
    base = fits[1.0]
    for name, power in (("mu", -1), ("theta", -1), ("theta_new", -1), ("alpha", 1),
                        ("phi", 0), ("pi", 0)):
        np.testing.assert_allclose(fits[64.0][name].values, base[name].values * 64.0 ** power,
                                   rtol=1e-9, err_msg=name)
        other = fits[100.0][name] * 100.0 ** -power
        diff = abs(float(other.mean()) - float(base[name].mean()))
        mcse = np.hypot(float(az.mcse(other).to_array().max()),
                        float(az.mcse(base[name]).to_array().max()))
        if name != "theta":
            assert diff < 4 * mcse, name
    theta = {u: fits[u]["theta"].mean(("chain", "draw")).values * u for u in (1.0, 100.0)}
    mcse = np.hypot(az.mcse(fits[1.0]["theta"])["theta"].values,
                    az.mcse(fits[100.0]["theta"] * 100.0)["theta"].values)
    assert np.mean(np.abs(theta[100.0] - theta[1.0]) < 4 * mcse) >= 0.95


@pytest.mark.cmdstan
def test_cmdstan_reads_the_exported_json_and_the_read_back_is_per_the_users_unit(
        tmp_path, persons) -> None:
    """export-data records the scale; CmdStan itself runs the JSON (it ignores the field);
    'report --from-cmdstan-csv' gives mu / scale and alpha x scale of the CSV's columns."""
    from ratepool.engines.cmdstan import find_cmdstan

    if find_cmdstan() is None:
        pytest.skip("CmdStan is not installed")
    import arviz as az
    import cmdstanpy

    from ratepool.cli import main
    from ratepool.model.program import default_program

    source = tmp_path / "persons.csv"
    persons.frame.to_csv(source, index=False)
    data_json = tmp_path / "data.json"
    assert main(["export-data", str(source), "--exposure-col", "exposure", "-o",
                 str(data_json)]) == 0
    scale = exposure_scale(_data(persons))
    engine = ratepool.get_engine("cmdstan")
    program = default_program()
    engine.compile(program)
    run = cmdstanpy.CmdStanModel(exe_file=str(engine._exe_path(program))).sample(
        data=str(data_json), chains=1, iter_warmup=200, iter_sampling=100, seed=3,
        output_dir=str(tmp_path), show_progress=False)
    out = tmp_path / "results"
    assert main(["report", "--from-cmdstan-csv", *map(str, run.runset.csv_files), "--data",
                 str(data_json), "--out", str(out), "--quiet"]) == 0
    posterior = az.from_netcdf(out / "inference_data.nc").posterior
    np.testing.assert_allclose(posterior["mu"].values.ravel(), run.stan_variable("mu") / scale,
                               rtol=1e-12)
    np.testing.assert_allclose(posterior["alpha"].values.ravel(),
                               run.stan_variable("alpha") * scale, rtol=1e-12)
