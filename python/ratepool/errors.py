"""The package's exceptions: one base class, a few specific subclasses."""

from __future__ import annotations

__all__ = [
    "RatepoolError",
    "DataError",
    "ConfigError",
    "EngineError",
    "EngineNotFoundError",
    "CompileError",
    "SamplingError",
    "MissingDependencyError",
]


class RatepoolError(Exception):
    """Base class of every error raised by ratepool itself."""


class DataError(RatepoolError, ValueError):
    """The input data cannot be fitted as given; the message names the column, rows and fix."""


class ConfigError(RatepoolError, ValueError):
    """A configuration value (or config-file key) is invalid; the message names it."""


class EngineError(RatepoolError):
    """A Stan engine failed; the message carries the engine's own words."""


class EngineNotFoundError(EngineError):
    """The requested engine is not installed or cannot be located."""


class CompileError(EngineError):
    """The Stan program did not compile; the message carries stanc's or the compiler's output."""


class SamplingError(EngineError):
    """The sampler failed (e.g. initialisation); the message carries the engine's output tail."""


class MissingDependencyError(RatepoolError, ImportError):
    """An optional package (an extra such as ``ratepool[dask]``) is needed but not installed."""
