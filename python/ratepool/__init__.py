"""ratepool: partially pooled event rates per entity, from a hierarchical Gamma–Negative-Binomial
Stan model.

>>> import ratepool
>>> result = ratepool.fit(ratepool.load_counts("data/example_counts.csv"))  # doctest: +SKIP
>>> ratepool.get_model_diagnostics(result.idata)                              # doctest: +SKIP

The public names load on first use (PEP 562), so ``import ratepool`` is cheap: the ``ratepool``
command installs its Ctrl-C handler before arviz, pandas and the engines are imported.
``from ratepool import fit`` and ``ratepool.fit`` work as usual.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the submodule defining it.
_SOURCES = {
    "ModelConfig": "config",
    "CountData": "data",
    "load_counts": "data",
    "from_dataframe": "data",
    "from_aggregates": "data",
    "aggregate_file": "duckdb_source",
    "from_duckdb": "duckdb_source",
    "from_dask": "dask_source",
    "from_spark": "spark_source",
    "fit": "fit",
    "sample_prior": "fit",
    "FitResult": "fit",
    "get_model_diagnostics": "diagnostics",
    "entity_summary": "summary",
    "prior_predictive_check": "prior",
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
    from .config import ModelConfig
    from .dask_source import from_dask
    from .data import CountData, from_aggregates, from_dataframe, load_counts
    from .diagnostics import get_model_diagnostics
    from .duckdb_source import aggregate_file, from_duckdb
    from .engines import available_engines, get_engine
    from .errors import (CompileError, ConfigError, DataError, EngineError,
                         EngineNotFoundError, MissingDependencyError, RatepoolError,
                         SamplingError)
    from .fit import FitResult, fit, sample_prior
    from .prior import prior_predictive_check
    from .spark_source import from_spark
    from .summary import entity_summary


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


class _Package(types.ModuleType):
    """Keeps a public name that is also a submodule's name (``fit``) bound to the function:
    importing the submodule ``ratepool.fit`` sets the package attribute to the module, which
    the eager ``from .fit import fit`` used to overwrite."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (_SOURCES.get(name) == name and isinstance(value, types.ModuleType)
                and value.__name__ == f"{__name__}.{name}"):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


logging.getLogger(__name__).addHandler(logging.NullHandler())
