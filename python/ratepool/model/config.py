"""Model and sampler settings (`ModelConfig`), validated on construction, loadable from TOML."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ratepool.errors import ConfigError

__all__ = ["ModelConfig", "ENGINES", "PARAMETERIZATIONS", "LIKELIHOODS", "SECTIONS",
           "TEMPORAL_MODELS"]

#: The engine names (the one list: `ratepool.engines.get_engine` and the CLI read it).
ENGINES = ("auto", "cmdstan", "pystan")
PARAMETERIZATIONS = ("centered", "non_centered")
LIKELIHOODS = ("sufficient", "observation")
#: Temporal models: None (static rates, the default) or "ar1" (`ratepool.model.temporal`).
TEMPORAL_MODELS = (None, "ar1")
#: When the sampler starts from a data-based estimate (`ratepool.model.warm_start`).
WARM_STARTS = ("auto", "on", "off")

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
    entity_predictions : bool or "auto"
        Per-entity predictive draws drawn in Stan (``y_pred``, ``y_rep_total``,
        ``y_rep_zeros``) and the entity log likelihood ``log_lik_entity``. ``"auto"`` (default)
        draws them in Stan while ``n_entities * n_chains * n_samples`` is at most
        ``max_entity_prediction_values`` (and always with exposure or zero-inflation); above
        it the program skips them and `FitResult.entity_predictive` derives them exactly, on
        demand, from the theta and phi draws (`ratepool.posterior.entity_predictive`).
    max_obs_prediction_values : int
        Size limit (numbers per variable) used when ``obs_predictions`` is ``None``.
    max_entity_prediction_values : int
        Size limit (numbers per variable) used when ``entity_predictions`` is ``"auto"``.
    engine : {"auto", "cmdstan", "pystan"}
        Which Stan interface runs the program.
    zero_inflation : bool
        Zero-inflated likelihood: a share ``pi ~ Beta(1, 1)`` of windows are structural zeros.
    exposure_col : str or None
        Column of each window's exposure, used when the data is read from a file (the model's
        mean count is exposure x theta_i).
    covariates : tuple of str
        Entity covariate columns, used when the data is read from a file
        (``mu_i = mu * exp(x_i' beta)``).
    beta_prior_sd : float
        Scale of the Normal(0, sd) prior on each coefficient of the centred and scaled
        covariates.
    bytes_col : str or None
        Column of the bytes each window moved, used when the data is read from a file: adds
        the bytes factor ``log(b_ij / y_ij) ~ Normal(m_i - v / 2, sqrt(v))``,
        ``v = sigma_w^2 + log1p(expm1(sigma_e^2) / y_ij)``, ``m_i ~ Normal(m0, tau)`` for
        windows with events (`ratepool.model.event_bytes`).
    bytes_m0_prior_mean, bytes_m0_prior_sd : float
        ``m0 ~ Normal(mean, sd)``: the population log mean bytes per event (default
        Normal(8, 5): about 3,000 bytes, 95% within 0.2 bytes and 54 MB per event).
    bytes_tau_prior_sd : float
        ``tau ~ HalfNormal(sd)``: spread of the entities' log mean bytes per event.
    bytes_sigma_w_prior_sd : float
        ``sigma_w ~ HalfNormal(sd)`` (default 1.0): log spread of a window's factor on its
        events' sizes, shared by its events (the spread left in windows of many events).
    bytes_sigma_e_prior_sd : float
        ``sigma_e ~ HalfNormal(sd)`` (default 1.5): log spread of one event's size around its
        window's (the spread that averages out over a window's events). These two replace
        ``bytes_sigma_prior_sd`` (one spread at every count).
    temporal : {None, "ar1"}
        None (default): each entity has one rate. ``"ar1"``: the entity's log rate drifts from
        window to window as a stationary AR(1) around its median rate
        (``stan/temporal_negbinom.stan``, `ratepool.model.temporal`); needs the window column.
    stationary_sd_prior_sd : float
        Scale of the half-normal prior on the AR(1)'s stationary sd ``s`` of the log rate
        (temporal model; default 0.5: a median of 0.34 and 95% below 0.98, so a window's rate
        is within a factor of about 2.7 of the entity's median rate in most windows). It
        replaces ``sigma_prior_sd`` (a prior on the innovation sd, which with rho uniform on
        (-1, 1) gave the stationary variance an infinite prior mean); the innovation sd
        ``sigma = s sqrt(1 - rho^2)`` is still reported.
    warm_start : {"auto", "on", "off"}
        Start the sampler near the posterior with a data-based initial metric
        (`ratepool.model.warm_start`): ``"auto"`` (default) for fits of at least 5,000 entities
        of the base model, where Stan's unit-metric start costs most of the warmup. It changes
        where warmup starts, not the model; the sampler still adapts.
    threads_per_chain : int
        Threads each chain uses (default 1). Above 1 the CmdStan engine builds the program with
        ``STAN_THREADS`` and sums the entity terms of the base model on the sufficient
        statistics (no option, centred) in fixed chunks with ``reduce_sum_static``, one chunk
        per thread at a time: for fits of many entities on a machine with more cores than
        chains. The same model; its sums are rounded differently from the one-pass sum of
        ``threads_per_chain = 1``, and a fit is reproducible for a given seed and thread count.
        Other models run each chain on one thread. The PyStan engine refuses values above 1.
    max_temporal_windows : int
        Largest number of windows (rows) the temporal model accepts; larger inputs are refused
        before compiling (about the 10-minute limit on an idle 2-core machine, and PyStan's
        memory; see the README, "Temporal dynamics").
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
    entity_predictions: bool | str = "auto"
    max_obs_prediction_values: int = 20_000_000
    max_entity_prediction_values: int = 1_000_000
    engine: str = "auto"
    zero_inflation: bool = False
    exposure_col: str | None = None
    covariates: tuple[str, ...] = ()
    beta_prior_sd: float = 1.0
    bytes_col: str | None = None
    bytes_m0_prior_mean: float = 8.0
    bytes_m0_prior_sd: float = 5.0
    bytes_tau_prior_sd: float = 2.0
    bytes_sigma_w_prior_sd: float = 1.0
    bytes_sigma_e_prior_sd: float = 1.5
    temporal: str | None = None
    stationary_sd_prior_sd: float = 0.5
    max_temporal_windows: int = 10_000
    warm_start: str = "auto"
    threads_per_chain: int = 1

    def __post_init__(self) -> None:
        _check_int(self, "n_samples", minimum=1)
        _check_int(self, "n_tune", minimum=0)
        _check_int(self, "n_chains", minimum=1)
        _check_int(self, "threads_per_chain", minimum=1, maximum=1024)
        _check_int(self, "random_seed", minimum=0, maximum=2**31 - 1)
        _check_int(self, "max_obs_prediction_values", minimum=0)
        _check_int(self, "max_entity_prediction_values", minimum=0)
        _check_float(self, "target_accept", open_low=0.0, open_high=1.0)
        for name in ("mu_prior_rate", "alpha_prior_sd", "overdispersion_prior_sd",
                     "beta_prior_sd", "bytes_m0_prior_sd", "bytes_tau_prior_sd",
                     "bytes_sigma_w_prior_sd", "bytes_sigma_e_prior_sd", "stationary_sd_prior_sd"):
            _check_float(self, name, open_low=0.0)
        _check_float(self, "bytes_m0_prior_mean", open_low=-math.inf)
        _check_choice(self, "parameterization", PARAMETERIZATIONS)
        _check_choice(self, "likelihood", LIKELIHOODS)
        _check_choice(self, "engine", ENGINES)
        _check_choice(self, "temporal", TEMPORAL_MODELS)
        _check_choice(self, "warm_start", WARM_STARTS)
        _check_int(self, "max_temporal_windows", minimum=1)
        if self.obs_predictions not in (None, True, False):
            raise ConfigError(
                f"obs_predictions must be true, false or unset (auto), got {self.obs_predictions!r}"
            )
        if not isinstance(self.zero_inflation, bool):
            raise ConfigError(f"zero_inflation must be true or false, got {self.zero_inflation!r}")
        if self.exposure_col is not None and not (isinstance(self.exposure_col, str)
                                                  and self.exposure_col):
            raise ConfigError(f"exposure_col must be a column name, got {self.exposure_col!r}")
        if isinstance(self.covariates, str) or not all(
                isinstance(c, str) and c for c in self.covariates):
            raise ConfigError(f"covariates must be a list of column names, got "
                              f"{self.covariates!r}")
        object.__setattr__(self, "covariates", tuple(self.covariates))
        if self.bytes_col is not None and not (isinstance(self.bytes_col, str)
                                               and self.bytes_col):
            raise ConfigError(f"bytes_col must be a column name, got {self.bytes_col!r}")
        if not (isinstance(self.entity_predictions, bool)
                or (isinstance(self.entity_predictions, str)
                    and self.entity_predictions == "auto")):
            raise ConfigError(
                f"entity_predictions must be true, false or \"auto\", got "
                f"{self.entity_predictions!r}"
            )

    @property
    def total_draws(self) -> int:
        """Post-warmup draws over all chains."""
        return self.n_samples * self.n_chains

    def replace(self, **changes: Any) -> "ModelConfig":
        """Return a copy with ``changes`` applied (validated again)."""
        unknown = set(changes) - set(self.field_names())
        if unknown:
            hints = "".join(f"; {name}{_REMOVED[name]}" for name in sorted(unknown)
                            if name in _REMOVED)
            raise ConfigError(f"unknown config key(s): {sorted(unknown)}{hints}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (keys as in the TOML file)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in ((n, getattr(self, n)) for n in self.field_names())}

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the user-facing settings."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "config") -> "ModelConfig":
        """Build a config from a flat dict or one with [sampling], [priors] and [model] tables.

        Every setting may be given at the top level or in its table (`SECTIONS` says which);
        ``obs_predictions = "auto"`` stands for ``None``, which TOML cannot write.

        Raises
        ------
        ConfigError
            Naming the key (as ``table.key``) for unknown tables and keys, keys in the wrong
            table, keys given twice, and invalid values.
        """
        if not isinstance(values, dict):
            raise ConfigError(
                f"{source}: expected a table of settings, got {type(values).__name__}"
            )
        flat: dict[str, tuple[str, Any]] = {}
        for key, value in values.items():
            if isinstance(value, dict):
                for inner_key, inner_value in value.items():
                    _add_setting(flat, _table_key(key, inner_key, inner_value, source),
                                 inner_value, source)
            else:
                _add_setting(flat, (key, key), value, source)
        for name, (path, value) in flat.items():
            try:  # one key at a time, so that the message names the offending key
                cls(**{name: value})
            except ConfigError as error:
                raise ConfigError(f"{source}: {path} = {value!r}: {error}") from None
            except TypeError:
                raise ConfigError(f"{source}: {path} has an invalid value {value!r}") from None
        return cls(**{name: value for name, (_, value) in flat.items()})

    @classmethod
    def from_toml(cls, path: str | Path) -> "ModelConfig":
        """Read a TOML config file; see `from_dict` for its layout and ``examples/config.toml``."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"config file {path} cannot be read: {error}") from None
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
        return cls.from_dict(values, source=str(path))

    def to_toml(self) -> str:
        """The settings as a TOML document that `from_toml` reads back to an equal config."""
        lines = [f"engine = {_toml_value(self.engine)}"]
        for table, names in SECTIONS.items():
            lines += ["", f"[{table}]"]
            lines += [f"{name} = {_toml_value(getattr(self, name))}" for name in names
                      if name != "engine" and not (getattr(self, name) is None
                                                   and name != "obs_predictions")]
        return "\n".join(lines) + "\n"


