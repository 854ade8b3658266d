"""The data side of running CmdStan by hand: `write_stan_data` writes exactly the JSON that
``data file=`` of the compiled program takes (with stanio, as cmdstanpy does), plus the entity
label <-> Stan index table next to it; `read_stan_data` turns that pair back into a
`CountData`, refusing a JSON whose layout is not the one this version of ratepool writes for
either program (``stan/hierarchical_negbinom.stan`` with any option, bytes included;
``stan/temporal_negbinom.stan``, see `ratepool.workflow.cmdstan_temporal`). Reading CmdStan's
output back is `ratepool.workflow.cmdstan_run`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratepool.data.counts import CountData
from ratepool.data.labels import read_label_table
from ratepool.errors import ConfigError, DataError
from ratepool.files import atomic_file, atomic_write_text
from ratepool.model.config import ModelConfig
from ratepool.model.description import describe_stan_data
from ratepool.model.event_bytes import bytes_fields_off
from ratepool.model.standata import (
    base_stan_data,
    option_field_names,
    recorded_exposure_scale,
    stan_data,
)
from ratepool.workflow.cmdstan_temporal import (
    TEMPORAL_PROGRAM,
    expected_temporal_data,
    is_temporal_data,
    read_temporal_data,
    temporal_config,
)

__all__ = [
    "labels_path_for",
    "write_stan_data",
    "read_labels",
    "read_stan_data",
    "model_config",
]

log = logging.getLogger(__name__)

#: Columns of the label <-> index table written next to the data JSON.
LABEL_COLUMNS = ("entity", "stan_index", "n_windows", "total_count")

#: The static program (every option); the temporal one is `TEMPORAL_PROGRAM`.
STATIC_PROGRAM = "stan/hierarchical_negbinom.stan"

#: The data JSON's settings, as `CountData.to_stan_data` takes them.
_SWITCHES = ("mu_rate", "alpha_sd", "phi_sd", "use_sufficient_stats", "prior_only",
             "non_centered", "obs_predictions", "entity_predictions")


def labels_path_for(data_json: str | Path) -> Path:
    """Where the label table of ``data.json`` lives: ``data.labels.csv`` beside it."""
    data_json = Path(data_json)
    return data_json.with_name(f"{data_json.stem}.labels.csv")


# --------------------------------------------------------------------------------------------
# Data JSON and labels


def write_stan_data(
    stan_data: dict[str, Any], data: CountData, path: str | Path,
    labels_path: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write the Stan data dict as JSON and the label table as CSV, each atomically.

    Parameters
    ----------
    stan_data : dict
        The dict from `ratepool.model.standata.stan_data`.
    data : CountData
        The data it was built from (for the labels).
    path : path
        The JSON file to write.
    labels_path : path, optional
        The label table; `labels_path_for` ``path`` by default.

    Returns
    -------
    (Path, Path)
        The JSON and label table paths.
    """
    import stanio

    path = Path(path)
    labels_path = Path(labels_path) if labels_path is not None else labels_path_for(path)
    with atomic_file(path) as temp:
        stanio.write_stan_json(str(temp), stan_data)
    atomic_write_text(labels_path, label_table(data).to_csv(index=False))
    log.info("wrote %s and its label table %s", path, labels_path)
    return path, labels_path


#: Prefix of the label table's columns that hold entity covariates as given
#: (``covariate:<column>``), so that a reader re-encodes them exactly as the fit would.
COVARIATE_PREFIX = "covariate:"


def label_table(data: CountData) -> pd.DataFrame:
    """The label <-> index table written next to the data JSON, with the entity covariates
    (as given, one column each) when the data has them."""
    table = data.mapping_table()
    if data.covariates is not None and data.covariates.source_values is not None:
        for column in data.covariates.source_columns:
            table[f"{COVARIATE_PREFIX}{column}"] = \
                data.covariates.source_values[column].to_numpy()
    return table


