"""Model and sampler settings (`ModelConfig`), validated on construction, loadable from TOML."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["ModelConfig", "ENGINES", "PARAMETERIZATIONS", "LIKELIHOODS"]

ENGINES = ("auto", "cmdstan", "pystan")
PARAMETERIZATIONS = ("centered", "non_centered")
LIKELIHOODS = ("sufficient", "observation")

Parameterization = Literal["centered", "non_centered"]
Likelihood = Literal["sufficient", "observation"]


@dataclass(frozen=True)
class ModelConfig:
    """Priors, sampler settings and model switches for one fit.

    Parameters
    ----------
    n_samples : int
        Post-warmup draws per chain.
    n_tune : int
        Warmup (adaptation) iterations per chain.
    n_chains : int
        Number of independent chains.
    target_accept : float
        NUTS target acceptance rate (Stan's ``adapt delta``), strictly between 0 and 1.
    random_seed : int
        Seed for the sampler's random number generator (non-negative, below 2**31).
    mu_prior_rate : float
        Rate of the Exponential prior on the population mean rate ``mu``.
    alpha_prior_sd : float
        Scale of the half-normal prior on the concentration ``alpha``.
    overdispersion_prior_sd : float
        Scale of the half-normal prior on the overdispersion ``phi``.
    parameterization : {"centered", "non_centered"}
        How the entity rates are sampled; both are the same model.
    likelihood : {"sufficient", "observation"}
        Likelihood from per-entity sufficient statistics (fast, default) or one term per
        observation (reference path; needs the raw rows).
    obs_predictions : bool or None
        Per-observation ``y_rep`` and ``log_lik``. ``None`` (default) turns them on when the raw
        rows are available and ``n_obs * n_chains * n_samples`` is at most
        ``max_obs_prediction_values``.
    entity_predictions : bool
        Per-entity predictive counts, totals, zero counts and entity log likelihood.
    max_obs_prediction_values : int
        Size limit (numbers per variable) used when ``obs_predictions`` is ``None``.
    engine : {"auto", "cmdstan", "pystan"}
        Which Stan interface runs the program.
    """

    n_samples: int = 2000
    n_tune: int = 1000
    n_chains: int = 4
    target_accept: float = 0.9
    random_seed: int = 42
    mu_prior_rate: float = 0.1
    alpha_prior_sd: float = 2.0
    overdispersion_prior_sd: float = 2.0
    parameterization: Parameterization = "centered"
    likelihood: Likelihood = "sufficient"
    obs_predictions: bool | None = None
    entity_predictions: bool = True
    max_obs_prediction_values: int = 20_000_000
    engine: str = "auto"

    def __post_init__(self) -> None:
        _check_int(self, "n_samples", minimum=1)
        _check_int(self, "n_tune", minimum=0)
        _check_int(self, "n_chains", minimum=1)
        _check_int(self, "random_seed", minimum=0, maximum=2**31 - 1)
        _check_int(self, "max_obs_prediction_values", minimum=0)
        _check_float(self, "target_accept", open_low=0.0, open_high=1.0)
        for name in ("mu_prior_rate", "alpha_prior_sd", "overdispersion_prior_sd"):
            _check_float(self, name, open_low=0.0)
        _check_choice(self, "parameterization", PARAMETERIZATIONS)
        _check_choice(self, "likelihood", LIKELIHOODS)
        _check_choice(self, "engine", ENGINES)
        if self.obs_predictions not in (None, True, False):
            raise ConfigError(
                f"obs_predictions must be true, false or unset (auto), got {self.obs_predictions!r}"
            )
        if not isinstance(self.entity_predictions, bool):
            raise ConfigError(
                f"entity_predictions must be true or false, got {self.entity_predictions!r}"
            )

    @property
    def total_draws(self) -> int:
        """Post-warmup draws over all chains."""
        return self.n_samples * self.n_chains

    def replace(self, **changes: Any) -> "ModelConfig":
        """Return a copy with ``changes`` applied (validated again)."""
        unknown = set(changes) - set(self.field_names())
        if unknown:
            raise ConfigError(f"unknown config key(s): {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (keys as in the TOML file)."""
        return {name: getattr(self, name) for name in self.field_names()}

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the user-facing settings."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> "ModelConfig":
        """Build a config from a flat dict, or one with ``[sampling]``/``[priors]``/``[model]`` tables.

        Raises
        ------
        ConfigError
            For unknown keys (named, with the valid ones) and invalid values.
        """
        flat: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, dict):
                for inner_key, inner_value in value.items():
                    flat[inner_key] = (f"{key}.{inner_key}", inner_value)
            else:
                flat[key] = (key, value)
        valid = set(cls.field_names())
        unknown = sorted(path for name, (path, _) in flat.items() if name not in valid)
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {unknown}; valid keys are {sorted(valid)}"
            )
        try:
            return cls(**{name: value for name, (_, value) in flat.items()})
        except ConfigError as error:
            raise ConfigError(f"{source}: {error}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> "ModelConfig":
        """Read a TOML config file; see `from_dict` for its layout."""
        path = Path(path)
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
        return cls.from_dict(values, source=str(path))


def _check_int(config: ModelConfig, name: str, *, minimum: int, maximum: int | None = None) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(f"{name} must be {bound}, got {value}")


def _check_float(
    config: ModelConfig, name: str, *, open_low: float, open_high: float | None = None
) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value <= open_low or (open_high is not None and value >= open_high):
        bound = f"> {open_low}" if open_high is None else f"strictly between {open_low} and {open_high}"
        raise ConfigError(f"{name} must be {bound}, got {value}")


def _check_choice(config: ModelConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")
