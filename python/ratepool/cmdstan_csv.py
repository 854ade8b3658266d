"""The round trip through CmdStan run by hand: export the data JSON, read CmdStan's CSVs back.

``write_stan_data`` writes exactly the JSON that ``data file=`` of the compiled program takes,
plus the entity label <-> Stan index table next to it. ``read_stan_data`` turns that pair back
into a `CountData`, and ``read_cmdstan_csv`` reads CmdStan's own output CSVs (one per chain)
into engine-independent `Draws`, so that `ratepool.results` can write the same results folder
as for a fit run through ratepool.

CmdStan CSV layout: ``#`` comment lines holding the run's settings as an indented
``key = value`` tree, the header row (``lp__,...,theta.1,theta.2,...``), the draws (warmup
draws first when ``save_warmup`` was on), adaptation and timing comments in between and after.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .config import ModelConfig
from .data import CountData
from .engines.base import Draws, split_sample_stats
from .errors import ConfigError, DataError
from .fit import FitResult
from .inference import PARAMETERS, build_inference_data
from .labels import read_label_table

__all__ = [
    "CmdStanRun",
    "labels_path_for",
    "write_stan_data",
    "read_labels",
    "read_stan_data",
    "read_cmdstan_csv",
    "check_ratepool_run",
    "config_from_run",
    "fit_result_from_run",
    "file_sha256",
]

log = logging.getLogger(__name__)

#: Columns of the label <-> index table written next to the data JSON.
LABEL_COLUMNS = ("entity", "stan_index", "n_windows", "total_count")


def labels_path_for(data_json: str | Path) -> Path:
    """Where the label table of ``data.json`` lives: ``data.labels.csv`` beside it."""
    data_json = Path(data_json)
    return data_json.with_name(f"{data_json.stem}.labels.csv")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        The dict from `ratepool.fit.stan_data` (JSON-ready Python types).
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
    from .results import atomic_write_text  # results imports this module's readers

    path = Path(path)
    labels_path = Path(labels_path) if labels_path is not None else labels_path_for(path)
    atomic_write_text(path, json.dumps(stan_data) + "\n")
    atomic_write_text(labels_path, data.mapping_table().to_csv(index=False))
    log.info("wrote %s and its label table %s", path, labels_path)
    return path, labels_path


def read_labels(path: str | Path, n_entities: int) -> pd.DataFrame:
    """Read and check a label table: columns `LABEL_COLUMNS`, ``stan_index`` exactly 1..J."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"label table {path} does not exist; it is written by 'ratepool export-data' next "
            "to the data JSON (give it with --labels)"
        )
    # Labels as text exactly as written ("NA" and "007" are labels, not missing values or the
    # number 7), as every file's labels are read (ratepool.labels).
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


def read_stan_data(
    path: str | Path, labels_path: str | Path | None = None
) -> tuple[CountData, dict[str, Any]]:
    """Rebuild `CountData` from a data JSON and its label table.

    Returns
    -------
    (CountData, dict)
        The data (raw rows included when the JSON holds them, ``N > 0``) and the JSON's dict.

    Raises
    ------
    DataError
        If a file is missing, or the label table does not belong to the JSON (different J,
        windows or totals).
    """
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"data JSON {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"data JSON {path} is not valid JSON: {error}") from None
    needed = ("J", "N", "entity", "y", "n_windows", "entity_total", "count_value", "count_freq")
    missing = [name for name in needed if name not in values]
    if missing:
        raise DataError(f"data JSON {path} lacks {missing}; is it from 'ratepool export-data'?")
    n_entities = int(values["J"])
    labels_path = Path(labels_path) if labels_path is not None else labels_path_for(path)
    table = read_labels(labels_path, n_entities)
    n_windows = np.asarray(values["n_windows"], dtype=np.int64)
    totals = np.rint(np.asarray(values["entity_total"], dtype=float)).astype(np.int64)
    for column, from_json in (("n_windows", n_windows), ("total_count", totals)):
        if not np.array_equal(table[column].to_numpy(dtype=np.int64), from_json):
            raise DataError(
                f"label table {labels_path} does not match {path}: its {column!r} column "
                "differs from the JSON's. Use the table written together with that JSON"
            )
    rows = int(values["N"]) > 0
    data = CountData(
        labels=pd.Index(table["entity"].to_numpy(), name="entity"),
        n_windows=n_windows,
        entity_total=totals,
        count_value=np.asarray(values["count_value"], dtype=np.int64),
        count_freq=np.rint(np.asarray(values["count_freq"], dtype=float)).astype(np.int64),
        entity_index=np.asarray(values["entity"], dtype=np.int64) - 1 if rows else None,
        y=np.asarray(values["y"], dtype=np.int64) if rows else None,
    )
    return data, values