def _covariates_from_table(table: pd.DataFrame, labels: pd.Index) -> Any:
    """Entity covariates re-encoded from the label table's ``covariate:`` columns, or None."""
    from ratepool.data.covariates import encode_covariates

    columns = [c for c in table.columns if str(c).startswith(COVARIATE_PREFIX)]
    if not columns:
        return None
    frame = table[columns].rename(columns=lambda c: c[len(COVARIATE_PREFIX):])
    frame.insert(0, "entity", labels)
    return encode_covariates(frame, list(frame.columns[1:]), "entity",
                             np.arange(len(labels)), labels)


def read_labels(path: str | Path, n_entities: int) -> pd.DataFrame:
    """Read and check a label table: columns `LABEL_COLUMNS`, ``stan_index`` exactly 1..J."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"label table {path} does not exist; it is written by 'ratepool export-data' next "
            "to the data JSON (give it with --labels)"
        )
    # Labels as text exactly as written ("NA" and "007" are labels, not missing values or the
    # number 7), as every file's labels are read (ratepool.data.labels).
    table = read_label_table(path, "entity")
    missing = [c for c in LABEL_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"label table {path} has no column(s) {missing}; expected "
                        f"{list(LABEL_COLUMNS)} as written by 'ratepool export-data'")
    table = table.sort_values("stan_index", kind="stable").reset_index(drop=True)
    if table["stan_index"].tolist() != list(range(1, n_entities + 1)):
        raise DataError(
            f"label table {path} must list stan_index 1..{n_entities} once each (the data "
            f"JSON has J = {n_entities}); it has {len(table)} rows. Use the table written "
            "together with that JSON"
        )
    if table["entity"].isna().any() or table["entity"].duplicated().any():
        raise DataError(f"label table {path}: column 'entity' has missing or repeated labels")
    return table


def _layout_error(path: Path, what: str, program: str = STATIC_PROGRAM) -> DataError:
    return DataError(
        f"data JSON {path} {what}: it does not have the layout this version of ratepool "
        f"writes for {program} (an older or newer ratepool wrote it, or it was edited). "
        "Export the data again with 'ratepool export-data' and rerun CmdStan"
    )


def _temporal_layout_error(path: Path, what: str) -> DataError:
    return _layout_error(path, what, TEMPORAL_PROGRAM)


def _check_label_totals(path: Path, labels_path: Path, table: pd.DataFrame,
                        data: CountData) -> None:
    """The label table's windows and totals per entity must be those of the JSON."""
    for column, from_json in (("n_windows", data.n_windows),
                              ("total_count", data.entity_total)):
        if not np.array_equal(table[column].to_numpy(dtype=np.int64), from_json):
            raise DataError(
                f"label table {labels_path} does not match {path}: its {column!r} column "
                "differs from the JSON's. Use the table written together with that JSON"
            )


