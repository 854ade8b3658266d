"""The contract every engine meets: compile a program, sample it, evaluate its log density.

Engines return `Draws`: plain numpy arrays shaped (chain, draw, *stan_dims), with sampler
statistics under ArviZ's names, so everything downstream is engine-agnostic.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ratepool.errors import ConfigError
from ratepool.model.program import StanProgram

__all__ = ["Draws", "SamplerSettings", "Engine", "SAMPLE_STAT_NAMES", "shorten", "tail",
           "sampler_messages"]

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
    """What to ask the sampler for (the engine-independent subset of CmdStan's arguments).

    ``inits`` (one dict per chain, constrained values) and ``inv_metric`` (the diagonal of the
    initial inverse metric, unconstrained order) say where warmup starts
    (`ratepool.model.warm_start`); None leaves Stan's defaults. PyStan takes the inits only.
    ``threads_per_chain`` above 1 runs a build with ``STAN_THREADS`` (CmdStan only).
    """

    chains: int
    warmup: int
    draws: int
    adapt_delta: float
    seed: int
    fixed_param: bool = False
    show_progress: bool = False
    inits: tuple[Mapping[str, Any], ...] | None = None
    inv_metric: tuple[float, ...] | None = None
    threads_per_chain: int = 1


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
    #: Whether the engine runs a chain on several threads (``threads_per_chain`` above 1).
    runs_threads: bool = False

    def check_threads(self, threads_per_chain: int) -> None:
        """Raise `ConfigError` if this engine cannot run ``threads_per_chain`` threads per chain."""
        if threads_per_chain > 1 and not self.runs_threads:
            raise ConfigError(
                f"threads_per_chain = {threads_per_chain} needs the CmdStan engine: the {self.name} "
                "engine runs each chain on one thread (PyStan's httpstan sets no thread count per "
                "chain). Set threads_per_chain = 1, or engine = \"cmdstan\" with CmdStan installed"
            )

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


#: A Stan program's path as Stan quotes it in a message: ``(in '/tmp/.../model.stan', line 3``.
_QUOTED_PROGRAM = re.compile(r"'[^'\n]*\.stan'")
#: A line naming a file in a run's temporary folder (gone once the run ends): CmdStan's echo of
#: its arguments (``file = /tmp/ratepool-cmdstan-.../data.json``), httpstan's build folders.
_TEMP_PATH_LINE = re.compile(r"^.*(ratepool-(cmdstan|pystan)-|httpstan_)[^\n]*\n?", re.M)


def sampler_messages(console: str, program: StanProgram) -> str:
    """The sampler's own messages (e.g. Stan's "the Metropolis proposal is about to be rejected"),
    with the temporary copy of the program they quote replaced by the program's name, and the
    lines that name files of the run's temporary folders (gone after the run) left out."""
    named = _QUOTED_PROGRAM.sub(f"'{program.path.name}'", console)
    return _TEMP_PATH_LINE.sub("", named).strip()
