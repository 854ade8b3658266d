"""The vectorised R-hat and ESS against ArviZ, element by element, and in the diagnostics.

The reference is ArviZ's ``az.rhat`` (rank), ``az.ess(method="bulk")`` and
``az.ess(method="tail")`` on each element's (chain, draw) array. The tolerance is relative
1e-8: the two compute the same formulas in a different order of summation (means over a batch,
pair sums of autocorrelations), which moves the last few bits only.
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable

import arviz as az
import numpy as np
import pytest
import xarray as xr

from ratepool.posterior import diagnostics as diagnostics_module
from ratepool.posterior.fast_diagnostics import (
    ess_bulk,
    ess_dataset,
    ess_tail,
    rank_rhat,
    rhat_dataset,
)

RTOL = 1e-8

REFERENCES: dict[str, Callable[[np.ndarray], float]] = {
    "rhat": lambda draws: az.rhat(draws),
    "ess_bulk": lambda draws: az.ess(draws, method="bulk"),
    "ess_tail": lambda draws: az.ess(draws, method="tail"),
}
FAST = {"rhat": rank_rhat, "ess_bulk": ess_bulk, "ess_tail": ess_tail}


def _cases(rng: np.random.Generator, chains: int, draws: int) -> np.ndarray:
    """(chain, draw, element) draws: a column of each kind the diagnostics must get right."""
    shape = (chains, draws)
    steps = rng.normal(size=shape)
    columns = [
        rng.normal(size=shape),                                  # well mixed
        rng.normal(size=shape),
        rng.lognormal(0.0, 1.5, size=shape),                     # skewed
        np.exp(3.0 * rng.normal(size=shape)),                    # very skewed
        np.cumsum(steps, axis=1),                                # random walks: not mixing
        rng.normal(size=shape) + 3.0 * np.arange(chains)[:, None],   # shifted chains
        np.cumsum(rng.normal(size=shape), axis=1) * 0.1 + rng.normal(size=shape),  # sticky
        0.9 ** np.arange(draws) * rng.normal(size=shape),        # shrinking spread
        rng.poisson(2.0, size=shape).astype(float),              # ties
        rng.poisson(0.05, size=shape).astype(float),             # mostly zeros: ties at q95
        rng.integers(0, 2, size=shape).astype(float),            # two values
        np.full(shape, 0.25),                                    # constant
        np.where(np.arange(draws) == 2, np.nan, rng.normal(size=shape)),  # a NaN
        np.repeat(rng.normal(size=(chains, 1)), draws, axis=1),  # each chain constant
        _antithetic(rng, shape),                                 # ESS above S: the cap
        np.tile((-1.0) ** np.arange(draws), (chains, 1)),        # folded constant, bulk not
    ]
    return np.stack(columns, axis=-1)


def _antithetic(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """AR(1) draws with coefficient -0.8: negatively autocorrelated, ESS above the draws."""
    noise = rng.normal(size=shape)
    values = np.empty(shape)
    values[:, 0] = noise[:, 0]
    for t in range(1, shape[1]):
        values[:, t] = -0.8 * values[:, t - 1] + noise[:, t]
    return values


def _reference(name: str, draws: np.ndarray) -> np.ndarray:
    """ArviZ's value for each element of ``draws`` (chain, draw, element), one at a time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.array([float(REFERENCES[name](draws[..., i]))
                         for i in range(draws.shape[-1])])


@pytest.mark.parametrize("name", sorted(FAST))
@pytest.mark.parametrize("chains, draws", [
    (2, 300), (4, 100), (1, 200), (2, 7), (2, 8), (4, 7), (1, 8), (3, 4), (2, 5), (2, 3),
    (2, 51),
])
def test_agrees_with_arviz_element_by_element(name: str, chains: int, draws: int) -> None:
    values = _cases(np.random.default_rng(chains * 1000 + draws), chains, draws)
    expected = _reference(name, values)
    actual = FAST[name](np.moveaxis(values, -1, 0))
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0, equal_nan=True)


def test_the_edge_cases_are_what_arviz_gives() -> None:
    """Pinned so that a change in both at once is seen: constant -> NaN R-hat, ESS = S (split
    draws); NaN draw -> NaN; one chain -> NaN R-hat; fewer than 4 draws -> NaN."""
    values = np.moveaxis(_cases(np.random.default_rng(0), 2, 7), -1, 0)
    constant, with_nan = values[11], values[12]
    assert np.isnan(rank_rhat(constant)) and ess_bulk(constant) == ess_tail(constant) == 12
    assert np.isnan([rank_rhat(with_nan), ess_bulk(with_nan), ess_tail(with_nan)]).all()
    assert np.isnan(rank_rhat(values[:, :1])).all()
    assert np.isfinite(ess_bulk(values[:3, :1])).all()
    assert np.isnan(ess_bulk(values[:, :, :3])).all()


