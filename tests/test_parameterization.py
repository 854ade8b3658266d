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
    # ... and the spread: an sd estimated from ESS effective draws has relative standard error
    # about 1 / sqrt(2 ESS) (near-normal posteriors), so compare the sds on that scale.
    for name in ("mu", "alpha", "phi"):
        sd_c = float(centered.posterior[name].std())
        sd_n = float(non_centered.posterior[name].std())
        ess_c = float(az.ess(centered, var_names=[name])[name])
        ess_n = float(az.ess(non_centered, var_names=[name])[name])
        relative_se = np.sqrt(1 / (2 * ess_c) + 1 / (2 * ess_n))
        assert abs(np.log(sd_c / sd_n)) < Z * relative_se, (name, sd_c, sd_n, relative_se)
