"""End-to-end: the example data fits on every available engine with the package's structure."""

from __future__ import annotations

import numpy as np
import pytest

import ratepool

from .conftest import engine_params

SMALL = ratepool.ModelConfig(n_samples=300, n_tune=300, n_chains=2)


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_example_fit_structure(engine: str, example_data: ratepool.CountData) -> None:
    result = ratepool.fit(example_data, SMALL, engine=engine, prior_draws=100)
    idata = result.idata
    for group in ("posterior", "posterior_predictive", "log_likelihood", "sample_stats",
                  "observed_data", "constant_data", "prior", "prior_predictive"):
        assert group in idata.groups(), group
    assert list(idata.posterior["theta"].dims) == ["chain", "draw", "entity"]
    assert list(idata.posterior["entity"].values) == list(example_data.labels)
    assert idata.posterior_predictive["y_rep"].dtype == np.int64
    assert idata.posterior_predictive["y_rep"].shape == (2, 300, example_data.n_windows_total)
    assert idata.prior["mu"].shape == (1, 100)
    # leave-one-entity-out log likelihood: the rows' pointwise values summed per entity
    log_lik = idata.log_likelihood
    by_entity = log_lik["entity_windows"].values
    rows = log_lik["y"].values
    for i in (0, 17, example_data.n_entities - 1):
        mask = example_data.entity_index == i
        np.testing.assert_allclose(by_entity[..., i], rows[..., mask].sum(axis=-1))
    assert list(log_lik["entity_windows"].dims) == ["chain", "draw", "entity"]
    diagnostics = result.diagnostics()
    assert diagnostics["converged"]
    table = result.entity_summary()
    assert list(table.index) == list(example_data.labels)
