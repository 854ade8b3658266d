"""The model description (`ratepool.model.description`): one object per model, built the same
from a fit's data and config, from a CmdStan data JSON and from an InferenceData; the outputs
it names are exactly those real CmdStan runs of each program wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ratepool.engines.cmdstan_csv import read_cmdstan_csv
from ratepool.model.config import ModelConfig
from ratepool.model.description import (
    CHECKED_PARAMETERS,
    POPULATION_PARAMETERS,
    ModelDescription,
    describe,
    describe_config,
    describe_inference_data,
    describe_stan_data,
)
from ratepool.workflow.cmdstan_run import fit_result_from_run

#: The real CmdStan runs (`conftest.CMDSTAN_RUNS`) and the options each was fitted with.
RUN_OPTIONS = {"base": (), "options": ("exposure", "covariates", "zero-inflation"),
               "bytes": ("bytes",), "temporal": ("temporal",)}


@pytest.mark.parametrize("run", list(RUN_OPTIONS))
def test_every_description_of_a_real_run_is_the_same_model(runs_50abbe5: Path,
                                                           run: str) -> None:
    values = json.loads((runs_50abbe5 / run / "data.json").read_text())
    cmdstan = read_cmdstan_csv(sorted((runs_50abbe5 / run).glob("out_*.csv")))
    result = fit_result_from_run(cmdstan, runs_50abbe5 / run / "data.json")
    from_json = describe_stan_data(values)
    from_fit = describe(result.data, result.config)
    from_idata = describe_inference_data(result.idata)
    assert from_json.options == from_fit.options == from_idata.options == RUN_OPTIONS[run]
    assert from_fit == from_idata == result.model  # covariates by their encoded names
    assert len(from_json.covariates) == len(from_fit.covariates)
    assert describe_config(result.config).options == RUN_OPTIONS[run]
    # What the description says the program writes is what CmdStan wrote, name and size.
    written = {name: tuple(draws.shape[2:]) for name, draws in cmdstan.draws.variables.items()
               if name != "lprior"}
    assert from_json.outputs(values) == written
    # Every population-level parameter it names is in the posterior, and no other one is.
    posterior = set(result.idata.posterior.data_vars)
    assert set(from_fit.population_parameters) == posterior & set(POPULATION_PARAMETERS)
    assert set(from_fit.checked_parameters) == posterior & set(CHECKED_PARAMETERS)


def test_an_inference_data_without_the_record_is_described_by_its_variables(
        runs_50abbe5: Path) -> None:
    """A results file from before the description was recorded still says its model."""
    cmdstan = read_cmdstan_csv(sorted((runs_50abbe5 / "options").glob("out_*.csv")))
    result = fit_result_from_run(cmdstan, runs_50abbe5 / "options" / "data.json")
    del result.idata.constant_data.attrs["ratepool_model"]
    assert describe_inference_data(result.idata) == result.model


def test_what_follows_from_the_options() -> None:
    base = ModelDescription()
    assert base.is_base and base.options == () and base.tables == ()
    assert base.population_parameters == ("mu", "alpha", "phi")
    assert base.checked_parameters == ("mu", "alpha", "phi", "theta")
    assert base.entity_law_closed_form and base.warm_startable and not base.export_keeps_rows
    assert base.rows_reason is None and base.program_file == "hierarchical_negbinom.stan"
    every = ModelDescription(exposure=True, covariates=("x1",), zero_inflation=True,
                             bytes=True)
    assert every.options == ("exposure", "covariates", "zero-inflation", "bytes")
    assert every.tables == ("coefficients", "bytes")
    assert every.population_parameters == ("mu", "alpha", "phi", "beta", "pi", "m0", "tau",
                                           "sigma_w", "sigma_e")
    assert "m" in every.checked_parameters and "m" not in every.population_parameters
    assert not every.entity_law_closed_form and not every.warm_startable
    assert every.export_keeps_rows and "bytes" in every.rows_reason
    temporal = describe_config(ModelConfig(temporal="ar1"))
    assert temporal.program_file == "temporal_negbinom.stan" and temporal.tables == ("temporal",)
    assert not temporal.entity_marginal_likelihood and "temporal" in temporal.rows_reason
    assert temporal.population_parameters == ("mu", "alpha", "phi", "rho", "s", "sigma")