# --------------------------------------------------------------------------------------------
# CmdStan output CSVs


@dataclass
class CmdStanRun:
    """What ``read_cmdstan_csv`` found in CmdStan's output files.

    Attributes
    ----------
    draws : Draws
        Post-warmup draws, (chain, draw, *dims), one chain per file in the order given.
    settings : list of dict
        Per file, the run's settings from the comment header as ``{"sample.num_samples": 1000,
        "sample.adapt.delta": 0.9, "random.seed": 42, "data.file": "data.json", ...}``.
    files : list of Path
        The CSV files.
    """

    draws: Draws
    settings: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)

    def setting(self, key: str, default: Any = None) -> Any:
        """A setting of the first chain's run."""
        return self.settings[0].get(key, default) if self.settings else default

    @property
    def stan_version(self) -> str:
        """``major.minor.patch`` of the Stan that wrote the files."""
        parts = [self.setting(f"stan_version_{p}") for p in ("major", "minor", "patch")]
        return ".".join(str(p) for p in parts) if None not in parts else "unknown"

    @property
    def data_file(self) -> str | None:
        """The ``data file=`` argument of the run, as CmdStan recorded it."""
        value = self.setting("data.file")
        return str(value) if value not in (None, "") else None


def _parse_value(text: str) -> Any:
    text = text.replace("(Default)", "").strip()
    if text in ("true", "false"):
        return text == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_settings(comment_lines: Sequence[str]) -> dict[str, Any]:
    """The indented ``key = value`` tree of CmdStan's comment header, flattened to dotted keys.

    A line without ``=`` (``#   sample``) opens a section; a key's path is the chain of the
    sections above it with less indentation, so ``data``/``file`` becomes ``data.file``.
    """
    settings: dict[str, Any] = {}
    stack: list[tuple[int, str]] = []
    for raw in comment_lines:
        body = raw.rstrip("\n").lstrip("#")
        text = body.strip()
        if not text:
            continue
        indent = len(body) - len(body.lstrip(" "))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prefix = "".join(f"{name}." for _, name in stack)
        if " = " in text:
            key, _, value = text.partition(" = ")
            settings[prefix + key.strip()] = _parse_value(value)
        elif " " not in text:
            stack.append((indent, text))
    return settings