#: The TOML tables and the settings each holds (any setting may also stand at the top level).
SECTIONS: dict[str, tuple[str, ...]] = {
    "sampling": ("n_samples", "n_tune", "n_chains", "target_accept", "random_seed", "engine",
                 "warm_start", "threads_per_chain"),
    "priors": ("mu_prior_rate", "alpha_prior_sd", "overdispersion_prior_sd", "beta_prior_sd",
               "bytes_m0_prior_mean", "bytes_m0_prior_sd", "bytes_tau_prior_sd",
               "bytes_sigma_w_prior_sd", "bytes_sigma_e_prior_sd", "stationary_sd_prior_sd"),
    "model": ("parameterization", "likelihood", "obs_predictions", "entity_predictions",
              "max_obs_prediction_values", "max_entity_prediction_values", "zero_inflation",
              "exposure_col", "covariates", "bytes_col", "temporal", "max_temporal_windows"),
}
_TABLE_OF = {name: table for table, names in SECTIONS.items() for name in names}
#: Settings that no longer exist: what replaced them.
_REMOVED = {"bytes_sigma_prior_sd": " (the bytes factor's one spread sigma_b is now two: set "
                                    "bytes_sigma_w_prior_sd and bytes_sigma_e_prior_sd)",
            "sigma_prior_sd": " (the temporal model's prior is now on the stationary sd s of the "
                              "log rate, not on the innovation sd sigma: set "
                              "stationary_sd_prior_sd)"}
