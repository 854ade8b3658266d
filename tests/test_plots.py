"""Figures (drawn by ArviZ where it can) and the report's diagnostics and prior sections.

No sampling: synthetic draws of the right shapes (see ``test_results.synthetic_result``).
"""

from __future__ import annotations

import math

import numpy as np

from ratepool.model.config import ModelConfig
from ratepool.model.prior import prior_predictive_check
from ratepool.outputs import plots
from ratepool.outputs.report import render_report
from ratepool.outputs.results import population_summary
from ratepool.posterior.diagnostics import THRESHOLDS

from .test_results import record_for, synthetic_result


def _texts(figure) -> list[str]:
    return [text.get_text() for axis in figure.axes for text in
            [*axis.get_legend().get_texts(), axis.title]] if figure.axes else []


def test_prior_figure_shows_both_ranges_and_leaves_the_draws_alone() -> None:
    result = synthetic_result(["b", "a", "c"], prior=True)
    before = result.idata.prior_predictive["y_pred"].values.copy()
    check = prior_predictive_check(result.idata, result.data)
    figure = plots.prior_check_figure(result.idata, check, result.data.y)
    texts = " ".join(_texts(figure))
    assert f"0-50: {check['share_0_50']:.1%}" in texts
    low, high = int(result.data.y.min()), int(result.data.y.max())
    assert f"observed range {low}-{high}: {check['share_observed_range']:.1%}" in texts
    # arviz.plot_ecdf sorts its input in place: the draws must not be reordered
    np.testing.assert_array_equal(result.idata.prior_predictive["y_pred"].values, before)
    assert plots.png_bytes(figure)[:4] == b"\x89PNG"


def test_entity_forest_is_sorted_with_raw_rates_at_each_entity() -> None:
    result = synthetic_result(["b", "a", "c", "d"])
    summary = result.entity_summary()
    figure = plots.entity_rates_figure(result.idata, summary)
    axis = figure.axes[0]
    order = summary.sort_values("theta_mean", ascending=False).index
    labels = [t.get_text() for t in axis.get_yticklabels()]
    assert labels == [f"{label} (n={summary.loc[label, 'n_windows']})" for label in order]
    raw = next(line for line in axis.get_lines() if line.get_label().startswith("raw rate"))
    np.testing.assert_allclose(raw.get_xdata(), summary.loc[order, "raw_rate"])
    np.testing.assert_allclose(raw.get_ydata(), np.sort(axis.get_yticks())[::-1])


def test_posterior_figure_overlays_the_prior_density() -> None:
    result = synthetic_result(["b", "a", "c"])
    config = ModelConfig(alpha_prior_sd=1.5)
    figure = plots.posterior_figure(result.idata, config)
    prior = next(line for line in figure.axes[1].get_lines() if line.get_label() == "prior")
    x = np.asarray(prior.get_xdata())
    half_normal = 2 / (1.5 * math.sqrt(2 * math.pi)) * np.exp(-0.5 * (x / 1.5) ** 2)
    np.testing.assert_allclose(prior.get_ydata(), half_normal, rtol=1e-12)


def test_fit_figures_are_all_drawn() -> None:
    result = synthetic_result(["b", "a", "c"], prior=True)
    images = plots.fit_figures(result.idata, result.data, result.entity_summary(),
                               result.config)
    assert set(images) == set(plots.PLOT_FILES.values()) - {plots.PLOT_FILES["coefficients"]}
    assert all(png[:4] == b"\x89PNG" for png in images.values())


def test_coefficient_forest_plot_shows_rate_ratios_per_original_unit() -> None:
    """The plotted medians are exp(beta / scale): the rate ratio per unit on the covariate's
    own scale (here a scale of 2: beta = log 4 per sd is a ratio of 2 per unit)."""
    import arviz as az

    from ratepool.data.covariates import EntityCovariates

    covariates = EntityCovariates(("x",), np.zeros((3, 1)), np.zeros(1), np.array([2.0]), {},
                                  ("x",))
    beta = np.full((2, 50, 1), np.log(4.0)) + np.linspace(-0.01, 0.01, 100).reshape(2, 50, 1)
    idata = az.from_dict(posterior={"beta": beta}, coords={"covariate": ["x"]},
                         dims={"beta": ["covariate"]})
    data = type("Data", (), {"covariates": covariates})()
    figure = plots.coefficients_figure(idata, data)
    axis = figure.axes[0]
    points = [line.get_xdata() for line in axis.get_lines() if len(line.get_xdata()) == 1]
    assert any(abs(float(x[0]) - 2.0) < 0.02 for x in points)
    assert axis.get_xscale() == "log"


def test_report_shows_every_graded_check_and_both_prior_shares() -> None:
    result = synthetic_result(["b", "a", "c"], prior=True)
    diagnostics = result.diagnostics()
    check = prior_predictive_check(result.idata, result.data)
    html = render_report(title="t", diagnostics=diagnostics,
                         population=population_summary(result.idata),
                         entities=result.entity_summary(), run=record_for(result), images={},
                         prior_check=check)
    every = diagnostics["all_parameters"]
    assert "max R-hat, all" in html and every["r_hat_where"] in html
    assert f"{every['ess_tail_min']:.0f}" in html
    for key in ("r_hat", "ess", "divergences"):  # the thresholds diagnostics.py grades by
        text = THRESHOLDS[key]
        assert text.replace("<", "&lt;").replace(">", "&gt;") in html
    assert f"{check['share_0_50']:.1%} lie in 0-50" in html
    assert f"{check['share_observed_range']:.1%} in the data&#x27;s observed range" in html