def test_many_elements_across_blocks_and_leading_dims(monkeypatch) -> None:
    """Elements split over several blocks, and a batch of two dims, give the same numbers."""
    from ratepool.posterior import fast_diagnostics

    rng = np.random.default_rng(3)
    values = rng.gamma(0.5, 2.0, size=(2, 3, 37, 2, 60))
    whole = {name: function(values) for name, function in FAST.items()}
    monkeypatch.setattr(fast_diagnostics, "BLOCK_DRAWS", 2 * 60 * 4)
    for name, function in FAST.items():
        blocked = function(values)
        assert blocked.shape == (2, 3, 37)
        np.testing.assert_array_equal(blocked, whole[name])
        element = values[1, 2, 5]
        np.testing.assert_allclose(blocked[1, 2, 5], _reference(name, element[..., None])[0],
                                   rtol=RTOL)


def test_a_nan_element_is_logged(caplog) -> None:
    values = np.moveaxis(_cases(np.random.default_rng(1), 2, 20), -1, 0)
    with caplog.at_level(logging.WARNING, logger="ratepool.posterior.fast_diagnostics"):
        ess_bulk(values)
    assert "1 of 16 elements have a NaN draw" in caplog.text


def test_datasets_are_structured_as_arviz_gives_them() -> None:
    rng = np.random.default_rng(5)
    dataset = xr.Dataset(
        {"mu": (("chain", "draw"), rng.normal(size=(2, 50))),
         "theta": (("chain", "draw", "entity"), rng.gamma(2.0, size=(2, 50, 6))),
         "beta": (("chain", "draw", "covariate", "k"), rng.normal(size=(2, 50, 2, 3)))},
        coords={"chain": [0, 1], "draw": np.arange(50), "entity": list("abcdef"),
                "covariate": ["x1", "x2"], "k": [0, 1, 2]})
    pairs = [(rhat_dataset(dataset), az.rhat(dataset)),
             (ess_dataset(dataset, "bulk"), az.ess(dataset, method="bulk")),
             (ess_dataset(dataset, "tail"), az.ess(dataset, method="tail"))]
    for fast, reference in pairs:
        xr.testing.assert_allclose(fast, reference, rtol=RTOL)
        assert list(fast.data_vars) == list(reference.data_vars)
        for name in reference.data_vars:
            assert fast[name].dims == reference[name].dims
        assert set(fast.coords) == set(reference.coords)
    with pytest.raises(ValueError, match="ess method"):
        ess_dataset(dataset, "mean")


def _as_before(monkeypatch) -> None:
    """The diagnostics module as it was: ArviZ's own rhat and ess."""
    monkeypatch.setattr(diagnostics_module, "rhat_dataset", az.rhat)
    monkeypatch.setattr(diagnostics_module, "ess_dataset",
                        lambda dataset, method: az.ess(dataset, method=method))


def _assert_same(actual: object, expected: object, where: str = "") -> None:
    """Nested dicts and lists equal, floats to `RTOL` (NaN equal to NaN)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), where
        for key in expected:
            _assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=RTOL, nan_ok=True), where
    else:
        assert actual == expected, where


@pytest.mark.parametrize("folder, chains", [("bytes", 2), ("temporal", 2), ("options", 1),
                                            ("base", 1)])
def test_diagnostics_of_real_cmdstan_runs_are_as_before(runs_50abbe5, monkeypatch,
                                                        folder: str, chains: int) -> None:
    """`get_model_diagnostics` of real CmdStan runs (6 significant digits, so with ties; one
    chain gives NaN R-hat) with the vectorised checks equals what ArviZ's gave, and so do the
    per-element checks."""
    from ratepool.engines.cmdstan_csv import read_cmdstan_csv
    from ratepool.posterior.diagnostics import get_model_diagnostics
    from ratepool.workflow.cmdstan_run import fit_result_from_run

    csvs = [f"{folder}/out_{chain}.csv" for chain in range(1, chains + 1)]
    idata = fit_result_from_run(read_cmdstan_csv(csvs), f"{folder}/data.json").idata
    fast_checks = diagnostics_module._checks(idata.posterior)
    after = get_model_diagnostics(idata)
    with monkeypatch.context() as patch:
        _as_before(patch)
        reference_checks = diagnostics_module._checks(idata.posterior)
        before = get_model_diagnostics(idata)
    assert "theta" in fast_checks["r_hat"][0]
    for key, (reference, _) in reference_checks.items():
        xr.testing.assert_allclose(fast_checks[key][0], reference, rtol=RTOL)
    _assert_same(after, before)