#: Removed settings still read at their old default (ignored), so that the config of a run
#: saved before their removal loads; any other value raises, naming the replacement.
_IGNORED_AT_DEFAULT = {"sigma_prior_sd": 0.5}


def _table_key(table: str, key: str, value: Any, source: str) -> tuple[str, str]:
    """(setting name, ``table.key``) for a key inside a table, or raise naming what is wrong."""
    path = f"{table}.{key}"
    if table not in SECTIONS:
        hint = f" (did you mean [{_TABLE_OF[table]}] {table} = ...?)" if table in _TABLE_OF else ""
        raise ConfigError(
            f"{source}: unknown table [{table}]{hint}; the tables are {sorted(SECTIONS)}"
        )
    if isinstance(value, dict):
        raise ConfigError(f"{source}: {path} is a table; settings are single values")
    if key in _IGNORED_AT_DEFAULT and table == "priors":
        return key, path
    if key not in _TABLE_OF:
        raise ConfigError(
            f"{source}: unknown key {path!r}{_REMOVED.get(key, '')}; [{table}] holds "
            f"{list(SECTIONS[table])}"
        )
    if _TABLE_OF[key] != table:
        raise ConfigError(
            f"{source}: {path!r} is in the wrong table; {key} belongs in [{_TABLE_OF[key]}]"
        )
    return key, path


def _add_setting(flat: dict[str, tuple[str, Any]], name_path: tuple[str, str], value: Any,
                 source: str) -> None:
    name, path = name_path
    if name in _IGNORED_AT_DEFAULT:
        if value == _IGNORED_AT_DEFAULT[name] and not isinstance(value, bool):
            return
        raise ConfigError(f"{source}: {path} = {value!r} is no longer a setting"
                          f"{_REMOVED[name]}")
    if name not in _TABLE_OF:
        raise ConfigError(
            f"{source}: unknown key {path!r}{_REMOVED.get(name, '')}; valid keys are "
            f"{sorted(_TABLE_OF)}"
        )
    if name in flat:
        raise ConfigError(f"{source}: {name} is given twice ({flat[name][0]} and {path})")
    if name == "obs_predictions" and value == "auto":
        value = None
    flat[name] = (path, value)


def _toml_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if value is None:
        return '"auto"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


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


def _check_choice(config: ModelConfig, name: str, choices: tuple[str | None, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")