def read_stan_data(
    path: str | Path, labels_path: str | Path | None = None
) -> tuple[CountData, dict[str, Any]]:
    """Rebuild `CountData` from a data JSON and its label table.

    The JSON must be exactly what `write_stan_data` writes for that data and those settings:
    same fields, no others, consistent values. Which program it is for follows from its fields
    (`is_temporal_data`); a temporal JSON's rows get windows counted in steps since each
    entity's first window (`read_temporal_data`).

    Returns
    -------
    (CountData, dict)
        The data (raw rows included when the JSON holds them, ``N > 0``) and the JSON's dict.

    Raises
    ------
    DataError
        If a file is missing, the JSON's layout differs from this version's, or the label table
        does not belong to the JSON (different J, windows or totals).
    """
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"data JSON {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"data JSON {path} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise _layout_error(path, "is not a JSON object")
    labels_path = Path(labels_path) if labels_path is not None else labels_path_for(path)
    if is_temporal_data(values):
        return _read_temporal(path, values, labels_path), values
    try:
        n_entities = int(values["J"])
        rows = int(values["N"]) > 0
        arrays = {name: np.asarray(values[name], dtype=float) for name in
                  ("entity", "y", "n_windows", "entity_total", "count_value", "count_freq")}
        switches = {name: values[name] for name in _SWITCHES}
    except KeyError as error:
        raise _layout_error(path, f"has no field {error}") from None
    table = read_labels(labels_path, n_entities)
    as_int = {name: np.rint(value).astype(np.int64) for name, value in arrays.items()}
    labels = pd.Index(table["entity"].to_numpy(), name="entity")
    exposure = None
    if int(values.get("has_exposure", 0) or 0):
        if not rows:
            raise _layout_error(path, "switches exposure on without the rows")
        exposure = np.asarray(values["exposure"], dtype=float) * recorded_exposure_scale(values)
    window_bytes = None
    if int(values.get("has_bytes", 0) or 0):
        if not rows:
            raise _layout_error(path, "switches the bytes factor on without the rows")
        window_bytes = np.asarray(values["bytes"], dtype=float)
    covariates = _covariates_from_table(table, labels)
    data = CountData(
        labels=labels,
        n_windows=as_int["n_windows"],
        entity_total=as_int["entity_total"],
        count_value=as_int["count_value"],
        count_freq=as_int["count_freq"],
        entity_index=as_int["entity"] - 1 if rows else None,
        y=as_int["y"] if rows else None,
        exposure=exposure,
        covariates=covariates,
        exposure_col="exposure" if exposure is not None else None,
        window_bytes=window_bytes,
    )
    _check_label_totals(path, labels_path, table, data)
    expected = base_stan_data(data, **switches)
    if OPTION_FIELDS & set(values):
        expected = stan_data(data, model_config(values, covariates), keep_rows=rows,
                             prior_only=bool(switches["prior_only"]),
                             obs_predictions=bool(switches["obs_predictions"]),
                             scale=recorded_exposure_scale(values))
        if "exposure_scale" not in values:  # written before exposures were scaled
            expected.pop("exposure_scale", None)
    else:
        # A data JSON from before the model options (ratepool 0.1's program): the base model,
        # whose outputs are those of today's program with every option off.
        log.info("%s predates the model options (no exposure, covariates or zero-inflation "
                 "fields): read as the base model", path)
        expected = {name: value for name, value in expected.items()
                    if name not in OPTION_FIELDS}
    values = _legacy_bytes_off(path, values, expected)
    values = _with_grainsize(path, values)
    expected["grainsize"] = values["grainsize"]  # how the run sums, not what the data are
    _check_layout(path, values, expected)
    return data, values


