"""Diagnostics keys and grading at and around every threshold."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from ratepool.posterior.diagnostic_table import diagnostic_rows, format_diagnostics
from ratepool.posterior.diagnostics import (
    GOOD,
    PROBLEM,
    WARNING,
    get_model_diagnostics,
    grade_divergences,
    grade_ebfmi,
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


@pytest.mark.parametrize("value, draws, grade", [
    (0, 4000, GOOD), (1, 4000, WARNING), (4, 4000, WARNING), (5, 4000, PROBLEM),
    (40, 40000, WARNING), (41, 40000, PROBLEM), (1, 400, PROBLEM), (500, 4000, PROBLEM),
])
def test_divergence_grades_are_relative_to_the_draws(value: int, draws: int, grade: str) -> None:
    """At most 0.1% of the post-warmup transitions is a Warning, more is a Problem."""
    assert grade_divergences(value, draws) == grade


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
    # the design document's keys, plus the checks over every parameter (no energy or tree
    # depth recorded here, so no E-BFMI or tree-depth entries)
    assert set(result) == {"r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences",
                           "divergence_share", "converged", "all_parameters", "grades",
                           "advice"}
    assert result["converged"] and result["divergences"] == 0
    assert result["grades"] == {"r_hat": GOOD, "ess_bulk": GOOD, "ess_tail": GOOD,
                                "divergences": GOOD, "r_hat_all": GOOD, "ess_bulk_all": GOOD,
                                "ess_tail_all": GOOD}
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


# ------------------------------------------------------------------------------------------
# Every parameter (theta included), E-BFMI and tree depth


def _full_idata(rng: np.random.Generator, *, stuck_entity: str | None = None,
                sticky_energy_chain: int | None = None, depth_hits: int = 0,
                draws: int = 1000) -> az.InferenceData:
    """mu, alpha, phi and theta[a, b, c] as good independent draws, with sampler statistics.

    ``stuck_entity``: that entity's rate sits at another level in chain 0 (R-hat far above 1.05).
    ``sticky_energy_chain``: that chain's energy is a random walk (E-BFMI near 0; independent
    energies give about 2). ``depth_hits``: that many draws of chain 1 reach tree depth 10.
    """
    labels = ["a", "b", "c"]
    theta = rng.normal(size=(4, draws, 3))
    if stuck_entity is not None:
        theta[0, :, labels.index(stuck_entity)] += 4.0
    energy = rng.normal(size=(4, draws))
    if sticky_energy_chain is not None:
        energy[sticky_energy_chain] = np.cumsum(energy[sticky_energy_chain])
    depth = np.full((4, draws), 3)
    depth[1, :depth_hits] = 10
    return az.from_dict(
        posterior={"mu": rng.normal(size=(4, draws)), "alpha": rng.normal(size=(4, draws)),
                   "phi": rng.normal(size=(4, draws)), "theta": theta},
        sample_stats={"diverging": np.zeros((4, draws), dtype=bool), "energy": energy,
                      "tree_depth": depth},
        coords={"entity": labels}, dims={"theta": ["entity"]})


def _ebfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain from its definition (Betancourt 2016), independent of arviz."""
    return (np.diff(energy, axis=1) ** 2).sum(axis=1) / \
        ((energy - energy.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)


def test_all_parameters_are_graded_and_the_worst_entity_named() -> None:
    idata = _full_idata(np.random.default_rng(5), stuck_entity="b")
    result = get_model_diagnostics(idata)
    # the design document's keys stay over mu, alpha and phi only: those are fine, but one
    # entity's chains disagree, so the fit has not converged
    assert result["grades"]["r_hat"] == GOOD
    assert max(float(az.rhat(idata)[name]) for name in ("mu", "alpha", "phi")) < 1.01
    assert not result["converged"]
    every = result["all_parameters"]
    assert every["r_hat_where"] == "theta[b]"
    assert every["r_hat_max"] == pytest.approx(float(az.rhat(idata)["theta"].sel(entity="b")))
    assert every["r_hat_max"] > 1.05 and result["grades"]["r_hat_all"] == PROBLEM
    assert every["ess_bulk_where"] == "theta[b]"
    assert every["ess_bulk_min"] == pytest.approx(
        float(az.ess(idata, method="bulk")["theta"].sel(entity="b")))
    assert any("theta[b]" in line for line in result["advice"])
    table = format_diagnostics(result)
    assert "theta[b]" in table and "Problem" in table


def test_ebfmi_per_chain_and_tree_depth_hits() -> None:
    idata = _full_idata(np.random.default_rng(6), sticky_energy_chain=2, depth_hits=37)
    result = get_model_diagnostics(idata)
    expected = _ebfmi(idata.sample_stats["energy"].values)
    np.testing.assert_allclose(result["ebfmi"], expected, rtol=1e-10)
    assert expected[2] < 0.3 < expected[[0, 1, 3]].min()
    assert result["grades"]["ebfmi"] == PROBLEM
    assert result["treedepth_hits"] == 37 and result["max_treedepth"] == 10
    assert result["grades"]["treedepth"] == WARNING
    text = " ".join(result["advice"])
    assert "E-BFMI" in text and "chain 3" in text and "tree depth" in text
    table = format_diagnostics(result)
    assert "E-BFMI" in table and "tree depth" in table
    good = get_model_diagnostics(_full_idata(np.random.default_rng(7)))
    assert good["grades"]["ebfmi"] == GOOD and good["grades"]["treedepth"] == GOOD
    assert set(good["grades"].values()) == {GOOD} and good["advice"] == []


@pytest.mark.parametrize("value, grade", [(0.31, GOOD), (0.3, GOOD), (0.299, PROBLEM),
                                          (float("nan"), PROBLEM)])
def test_ebfmi_grades(value: float, grade: str) -> None:
    assert grade_ebfmi([1.2, value]) == grade


def test_formatting_an_old_diagnostics_file_without_the_new_keys() -> None:
    old = {"r_hat_max": 1.002, "ess_bulk_min": 1500.0, "ess_tail_min": 1400.0,
           "divergences": 0, "converged": True,
           "grades": {"r_hat": GOOD, "ess_bulk": GOOD, "ess_tail": GOOD, "divergences": GOOD},
           "advice": []}
    table = format_diagnostics(old)
    assert "1.0020" in table and "1500" in table and "E-BFMI" not in table
    rows = diagnostic_rows(old)
    assert [row.key for row in rows] == ["r_hat", "ess_bulk", "ess_tail", "divergences"]


def test_checks_over_every_parameter_include_the_options_beta_and_pi() -> None:
    """A coefficient whose chains disagree is the worst R-hat, named with its covariate."""
    import arviz as az

    rng = np.random.default_rng(0)
    good = lambda *shape: rng.normal(size=(4, 500, *shape))  # noqa: E731
    beta = good(2)
    beta[0, :, 1] += 3.0  # chain 0 of beta[x2] sits elsewhere
    idata = az.from_dict(
        posterior={"mu": good() + 5, "alpha": good() + 5, "phi": good() + 5, "pi": good(),
                   "beta": beta, "theta": good(3) + 5},
        sample_stats={"diverging": np.zeros((4, 500), dtype=bool)},
        coords={"covariate": ["x1", "x2"], "entity": ["a", "b", "c"]},
        dims={"beta": ["covariate"], "theta": ["entity"]})
    diagnostics = get_model_diagnostics(idata)
    assert diagnostics["all_parameters"]["r_hat_where"] == "beta[x2]"
    assert diagnostics["grades"]["r_hat_all"] == "Problem"
    assert diagnostics["grades"]["r_hat"] == "Good"  # mu, alpha, phi are fine
    assert not diagnostics["converged"]


# ------------------------------------------------------------------------------------------
# converged: every parameter's R-hat and no Problem grade


def _with_divergences(idata: az.InferenceData, count: int) -> az.InferenceData:
    diverging = np.zeros(idata.sample_stats["diverging"].shape, dtype=bool)
    diverging[2, :count] = True
    idata.sample_stats["diverging"] = (("chain", "draw"), diverging)
    return idata


@pytest.mark.parametrize("count, grade, converged", [(0, GOOD, True), (4, WARNING, True),
                                                     (5, PROBLEM, False), (80, PROBLEM, False)])
def test_divergence_share_grades_and_converged(count: int, grade: str, converged: bool) -> None:
    """4 chains x 1000 draws: at most 4 divergences (0.1%) is a Warning, 5 a Problem."""
    idata = _with_divergences(_full_idata(np.random.default_rng(8)), count)
    result = get_model_diagnostics(idata)
    draws = idata.sample_stats["diverging"].size
    assert draws == 4000 and result["divergences"] == count
    assert result["divergence_share"] == pytest.approx(count / draws)
    assert result["grades"]["divergences"] == grade
    assert result["converged"] is converged
    if count:
        assert f"({count / draws:.2%})" in format_diagnostics(result)
        assert any("divergent transitions" in line for line in result["advice"])


def test_converged_needs_ess_and_ebfmi_but_not_tree_depth() -> None:
    rng = np.random.default_rng(9)
    sticky = _full_idata(rng, sticky_energy_chain=1)
    assert _ebfmi(sticky.sample_stats["energy"].values)[1] < 0.3
    assert not get_model_diagnostics(sticky)["converged"]
    slow = _full_idata(rng, depth_hits=500)
    assert get_model_diagnostics(slow)["converged"]  # tree depth is efficiency, not bias
    # one entity's draws nearly frozen: its ESS (arviz on the same array) is below 100
    frozen = _full_idata(rng, draws=400)
    theta = frozen.posterior["theta"].values.copy()
    theta[:, :, 2] = np.repeat(rng.normal(size=(4, 8, 1)), 50, axis=1).reshape(4, 400)
    frozen.posterior["theta"] = (("chain", "draw", "entity"), theta)
    reference = float(az.ess(frozen, method="bulk")["theta"].sel(entity="c"))
    result = get_model_diagnostics(frozen)
    assert reference < 100 and result["all_parameters"]["ess_bulk_min"] == \
        pytest.approx(reference)
    assert result["grades"]["ess_bulk_all"] == PROBLEM and not result["converged"]


def test_converged_on_a_real_cmdstan_run_where_only_an_entity_has_not_mixed(
        runs_50abbe5) -> None:
    """The fixture's bytes run (CmdStan 2.35, 2 chains x 100 draws): mu, alpha and phi have
    R-hat below 1.05 (the old rule said converged), an entity's rate does not. The reference
    is arviz on the CSV's own columns."""
    from ratepool.engines.cmdstan_csv import read_cmdstan_csv
    from ratepool.workflow.cmdstan_run import fit_result_from_run

    run = read_cmdstan_csv(["bytes/out_1.csv", "bytes/out_2.csv"])
    result = fit_result_from_run(run, "bytes/data.json")
    columns = run.draws.variables
    r_hat = {name: az.rhat(np.asarray(columns[name], dtype=float)).item()
             for name in ("mu", "alpha", "phi")}
    theta = np.asarray(columns["theta"], dtype=float)
    theta_r_hat = np.array([az.rhat(theta[..., i]).item() for i in range(theta.shape[-1])])
    worst = int(theta_r_hat.argmax())
    assert max(r_hat.values()) < 1.05 < theta_r_hat[worst]
    diagnostics = result.diagnostics()
    assert diagnostics["r_hat_max"] == pytest.approx(max(r_hat.values()))
    assert diagnostics["all_parameters"]["r_hat_max"] >= theta_r_hat[worst] - 1e-12
    assert diagnostics["grades"]["r_hat_all"] == PROBLEM
    assert diagnostics["converged"] is False
