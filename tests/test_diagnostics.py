"""Diagnostics keys and grading at and around every threshold."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from ratepool.diagnostics import (
    GOOD,
    PROBLEM,
    WARNING,
    format_diagnostics,
    get_model_diagnostics,
    grade_divergences,
    grade_ess,
    grade_r_hat,
)


@pytest.mark.parametrize("value, grade", [
    (1.0, GOOD), (1.0099, GOOD), (1.01, WARNING), (1.03, WARNING), (1.05, WARNING),
    (1.0501, PROBLEM), (2.0, PROBLEM), (float("nan"), PROBLEM),
])
def test_r_hat_grades(value: float, grade: str) -> None:
    assert grade_r_hat(value) == grade


@pytest.mark.parametrize("value, grade", [
    (5000, GOOD), (400.5, GOOD), (400, WARNING), (250, WARNING), (100, WARNING),
    (99.9, PROBLEM), (0, PROBLEM), (float("nan"), PROBLEM),
])
def test_ess_grades(value: float, grade: str) -> None:
    assert grade_ess(value) == grade


@pytest.mark.parametrize("value, grade", [
    (0, GOOD), (1, WARNING), (10, WARNING), (11, PROBLEM), (500, PROBLEM),
])
def test_divergence_grades(value: int, grade: str) -> None:
    assert grade_divergences(value) == grade


def _idata(rng: np.random.Generator, *, shift_chain: float = 0.0, divergent: int = 0,
           draws: int = 1000, rho: float = 0.0) -> az.InferenceData:
    """Four chains of AR(1) draws (autocorrelation ``rho``); chain 0 shifted by ``shift_chain``."""
    def chains() -> np.ndarray:
        noise = rng.normal(size=(4, draws))
        values = np.empty_like(noise)
        values[:, 0] = noise[:, 0]
        for t in range(1, draws):
            values[:, t] = rho * values[:, t - 1] + np.sqrt(1 - rho**2) * noise[:, t]
        values[0] += shift_chain
        return values

    diverging = np.zeros((4, draws), dtype=bool)
    diverging.flat[:divergent] = True
    return az.from_dict(posterior={"mu": chains(), "alpha": chains(), "phi": chains()},
                        sample_stats={"diverging": diverging})


def test_keys_and_good_fit() -> None:
    result = get_model_diagnostics(_idata(np.random.default_rng(1)))
    assert set(result) == {"r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences",
                           "converged", "grades", "advice"}
    assert result["converged"] and result["divergences"] == 0
    assert result["grades"] == {"r_hat": GOOD, "ess_bulk": GOOD, "ess_tail": GOOD,
                                "divergences": GOOD}
    assert result["advice"] == []
    # independent check of the reported value against arviz directly
    expected = max(float(az.rhat(_idata(np.random.default_rng(1)))[v]) for v in
                   ("mu", "alpha", "phi"))
    assert result["r_hat_max"] == pytest.approx(expected)


def test_bad_fit_is_graded_and_advised() -> None:
    result = get_model_diagnostics(_idata(np.random.default_rng(2), shift_chain=3.0,
                                          divergent=25, rho=0.97))
    assert not result["converged"]
    assert result["grades"]["r_hat"] == PROBLEM
    assert result["grades"]["divergences"] == PROBLEM
    assert result["grades"]["ess_bulk"] in (WARNING, PROBLEM)
    text = " ".join(result["advice"])
    assert "target_accept" in text and "R-hat" in text and "ESS" in text
    table = format_diagnostics(result)
    assert "Problem" in table and "divergences" in table
