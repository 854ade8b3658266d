"""Stan engines behind one contract (`Engine`); `get_engine` picks one by name.

Only the engine modules import cmdstanpy or stan (PyStan).
"""

from __future__ import annotations

import logging

from ratepool.engines.base import Draws, Engine, SamplerSettings
from ratepool.errors import ConfigError, EngineNotFoundError
from ratepool.model.config import ENGINES

__all__ = ["Draws", "Engine", "SamplerSettings", "get_engine", "available_engines"]

log = logging.getLogger(__name__)


def available_engines() -> list[str]:
    """Names of the engines that can run on this machine, in order of preference."""
    from ratepool.engines.cmdstan import find_cmdstan
    from ratepool.engines.pystan import pystan_available

    names = []
    if find_cmdstan() is not None:
        names.append("cmdstan")
    if pystan_available():
        names.append("pystan")
    return names


def get_engine(name: str = "auto") -> Engine:
    """Return the engine called ``name``: ``"cmdstan"``, ``"pystan"`` or ``"auto"``.

    ``"auto"`` takes CmdStan when it is found (``CMDSTAN`` or cmdstanpy's default location),
    else PyStan, and logs one line saying which and why.

    Raises
    ------
    EngineNotFoundError
        If the named engine (or, for ``"auto"``, any engine) is unavailable.
    """
    if name not in ENGINES:
        raise ConfigError(f"engine must be one of {list(ENGINES)}, got {name!r}")
    if name == "auto":
        from ratepool.engines.cmdstan import CMDSTAN_INSTALL_HINT, find_cmdstan
        from ratepool.engines.pystan import pystan_available

        home = find_cmdstan()
        if home is not None:
            log.info("engine: cmdstan (CmdStan found at %s)", home)
            name = "cmdstan"
        elif pystan_available():
            log.info("engine: pystan (CmdStan not found; to use it, %s)",
                     CMDSTAN_INSTALL_HINT.split("; or")[0])
            name = "pystan"
        else:
            raise EngineNotFoundError(
                f"no Stan engine is available: {CMDSTAN_INSTALL_HINT} (pip install pystan)"
            )
    if name == "cmdstan":
        from ratepool.engines.cmdstan import CmdStanEngine

        return CmdStanEngine()
    from ratepool.engines.pystan import PyStanEngine

    return PyStanEngine()
