"""CmdStan's output CSVs as `Draws`: `read_cmdstan_csv` reads one ``sample`` run (one file per
chain) with ``cmdstanpy.from_csv``, which needs no CmdStan installation; `draws_from_fit` turns
a cmdstanpy fit into `Draws` (the CmdStan engine uses it too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ratepool.engines.base import Draws, split_sample_stats
from ratepool.errors import DataError


@dataclass
class CmdStanRun:
    """What ``read_cmdstan_csv`` found in CmdStan's output files.

    Attributes
    ----------
    draws : Draws
        Post-warmup draws, (chain, draw, *dims), one chain per file in the order given.
    settings : dict
        The run's settings from the CSV header as cmdstanpy reads them (``num_samples``,
        ``num_warmup``, ``delta``, ``seed``, ``data_file``, ``algorithm``, ``model``, ...).
    files : list of Path
        The CSV files.
    """

    draws: Draws
    settings: dict[str, Any]
    files: list[Path] = field(default_factory=list)

    def setting(self, key: str, default: Any = None) -> Any:
        """One setting of the run."""
        return self.settings.get(key, default)

    @property
    def stan_version(self) -> str:
        """``major.minor.patch`` of the Stan that wrote the files."""
        parts = [self.setting(f"stan_version_{p}") for p in ("major", "minor", "patch")]
        return ".".join(str(p) for p in parts) if None not in parts else "unknown"

    @property
    def data_file(self) -> str | None:
        """The ``data file=`` argument of the run, as CmdStan recorded it."""
        value = self.setting("data_file")
        return str(value) if value not in (None, "") else None


def draws_from_fit(fit: Any, engine: str = "cmdstan") -> Draws:
    """A cmdstanpy ``CmdStanMCMC``'s post-warmup draws as `Draws` (chain, draw, *dims);
    variables of size zero are left out."""
    table = fit.draws(inc_warmup=False, concat_chains=False)  # (draw, chain, column)

    def by_chain(variable: Any) -> np.ndarray:
        return np.swapaxes(np.asarray(variable.extract_reshape(table), dtype=float), 0, 1)

    variables = {name: by_chain(var) for name, var in fit.metadata.stan_vars.items()
                 if 0 not in tuple(var.dimensions)}
    stats = {name: by_chain(var) for name, var in fit.metadata.method_vars.items()}
    return Draws(variables=variables, sample_stats=split_sample_stats(stats), engine=engine,
                 info={"files": [str(f) for f in fit.runset.csv_files]})


def read_cmdstan_csv(paths: Sequence[str | Path]) -> CmdStanRun:
    """Read the output CSVs of one CmdStan ``sample`` run (one file per chain), in the order
    given, with ``cmdstanpy.from_csv``. Saved warmup draws are dropped.

    Raises
    ------
    DataError
        If a file is missing or not a CmdStan sampling CSV, or the files do not belong together.
    """
    import cmdstanpy

    files = [Path(p) for p in paths]
    if not files:
        raise DataError("give at least one CmdStan output CSV")
    for path in files:
        if not path.is_file():
            raise DataError(f"CmdStan output CSV {path} does not exist")
        if path.suffix != ".csv":
            raise DataError(f"{path}: CmdStan output files end in .csv")
    try:
        fit = cmdstanpy.from_csv([str(p) for p in files], method="sample")
    except (ValueError, RuntimeError, KeyError, IndexError) as error:
        raise DataError(
            f"{', '.join(map(str, files))} are not the output of one run of CmdStan's 'sample' "
            f"method ({error}); give the CSV files CmdStan wrote, one per chain"
        ) from None
    settings = {key: value.item() if isinstance(value, np.generic) else value
                for key, value in fit.metadata.cmdstan_config.items()
                if isinstance(value, (str, int, float, np.generic))}
    settings.pop("raw_header", None)
    return CmdStanRun(draws=draws_from_fit(fit), settings=settings, files=files)
