"""The contract every engine meets: compile a program, sample it, evaluate its log density.

Engines return `Draws`: plain numpy arrays shaped (chain, draw, *stan_dims), with sampler
statistics under ArviZ's names, so everything downstream is engine-agnostic.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ratepool.model.program import StanProgram

__all__ = ["Draws", "SamplerSettings", "Engine", "SAMPLE_STAT_NAMES", "shorten", "tail"]

#: Stan's sampler-diagnostic columns and their ArviZ names.
SAMPLE_STAT_NAMES = {
    "lp__": "lp",
    "accept_stat__": "acceptance_rate",
    "stepsize__": "step_size",
    "treedepth__": "tree_depth",
    "n_leapfrog__": "n_steps",
    "divergent__": "diverging",
    "energy__": "energy",
}

#: Lines of engine console output kept for error messages.
CONSOLE_TAIL_LINES = 40


@dataclass(frozen=True)
class SamplerSettings:
    """What to ask the sampler for (the engine-independent subset of CmdStan's arguments)."""

    chains: int
    warmup: int
    draws: int
    adapt_delta: float
    seed: int
    fixed_param: bool = False
    show_progress: bool = False


@dataclass
class Draws:
    """Draws from one run.

    Attributes
    ----------
    variables : dict
        Stan variable name -> array shaped (chain, draw, *dims).
    sample_stats : dict
        ArviZ sample-stat name -> array shaped (chain, draw).
    engine : str
        Name of the engine that produced them.
    console : str
        Tail of the engine's console output (messages from Stan).
    """

    variables: dict[str, np.ndarray]
    sample_stats: dict[str, np.ndarray]
    engine: str
    console: str = ""
    elapsed_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


class Engine(abc.ABC):
    """One way to run the Stan program (CmdStan through cmdstanpy, or PyStan)."""

    name: str = ""

    @abc.abstractmethod
    def compile(self, program: StanProgram) -> bool:
        """Make sure a compiled model exists; return True if this call compiled it."""

    @abc.abstractmethod
    def sample(
        self, program: StanProgram, data: Mapping[str, Any], settings: SamplerSettings
    ) -> Draws:
        """Run NUTS (or the fixed_param sampler) and return the draws."""

    @abc.abstractmethod
    def log_density(
        self,
        program: StanProgram,
        data: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        jacobian: bool = False,
    ) -> float:
        """Log density of the model at constrained parameter values ``params``."""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Versions of the engine's software (Stan, interface), for run records."""


def tail(text: str, lines: int = CONSOLE_TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of ``text``."""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def shorten(message: str, limit: int = 1500) -> str:
    """``message`` cut in the middle to at most ``limit`` characters (engines echo whole data)."""
    if len(message) <= limit:
        return message
    half = limit // 2
    return f"{message[:half]} [... {len(message) - limit} characters cut ...] {message[-half:]}"


def split_sample_stats(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename Stan's ``*__`` columns to ArviZ names, with ``diverging`` as bool."""
    stats = {}
    for stan_name, arviz_name in SAMPLE_STAT_NAMES.items():
        if stan_name in columns:
            values = np.asarray(columns[stan_name])
            if arviz_name == "diverging":
                values = values.astype(bool)
            elif arviz_name in ("tree_depth", "n_steps"):
                values = values.astype(np.int64)
            stats[arviz_name] = values
    return stats
