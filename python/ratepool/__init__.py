"""ratepool: partially pooled event rates per entity, from a hierarchical Gamma–Negative-Binomial
Stan model.

>>> import ratepool
>>> result = ratepool.fit(ratepool.load_counts("data/example_counts.csv"))  # doctest: +SKIP
>>> ratepool.get_model_diagnostics(result.idata)                              # doctest: +SKIP
"""

from __future__ import annotations

import logging
import warnings

with warnings.catch_warnings():
    # ArviZ 0.x announces its 1.0 refactor on import; ratepool pins arviz<1.
    warnings.filterwarnings("ignore", message="ArviZ is undergoing", category=FutureWarning)
    import arviz  # noqa: F401

from .config import ModelConfig
from .dask_source import from_dask
from .data import CountData, from_aggregates, from_dataframe, load_counts
from .diagnostics import get_model_diagnostics
from .duckdb_source import aggregate_file, from_duckdb
from .engines import available_engines, get_engine
from .errors import (
    CompileError,
    ConfigError,
    DataError,
    EngineError,
    EngineNotFoundError,
    MissingDependencyError,
    RatepoolError,
    SamplingError,
)
from .fit import FitResult, fit, sample_prior
from .prior import prior_predictive_check
from .spark_source import from_spark
from .summary import entity_summary

__version__ = "0.1.0"

__all__ = [
    "ModelConfig",
    "CountData",
    "load_counts",
    "from_dataframe",
    "from_aggregates",
    "aggregate_file",
    "from_duckdb",
    "from_dask",
    "from_spark",
    "fit",
    "sample_prior",
    "FitResult",
    "get_model_diagnostics",
    "entity_summary",
    "prior_predictive_check",
    "get_engine",
    "available_engines",
    "RatepoolError",
    "DataError",
    "ConfigError",
    "EngineError",
    "EngineNotFoundError",
    "CompileError",
    "SamplingError",
    "MissingDependencyError",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
