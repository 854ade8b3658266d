"""Centred and non-centred parameterisations are the same model: same posterior within
Monte Carlo error (difference of means within 4 combined Monte Carlo standard errors)."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

import ratepool
from ratepool.model.simulate import simulate_counts

#: z bound on the difference of two independent Monte Carlo estimates of the same mean.
Z = 4.0


def _mean_and_mcse(idata, name: str) -> tuple[np.ndarray, np.ndarray]:
    draws = idata.posterior[name]
    return (draws.mean(("chain", "draw")).values,
            az.mcse(idata, var_names=[name], method="mean")[name].values)


@pytest.mark.slow
def test_centered_and_non_centered_agree() -> None:
    simulated = simulate_counts(n_entities=30, windows=(3, 12), mu=2.0, alpha=0.3, phi=2.0,
                                seed=7)
    data = ratepool.from_dataframe(simulated.frame)
    base = ratepool.ModelConfig(n_samples=2000, n_tune=1000)
    centered = ratepool.fit(data, base, engine="pystan").idata
    non_centered = ratepool.fit(
        data, base.replace(parameterization="non_centered", random_seed=43), engine="pystan"
    ).idata
    for name in ("mu", "alpha", "phi", "theta"):
        mean_c, se_c = _mean_and_mcse(centered, name)
        mean_n, se_n = _mean_and_mcse(non_centered, name)
        z = np.abs(mean_c - mean_n) / np.sqrt(se_c**2 + se_n**2)
        # theta has 30 comparisons: allow for the multiplicity with the same bound (P < 2e-3).
        assert np.all(z < Z), (name, np.max(z))
    # ... and the spread: the variance estimated from draws has relative variance
    # (kurtosis - 1) / ESS of the squared deviations (2 / ESS for a normal posterior; phi's and
    # alpha's are skewed and heavier-tailed), so log sd has standard error
    # sqrt((kurtosis - 1) / (4 ESS)); compare the sds on that scale.
    for name in ("mu", "alpha", "phi"):
        sd_c, var_c = _sd_and_log_sd_variance(centered, name)
        sd_n, var_n = _sd_and_log_sd_variance(non_centered, name)
        log_sd_se = np.sqrt(var_c + var_n)
        assert abs(np.log(sd_c / sd_n)) < Z * log_sd_se, (name, sd_c, sd_n, log_sd_se)


def _sd_and_log_sd_variance(idata, name: str) -> tuple[float, float]:
    """The posterior sd of ``name`` and the Monte Carlo variance of its log: (kurtosis - 1) /
    (4 ESS), the ESS being that of the squared deviations (the draws' own autocorrelation)."""
    draws = idata.posterior[name].values  # (chain, draw)
    deviation = draws - draws.mean()
    variance = float(np.mean(deviation**2))
    kurtosis = float(np.mean(deviation**4)) / variance**2
    ess = float(az.ess(deviation**2))
    return float(np.sqrt(variance)), (kurtosis - 1) / (4 * ess)
