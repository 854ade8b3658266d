"""The settings of a simulation-based calibration (`ratepool.workflow.sbc`): the prior the
truths are drawn from (`SBCPrior`), the size of each simulated dataset, the sampler and the
model options fitted (`SBCSettings`), and the quantities ranked (`ranked_parameters`)."""

from __future__ import annotations

from dataclasses import dataclass

from ratepool.errors import ConfigError
from ratepool.model.config import ModelConfig
from ratepool.model.description import ModelDescription

__all__ = ["SBCPrior", "SBCSettings", "ranked_parameters"]


@dataclass(frozen=True)
class SBCPrior:
    """Prior scales: ``mu ~ Exponential(mu_rate)``, ``alpha ~ HalfNormal(alpha_sd)``,
    ``phi ~ HalfNormal(phi_sd)``. The defaults are `ModelConfig`'s defaults.
    """

    mu_rate: float = 0.1
    alpha_sd: float = 2.0
    phi_sd: float = 2.0
    beta_sd: float = 1.0

    def __post_init__(self) -> None:
        ModelConfig(mu_prior_rate=self.mu_rate, alpha_prior_sd=self.alpha_sd,
                    overdispersion_prior_sd=self.phi_sd,
                    beta_prior_sd=self.beta_sd)  # raises ConfigError naming the scale


@dataclass(frozen=True)
class SBCSettings:
    """Size of each simulated dataset and of each fit.

    Parameters
    ----------
    n_entities, n_windows : int
        Each dataset has ``n_entities`` entities with ``n_windows`` windows each.
    n_ranked_draws : int
        L, the thinned posterior draws each true value is ranked among (ranks are 0..L).
    n_chains, n_tune, n_samples : int
        Sampler settings of each fit (``n_samples`` per chain, before thinning).
    target_accept : float
        NUTS target acceptance rate.
    parameterization : {"centered", "non_centered"}
        Parameterization of the entity rates.
    n_theta : int
        How many entity rates (the first ones; entities are exchangeable) are ranked.
    exposure : bool
        Model option: each window gets an exposure, log-uniform in [0.25, 4] (a fixed design
        per simulation), and the data are fitted with it.
    n_covariates : int
        Model option: that many entity covariates, Normal(0, 1) per entity (a fixed design per
        simulation); beta ~ Normal(0, beta_sd) on the covariates as ratepool centres and scales
        them, and every beta is ranked.
    zero_inflation : bool
        Model option: pi ~ Beta(1, 1) structural zeros, fitted with the zero-inflated model;
        pi is ranked.
    """

    n_entities: int = 8
    n_windows: int = 6
    n_ranked_draws: int = 99
    n_chains: int = 2
    n_tune: int = 500
    n_samples: int = 1000
    target_accept: float = 0.9
    parameterization: str = "centered"
    n_theta: int = 3
    exposure: bool = False
    n_covariates: int = 0
    zero_inflation: bool = False

    def __post_init__(self) -> None:
        for name, minimum in {"n_entities": 2, "n_windows": 1, "n_ranked_draws": 1,
                              "n_theta": 0, "n_covariates": 0}.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"SBC setting {name} must be an integer >= {minimum}, "
                                  f"got {value!r}")
        if self.n_theta > self.n_entities:
            raise ConfigError(f"SBC setting n_theta ({self.n_theta}) cannot exceed n_entities "
                              f"({self.n_entities})")
        self.model_config(SBCPrior(), seed=0)  # sampler settings: ModelConfig's own checks
        if self.n_chains * self.n_samples < self.n_ranked_draws:
            raise ConfigError(
                f"SBC needs at least n_ranked_draws={self.n_ranked_draws} posterior draws, but "
                f"n_chains x n_samples = {self.n_chains * self.n_samples}; raise n_samples"
            )

    @property
    def model(self) -> ModelDescription:
        """The model each simulation is fitted with (`ratepool.model.description`)."""
        return ModelDescription(
            exposure=self.exposure,
            covariates=tuple(f"x{p + 1}" for p in range(self.n_covariates)),
            zero_inflation=self.zero_inflation)

    def model_config(self, prior: SBCPrior, seed: int) -> ModelConfig:
        """The `ModelConfig` of one fit: these sampler settings with ``prior``'s scales."""
        return ModelConfig(
            n_samples=self.n_samples, n_tune=self.n_tune, n_chains=self.n_chains,
            target_accept=self.target_accept, random_seed=seed,
            mu_prior_rate=float(prior.mu_rate), alpha_prior_sd=float(prior.alpha_sd),
            overdispersion_prior_sd=float(prior.phi_sd),
            parameterization=self.parameterization,  # type: ignore[arg-type]
            obs_predictions=False, entity_predictions=False,
            beta_prior_sd=float(prior.beta_sd), zero_inflation=self.zero_inflation,
        )


def ranked_parameters(settings: SBCSettings) -> list[str]:
    """Names of the ranked quantities: mu, alpha, phi, beta[1..P] and pi with those options,
    theta[1]..theta[n_theta]."""
    model = settings.model
    names: list[str] = []
    for name in model.population_parameters:  # a vector parameter ranked element by element
        names += ([f"beta[{p + 1}]" for p in range(len(model.covariates))] if name == "beta"
                  else [name])
    return names + [f"theta[{i + 1}]" for i in range(settings.n_theta)]