def _with_grainsize(path: Path, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with a valid ``grainsize`` (0, one pass, for a JSON written before the field
    existed: the program's sum is then the one such a JSON was run with)."""
    if "grainsize" not in values:
        log.info("%s predates the grainsize field: read with grainsize = 0 (one pass)", path)
        return {**values, "grainsize": 0}
    grainsize = values["grainsize"]
    if isinstance(grainsize, bool) or not isinstance(grainsize, int) or grainsize < 0:
        raise _layout_error(path, f"has grainsize = {grainsize!r}; it must be an integer >= 0 "
                                  "(0: one pass over the entities)")
    return values


#: The bytes fields of the data JSON before the per-count bytes variance (issue 17, item 8).
_LEGACY_BYTES_FIELDS = frozenset({"bytes_windows", "bytes_log_mean", "bytes_log_ss",
                                  "sigma_b_sd"})


def _legacy_bytes_off(path: Path, values: dict[str, Any],
                      expected: dict[str, Any]) -> dict[str, Any]:
    """A data JSON written before the bytes factor's per-count variance with the bytes OFF
    describes today's model (its bytes fields are empty and unused): read it with today's
    bytes-off fields in place of the old ones. With the bytes on the factor changed, and the
    layout check refuses it (export the data again)."""
    if int(values.get("has_bytes", 0) or 0) or not _LEGACY_BYTES_FIELDS & set(values):
        return values
    log.info("%s has the bytes fields of an older ratepool with the bytes off: read as "
             "today's layout", path)
    kept = {name: value for name, value in values.items() if name not in _LEGACY_BYTES_FIELDS}
    kept.update({name: expected[name] for name in set(bytes_fields_off()) & set(expected)
                 if name not in kept})
    return kept


#: Data fields the model options added to the program (absent from older exports).
OPTION_FIELDS = option_field_names()


def _read_temporal(path: Path, values: dict[str, Any], labels_path: Path) -> CountData:
    """`read_stan_data` of the temporal program's JSON."""
    try:
        n_entities = int(values["J"])
    except (KeyError, TypeError, ValueError):
        raise _temporal_layout_error(path, "has no valid field 'J'") from None
    table = read_labels(labels_path, n_entities)
    data = read_temporal_data(path, values, table, _temporal_layout_error)
    _check_label_totals(path, labels_path, table, data)
    try:
        expected = expected_temporal_data(data, temporal_config(values), values)
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise _temporal_layout_error(path, f"has invalid settings ({error})") from None
    _check_layout(path, values, expected, TEMPORAL_PROGRAM)
    return data


def model_config(values: dict[str, Any], covariates: Any = None) -> ModelConfig:
    """The model settings (priors, options, switches) that give a data JSON's fields.

    Sampler settings are left at their defaults (`config_from_run` adds the run's). A JSON
    that predates the model options is the base model (every option off).
    """
    try:
        model = describe_stan_data(values)
        if model.temporal:
            return temporal_config(values)
        return ModelConfig(
            mu_prior_rate=float(values["mu_rate"]), alpha_prior_sd=float(values["alpha_sd"]),
            overdispersion_prior_sd=float(values["phi_sd"]),
            parameterization="non_centered" if int(values["non_centered"]) else "centered",
            likelihood="sufficient" if int(values["use_sufficient_stats"]) else "observation",
            obs_predictions=bool(int(values["obs_predictions"])),
            entity_predictions=bool(int(values["entity_predictions"])),
            engine="cmdstan",
            zero_inflation=model.zero_inflation,
            beta_prior_sd=float(values.get("beta_sd", ModelConfig.beta_prior_sd)),
            exposure_col="exposure" if model.exposure else None,
            covariates=covariates.source_columns if covariates is not None else (),
            bytes_col="bytes" if model.bytes else None,
            **{name: float(values.get(field, getattr(ModelConfig, name)))
               for name, field in _BYTES_PRIORS.items()})
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise DataError(f"the data JSON's settings are not valid: {error}") from None


#: The bytes factor's priors: config name -> data JSON field.
_BYTES_PRIORS = {"bytes_m0_prior_mean": "m0_prior_mean", "bytes_m0_prior_sd": "m0_prior_sd",
                 "bytes_tau_prior_sd": "tau_sd", "bytes_sigma_w_prior_sd": "sigma_w_sd",
                 "bytes_sigma_e_prior_sd": "sigma_e_sd"}


def _check_layout(path: Path, values: dict[str, Any], expected: dict[str, Any],
                  program: str = STATIC_PROGRAM) -> None:
    """Same fields as this version writes for the same data and settings, and the same values."""
    extra = sorted(set(values) - set(expected))
    if extra:
        raise _layout_error(path, f"has field(s) {extra} that this version does not write",
                            program)
    missing = sorted(set(expected) - set(values))
    if missing:
        raise _layout_error(path, f"has no field(s) {missing}", program)
    differ = [name for name in expected
              if not np.array_equal(np.asarray(values[name], dtype=float),
                                    np.asarray(expected[name], dtype=float))]
    if differ:
        raise _layout_error(path, f"has inconsistent field(s) {differ}", program)


# --------------------------------------------------------------------------------------------
# CmdStan output CSVs


