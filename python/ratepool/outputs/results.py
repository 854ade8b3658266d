"""The results folder of a run, written atomically, and read back.

A results folder holds:

==========================  ================================================================
``inference_data.nc``       every draw, as arviz.InferenceData (``arviz.from_netcdf`` or
                            `load_inference_data`, which also restores non-string labels)
``entity_summary.csv``      one row per entity: raw rate against the partially pooled estimate
``entity_mapping.csv``      entity label <-> 1-based Stan index
``population_summary.csv``  mu, alpha, phi (and beta, pi when fitted): mean, sd, 94% HDI,
                            R-hat, ESS
``coefficients.csv``        with covariates: beta and rate ratios per original unit (94% HDI)
``bytes_summary.csv``       with bytes: median and mean bytes per event per entity (94% HDI)
``diagnostics.json``        r_hat_max, ess_bulk_min, ess_tail_min, divergences, converged
                            (mu, alpha, phi); all_parameters, ebfmi, treedepth_hits,
                            max_treedepth; grades, advice
``prior_check.json``        the prior predictive check (when prior draws were made): shares
                            in 0..50 and in the data's observed range, quantiles
``run.json``                config, data file hash, seed, software versions, command
``config.toml``             the exact config, for ``ratepool fit DATA --config config.toml``
``*.png``                   trace, posterior, posterior predictive check, entity rates,
                            prior predictive check
``entity_forecast.csv``     temporal model: per entity the last window, its latent rate and
                            the next window's predictive count (90% intervals)
``latent_paths.png``        temporal model: latent rate paths of a few entities
``report.html``             all of the above in one self-contained page (built by the
                            caller's renderer: the command line passes the report's)
==========================  ================================================================

The folder is assembled in a hidden sibling directory and renamed into place only when every
file is written, so a failed or interrupted run leaves an earlier folder as it was.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

import arviz as az
import numpy as np
import pandas as pd

from ratepool._testhooks import pause_at
from ratepool.data.labels import read_label_table
from ratepool.errors import RatepoolError
from ratepool.files import atomic_directory, atomic_write_text, file_sha256
from ratepool.model.config import ModelConfig
from ratepool.model.description import describe_inference_data
from ratepool.model.prior import prior_predictive_check
from ratepool.outputs import plots
from ratepool.outputs.idata_file import (  # noqa: F401 (load_inference_data: public here)
    _decode_labels,
    _encode_labels,
    load_inference_data,
)
from ratepool.posterior.fit_result import FitResult
from ratepool.posterior.summary import HDI_PROB

__all__ = [
    "FILES",
    "SavedResults",
    "atomic_write_text",
    "atomic_directory",
    "software_versions",
    "run_record",
    "population_summary",
    "write_results",
    "load_results",
    "load_inference_data",
    "json_ready",
    "dump_json",
]

log = logging.getLogger(__name__)

#: File names inside a results folder.
FILES = {
    "idata": "inference_data.nc",
    "entities": "entity_summary.csv",
    "mapping": "entity_mapping.csv",
    "population": "population_summary.csv",
    "diagnostics": "diagnostics.json",
    "prior_check": "prior_check.json",
    "run": "run.json",
    "config": "config.toml",
    "report": "report.html",
}
#: Written only for a fit with entity covariates.
COEFFICIENTS_FILE = "coefficients.csv"
#: With bytes (`ratepool.model.event_bytes`): the entity bytes-per-event table.
BYTES_FILE = "bytes_summary.csv"
#: Builds report.html from the folder's contents (see `write_results`).
ReportRenderer = Callable[..., str]
#: Packages whose versions a run record lists (absent ones are recorded as null).
PACKAGES = ("ratepool", "pystan", "httpstan", "cmdstanpy", "stanio", "arviz", "numpy", "pandas",
            "xarray", "scipy", "matplotlib", "netCDF4")


# --------------------------------------------------------------------------------------------
# Records


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars/arrays as Python values and NaN/inf as None (valid JSON)."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def dump_json(value: Any) -> str:
    """``value`` as indented, valid JSON (see `json_ready`)."""
    return json.dumps(json_ready(value), indent=2, allow_nan=False) + "\n"


def software_versions() -> dict[str, str | None]:
    """Versions of ratepool and the packages a run depends on, plus Python and the platform."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    versions["platform"] = platform.platform()
    return versions


