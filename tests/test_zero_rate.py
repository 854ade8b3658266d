"""An entity without events whose rate underflows to 0: its windows' log density is exactly 0
(0 log 0 = 0), not NaN, on the real compiled program, checked against scipy.

In the non-centred parameterisation the rate is theta_raw / alpha; the smallest positive
double (a denormal, which a Gamma(shape < 1) posterior reaches for an entity without events)
divided by alpha = 3 rounds to 0. Before the fix the sufficient path added
0 * log(0) = NaN for that entity, on the grouped path (zero-inflation) as well.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ratepool
from ratepool.engines.cmdstan import find_cmdstan
from ratepool.model.standata import stan_data
from ratepool.model.program import default_program

from .conftest import CMDSTAN_SKIP_REASON, ROOT, engine_params

CONFIG = ratepool.ModelConfig(mu_prior_rate=0.2, alpha_prior_sd=1.5, overdispersion_prior_sd=3.0,
                              parameterization="non_centered")
#: The smallest positive double; divided by alpha = 3 it rounds to exactly 0.
TINY = float(np.nextafter(0.0, 1.0))


def _data() -> ratepool.CountData:
    counts = {"quiet": [0, 0, 0, 0], "busy": [3, 5, 2], "mid": [1, 0, 2, 1, 0]}
    rows = [(label, y) for label, ys in counts.items() for y in ys]
    return ratepool.from_dataframe(pd.DataFrame(rows, columns=["entity", "count"]))


def _scipy_log_density(data: ratepool.CountData, mu: float, alpha: float, phi: float,
                       theta_raw: np.ndarray, pi: float | None) -> float:
    """The density in theta_raw (no Jacobian): priors, Gamma(mu alpha, 1) of theta_raw, and
    NB2(y | theta_raw / alpha, phi) per window, zero-inflated with share pi when given."""
    prior = (stats.expon.logpdf(mu, scale=1 / CONFIG.mu_prior_rate)
             + stats.halfnorm.logpdf(alpha, scale=CONFIG.alpha_prior_sd)
             + stats.halfnorm.logpdf(phi, scale=CONFIG.overdispersion_prior_sd)
             + stats.gamma.logpdf(theta_raw, a=mu * alpha).sum())
    rate = (theta_raw / alpha)[data.entity_index]
    pmf = stats.nbinom.pmf(data.y, n=phi, p=phi / (phi + rate))
    if pi is not None:
        prior += stats.beta.logpdf(pi, 1, 1)
        pmf = np.where(data.y == 0, pi, 0.0) + (1 - pi) * pmf
    return float(prior + np.log(pmf).sum())


@pytest.mark.parametrize("engine_name", engine_params())
@pytest.mark.parametrize("zero_inflation", [False, True], ids=["entity_path", "grouped_path"])
def test_zero_total_entity_with_underflowed_rate_has_finite_exact_density(
        engine_name: str, zero_inflation: bool) -> None:
    data = _data()
    quiet = list(data.labels).index("quiet")
    mu, alpha, phi = 1.5, 3.0, 2.5
    theta_raw = alpha * np.array([1.2, 3.0, 0.9])
    theta_raw[quiet] = TINY
    assert (theta_raw / alpha)[quiet] == 0.0  # the rate the program computes underflows
    params = {"mu": mu, "alpha": alpha, "phi": phi, "theta_raw": theta_raw}
    pi = None
    if zero_inflation:
        pi = 0.3
        params["pi"] = [pi]
    config = CONFIG.replace(zero_inflation=zero_inflation)
    expected = _scipy_log_density(data, mu, alpha, phi, theta_raw, pi)
    assert np.isfinite(expected)
    value = ratepool.get_engine(engine_name).log_density(
        default_program(), stan_data(data, config, obs_predictions=False), params)
    assert value == pytest.approx(expected, rel=1e-10, abs=1e-9)


#: A parenthesised product right before a ternary's '?': how stanc writes `a * b ? x : y`.
PRODUCT_CONDITION = re.compile(r"\([^()?;]*\*[^()?;]*\)\s*\?")
#: A program with the pattern, to show that the check finds it.
CONTROL = """data { int<lower=0, upper=1> a; int<lower=0, upper=1> b; }
parameters { vector[a * b ? 2 : 0] v; }
model { v ~ normal(0, 1); }
"""


def _cpp(stan_file, out_dir) -> str:
    out = out_dir / f"{stan_file.stem}.hpp"
    subprocess.run([str(find_cmdstan() / "bin" / "stanc"), str(stan_file), f"--o={out}"],
                   check=True, capture_output=True, timeout=120)
    return out.read_text()


@pytest.mark.cmdstan
@pytest.mark.skipif(find_cmdstan() is None, reason=CMDSTAN_SKIP_REASON)
@pytest.mark.parametrize("program", ["hierarchical_negbinom", "temporal_negbinom", "bench_bare"])
def test_generated_cpp_uses_no_product_as_a_condition(program: str, tmp_path) -> None:
    """g++ warns "'*' in boolean context" (-Wint-in-bool-context) on every compile when a
    product of ints is a ternary's condition, as `has_bytes * prior_only ? J : 0` was."""
    control = tmp_path / "control.stan"
    control.write_text(CONTROL)
    assert PRODUCT_CONDITION.findall(_cpp(control, tmp_path)) == ["(a * b) ?"]
    assert PRODUCT_CONDITION.findall(_cpp(ROOT / "stan" / f"{program}.stan", tmp_path)) == []
