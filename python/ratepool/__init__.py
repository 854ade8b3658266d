"""ratepool: partially pooled event rates per entity, from a hierarchical Gamma–Negative-Binomial
Stan model.

>>> import ratepool
>>> result = ratepool.fit(ratepool.load_counts("data/example_counts.csv"))  # doctest: +SKIP
>>> ratepool.get_model_diagnostics(result.idata)                              # doctest: +SKIP

The public names load on first use (PEP 562), so ``import ratepool`` is cheap: the ``ratepool``
command installs its Ctrl-C handler before arviz, pandas and the engines are imported.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the submodule defining it.
_SOURCES = {
    "ModelConfig": "model.config",
    "CountData": "data.counts",
    "load_counts": "data.tables",
    "from_dataframe": "data.frame",
    "from_aggregates": "data.frame",
    "aggregate_file": "data.duckdb_source",
    "from_duckdb": "data.duckdb_source",
    "from_dask": "data.dask_source",
    "from_spark": "data.spark_source",
    "fit": "workflow.fit",
    "sample_prior": "workflow.fit",
    "compare": "workflow.compare",
    "fit_scaled": "workflow.scale_out",
    "ScaledFit": "workflow.scale_out",
    "ComparisonResult": "posterior.model_comparison",
    "FitResult": "posterior.fit_result",
    "get_model_diagnostics": "posterior.diagnostics",
    "entity_summary": "posterior.summary",
    "prior_predictive_check": "model.prior",
    "get_engine": "engines",
    "available_engines": "engines",
    "RatepoolError": "errors",
    "DataError": "errors",
    "ConfigError": "errors",
    "EngineError": "errors",
    "EngineNotFoundError": "errors",
    "CompileError": "errors",
    "SamplingError": "errors",
    "MissingDependencyError": "errors",
}

__all__ = [*_SOURCES, "__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from ratepool.data.counts import CountData
    from ratepool.data.dask_source import from_dask
    from ratepool.data.duckdb_source import aggregate_file, from_duckdb
    from ratepool.data.frame import from_aggregates, from_dataframe
    from ratepool.data.spark_source import from_spark
    from ratepool.data.tables import load_counts
    from ratepool.engines import available_engines, get_engine
    from ratepool.errors import CompileError, ConfigError, DataError, EngineError, EngineNotFoundError, MissingDependencyError, RatepoolError, SamplingError
    from ratepool.model.config import ModelConfig
    from ratepool.model.prior import prior_predictive_check
    from ratepool.posterior.diagnostics import get_model_diagnostics
    from ratepool.posterior.fit_result import FitResult
    from ratepool.posterior.model_comparison import ComparisonResult
    from ratepool.posterior.summary import entity_summary
    from ratepool.workflow.compare import compare
    from ratepool.workflow.fit import fit, sample_prior
    from ratepool.workflow.scale_out import ScaledFit, fit_scaled


def _import_arviz() -> None:
    """ArviZ 0.x announces its 1.0 refactor on import; ratepool pins arviz<1."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ArviZ is undergoing", category=FutureWarning)
        import arviz  # noqa: F401


def __getattr__(name: str) -> Any:
    """Import the submodule defining ``name`` on first use (PEP 562) and cache the name."""
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'ratepool' has no attribute {name!r}")
    _import_arviz()
    value = getattr(importlib.import_module(f".{source}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


logging.getLogger(__name__).addHandler(logging.NullHandler())