def run_record(
    result: FitResult,
    *,
    source: str,
    data_file: str | Path | None = None,
    data_options: Mapping[str, Any] | None = None,
    command: list[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to reproduce a run: config, data hash, seed, engine and versions.

    Parameters
    ----------
    result : FitResult
        The run.
    source : str
        ``"fit"`` (sampled by ratepool) or ``"cmdstan-csv"`` (read from CmdStan's output).
    data_file : path, optional
        The data file, hashed with SHA-256.
    data_options : mapping, optional
        How the data file was read (column names).
    command : list of str, optional
        The command line.
    extra : mapping, optional
        Further entries (e.g. the CmdStan CSV files and their hashes).
    """
    program = result.program
    data: dict[str, Any] = {"n_entities": result.data.n_entities,
                            "n_windows": result.data.n_windows_total,
                            **(data_options or {})}
    if data_file is not None:
        data_path = Path(data_file)
        data.update(file=str(data_path), sha256=file_sha256(data_path),
                    bytes=data_path.stat().st_size)
    record = {
        "ratepool_version": software_versions()["ratepool"],
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "command": command if command is not None else list(sys.argv),
        "engine": result.engine,
        "engine_versions": dict(result.versions),
        "seed": result.config.random_seed,
        "config": result.config.to_dict(),
        "data": data,
        # The program that ran; None when unknown (CmdStan's CSVs do not record the source).
        "stan_program": ({"file": program.path.name, "sha256": program.sha256}
                         if program is not None else {"file": None, "sha256": None}),
        "sampling_seconds": result.sampling_seconds,
        "versions": software_versions(),
    }
    record.update(extra or {})
    return record


def population_summary(idata: az.InferenceData) -> pd.DataFrame:
    """mu, alpha, phi (beta and pi, the bytes factor's m0, tau, sigma_w and sigma_e, the temporal
    model's rho, s and sigma, when fitted): posterior mean, sd, 94% HDI, MCSE, bulk and tail ESS,
    R-hat."""
    names = [name for name in describe_inference_data(idata).population_parameters
             if name in idata.posterior]
    table = az.summary(idata, var_names=names, hdi_prob=HDI_PROB, round_to="none")
    table.index.name = "parameter"
    return table


def _saved_labels(path: Path) -> np.ndarray | None:
    """The fit's labels from ``inference_data.nc`` (only the coordinate is read); None when
    the folder has no draws (the labels then stay text as written)."""
    import xarray as xr

    if not (path / FILES["idata"]).exists():
        return None
    try:
        with xr.open_dataset(path / FILES["idata"], group="posterior") as posterior:
            return _decode_labels(posterior)
    except (OSError, ValueError) as error:
        raise RatepoolError(f"{path / FILES['idata']} could not be read: {error}") from None


# --------------------------------------------------------------------------------------------
# The folder


def write_results(
    out: str | Path,
    result: FitResult,
    *,
    record: Mapping[str, Any],
    title: str | None = None,
    render_report: ReportRenderer | None = None,
) -> Path:
    """Write the results folder of ``result`` to ``out`` (atomically; see the module docstring).

    Parameters
    ----------
    out : path
        The folder; an existing one is replaced only once the new one is complete.
    result : FitResult
        The run.
    record : mapping
        The run record (`run_record`), written as ``run.json``.
    title : str, optional
        Report title; the data file's name by default.
    render_report : callable, optional
        Builds ``report.html`` from keyword arguments ``title``, ``diagnostics``,
        ``population``, ``entities``, ``run``, ``images`` and ``prior_check`` (the command line
        passes `ratepool.outputs.report.render_report`). Without it no report is written.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    idata = result.idata
    diagnostics = result.diagnostics()
    entities = result.entity_summary()
    population = population_summary(idata)
    prior_check = (prior_predictive_check(idata, result.data)
                   if "prior_predictive" in idata.groups() else None)
    data_file = record.get("data", {}).get("file")
    title = title or f"ratepool: {Path(data_file).name if data_file else 'results'}"
    with atomic_directory(out) as staging:
        log.info("writing results to %s", out)
        _encode_labels(idata).to_netcdf(str(staging / FILES["idata"]))
        pause_at("write")
        entities.to_csv(staging / FILES["entities"])
        result.mapping_table().to_csv(staging / FILES["mapping"], index=False)
        population.to_csv(staging / FILES["population"])
        tables = result.model.tables
        if "coefficients" in tables:
            result.coefficients().to_csv(staging / COEFFICIENTS_FILE)
        bytes_table = result.bytes_summary() if "bytes" in tables else None
        if bytes_table is not None:
            bytes_table.to_csv(staging / BYTES_FILE)
        (staging / FILES["diagnostics"]).write_text(dump_json(diagnostics), encoding="utf-8")
        if prior_check is not None:
            (staging / FILES["prior_check"]).write_text(dump_json(prior_check),
                                                        encoding="utf-8")
        (staging / FILES["config"]).write_text(result.config.to_toml(), encoding="utf-8")
        images = plots.fit_figures(idata, result.data, entities, result.config)
        for name, png in images.items():
            (staging / name).write_bytes(png)
        sections = []
        if "temporal" in tables:
            from ratepool.outputs.temporal_plots import write_temporal_outputs

            sections.append(write_temporal_outputs(staging, idata, result.data))
        listing = [p.name for p in staging.iterdir() if not p.name.startswith(".")]
        listing = sorted([*listing, FILES["run"], *([FILES["report"]] if render_report else [])])
        full_record = {**record, "files": listing}
        (staging / FILES["run"]).write_text(dump_json(full_record), encoding="utf-8")
        if render_report is not None:
            html = render_report(
                title=title, diagnostics=diagnostics, population=population,
                entities=entities, run=full_record, images=images, prior_check=prior_check,
                bytes_table=bytes_table, sections=sections,
            )
            (staging / FILES["report"]).write_text(html, encoding="utf-8")
    return out


@dataclass
class SavedResults:
    """A results folder read back."""

    path: Path
    diagnostics: dict[str, Any]
    run: dict[str, Any]
    entity_summary: pd.DataFrame

    def inference_data(self) -> az.InferenceData:
        """The InferenceData (read on demand: it is the large file)."""
        return load_inference_data(self.path / FILES["idata"])

    def config(self) -> ModelConfig:
        """The run's config."""
        return ModelConfig.from_dict(self.run["config"], source=str(self.path / FILES["run"]))


def load_results(path: str | Path) -> SavedResults:
    """Read a results folder written by `write_results`.

    Raises
    ------
    RatepoolError
        If the folder or one of its JSON files is missing or unreadable.
    """
    path = Path(path)
    if not path.is_dir():
        raise RatepoolError(f"results folder {path} does not exist; create it with "
                            "'ratepool fit DATA --out DIR'")
    values = {}
    for key in ("diagnostics", "run"):
        file = path / FILES[key]
        try:
            values[key] = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RatepoolError(f"{file} is missing: {path} is not a complete ratepool results "
                                "folder") from None
        except json.JSONDecodeError as error:
            raise RatepoolError(f"{file} is not valid JSON: {error}") from None
    # Labels as text exactly as written, then with the fit's own types (7 stays an integer,
    # "007" stays text), as the InferenceData holds them.
    entities = read_label_table(path / FILES["entities"]).set_index("entity")
    labels = _saved_labels(path)
    if labels is not None:
        if [str(v) for v in labels] != [str(v) for v in entities.index]:
            raise RatepoolError(f"{path / FILES['entities']} does not list the entities of "
                                f"{path / FILES['idata']}; the folder was changed after the run")
        entities.index = pd.Index(labels, name="entity")
    return SavedResults(path=path, diagnostics=_nan_from_null(values["diagnostics"]),
                        run=values["run"], entity_summary=entities)


def _nan_from_null(diagnostics: dict[str, Any]) -> dict[str, Any]:
    """JSON null back to NaN for the numeric diagnostics (so they format and grade as NaN)."""
    return {key: (math.nan if value is None and key in ("r_hat_max", "ess_bulk_min",
                                                        "ess_tail_min") else value)
            for key, value in diagnostics.items()}