def _read_one(path: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    comments: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            comments.append(line)
    try:
        frame = pd.read_csv(path, comment="#", dtype=np.float64, skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path} is not a CmdStan output CSV: {error}") from None
    return parse_settings(comments), frame


def read_cmdstan_csv(paths: Sequence[str | Path]) -> CmdStanRun:
    """Read the output CSVs of one CmdStan ``sample`` run (one file per chain).

    Warmup draws saved with ``save_warmup=true`` are dropped. Needs no CmdStan installation.

    Raises
    ------
    DataError
        If a file is missing or not a CmdStan sampling CSV, or the files disagree (columns,
        draws per chain).
    """
    from stanio import parse_header, stan_variables

    files = [Path(p) for p in paths]
    if not files:
        raise DataError("give at least one CmdStan output CSV")
    settings: list[dict[str, Any]] = []
    arrays: list[np.ndarray] = []
    columns: list[str] | None = None
    for path in files:
        if not path.is_file():
            raise DataError(f"CmdStan output CSV {path} does not exist")
        run_settings, frame = _read_one(path)
        if run_settings.get("method") != "sample":
            raise DataError(
                f"{path} is not the output of CmdStan's 'sample' method (method = "
                f"{run_settings.get('method')!r}); run the program with 'sample'"
            )
        if columns is None:
            columns = list(frame.columns)
        elif list(frame.columns) != columns:
            raise DataError(f"{path} has different columns from {files[0]}; give the CSVs of "
                            "one run of one program")
        values = frame.to_numpy()
        warmup = _saved_warmup(run_settings)
        if warmup:
            log.info("%s: dropping %d saved warmup draws", path, warmup)
        arrays.append(values[warmup:])
        settings.append(run_settings)
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise DataError(f"the CSVs hold different numbers of draws per chain {sorted(lengths)}; "
                        "give the files of one run")
    if lengths == {0}:
        raise DataError(f"{files[0]} holds no draws")
    stacked = np.stack(arrays)  # (chain, draw, column)
    assert columns is not None
    stats = {name: stacked[..., i] for i, name in enumerate(columns) if name.endswith("__")}
    parameters = parse_header(",".join(c for c in columns if not c.endswith("__")))
    model_part = stacked[..., [i for i, c in enumerate(columns) if not c.endswith("__")]]
    variables = {name: np.asarray(value, dtype=float)
                 for name, value in stan_variables(parameters, model_part).items()}
    draws = Draws(variables=variables, sample_stats=split_sample_stats(stats), engine="cmdstan",
                  info={"files": [str(p) for p in files]})
    return CmdStanRun(draws=draws, settings=settings, files=files)


def _saved_warmup(settings: dict[str, Any]) -> int:
    """How many warmup draws a file holds before its sampling draws."""
    if not settings.get("sample.save_warmup"):
        return 0
    if settings.get("sample.algorithm") == "fixed_param":
        return 0
    thin = int(settings.get("sample.thin", 1)) or 1
    return math.ceil(int(settings.get("sample.num_warmup", 0)) / thin)


def check_ratepool_run(run: CmdStanRun, stan_data: dict[str, Any]) -> None:
    """Raise `DataError` unless the CSVs are a posterior run of ratepool's program on this data."""
    rates = "theta_from_raw" if "theta_from_raw" in run.draws.variables else "theta"
    missing = [name for name in (*PARAMETERS, rates) if name not in run.draws.variables]
    if missing:
        raise DataError(
            f"the CSVs have no {missing}: they are not output of ratepool's Stan program "
            "(stan/hierarchical_negbinom.stan)"
        )
    if int(stan_data.get("prior_only", 0)):
        raise DataError("the data JSON has prior_only = 1: these are prior draws, not a posterior; "
                        "export the data without --prior-only and sample again")
    if run.setting("sample.algorithm") == "fixed_param":
        raise DataError("the CSVs come from the fixed_param sampler, not NUTS; there is no "
                        "posterior to report")
    width = run.draws.variables[rates].shape[-1]
    if width != int(stan_data["J"]):
        raise DataError(f"the CSVs have {width} theta columns but the data JSON has "
                        f"J = {stan_data['J']}: they belong to different data")


def config_from_run(run: CmdStanRun, stan_data: dict[str, Any]) -> ModelConfig:
    """The `ModelConfig` equivalent to a CmdStan run on an exported data JSON.

    A seed outside ModelConfig's range (CmdStan draws its own up to 2^32 - 1 when none is
    given) is replaced by the default; the run record keeps CmdStan's seed.
    """
    chains, draws = run.draws.variables["mu"].shape[:2]
    seed = run.setting("random.seed", ModelConfig.random_seed)
    if not isinstance(seed, int) or not 0 <= seed <= 2**31 - 1:
        seed = ModelConfig.random_seed
    try:
        return ModelConfig(
            n_samples=int(draws),
            n_tune=int(run.setting("sample.num_warmup", 0)),
            n_chains=int(chains),
            target_accept=float(run.setting("sample.adapt.delta", 0.8)),
            random_seed=seed,
            mu_prior_rate=float(stan_data["mu_rate"]),
            alpha_prior_sd=float(stan_data["alpha_sd"]),
            overdispersion_prior_sd=float(stan_data["phi_sd"]),
            parameterization="non_centered" if int(stan_data["non_centered"]) else "centered",
            likelihood="sufficient" if int(stan_data["use_sufficient_stats"]) else "observation",
            obs_predictions=bool(int(stan_data["obs_predictions"])),
            entity_predictions=bool(int(stan_data["entity_predictions"])),
            engine="cmdstan",
        )
    except (KeyError, ConfigError) as error:
        raise DataError(f"cannot rebuild the run's settings from the CSVs and data JSON: "
                        f"{error}") from None


def fit_result_from_run(
    run: CmdStanRun, data_json: str | Path, labels_path: str | Path | None = None
) -> FitResult:
    """A `FitResult` of a CmdStan run on a data JSON written by `write_stan_data`.

    The entity labels come from the label table (``labels_path``, by default the one next to
    the JSON), so the InferenceData and tables look exactly like those of `ratepool.fit`.

    Raises
    ------
    DataError
        If the files are missing, do not belong together, or are not a posterior run of
        ratepool's program.
    """
    data, values = read_stan_data(data_json, labels_path)
    check_ratepool_run(run, values)
    return FitResult(
        idata=build_inference_data(run.draws, data),
        data=data,
        config=config_from_run(run, values),
        engine="cmdstan",
        versions={"engine": "cmdstan", "stan": run.stan_version,
                  "stanc": str(run.setting("stanc_version", "unknown"))},
        sampling_seconds=float(run.draws.elapsed_seconds),
    )
