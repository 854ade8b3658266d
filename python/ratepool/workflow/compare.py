"""`compare`: fit candidate models to one data set and rank them by PSIS-LOO, with predictive
checks (`ratepool.posterior.model_comparison`, `ratepool.posterior.comparison_checks`).

Every candidate is validated (its data loaded and its options checked) before any program
compiles: named candidates the data do not allow are skipped with the reason, explicit
`ModelConfig` candidates that the data cannot serve are refused.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Mapping, Sequence

import arviz as az
import pandas as pd

from ratepool.data.counts import CountData
from ratepool.data.tables import load_counts
from ratepool.engines import get_engine
from ratepool.engines.base import Engine
from ratepool.errors import ConfigError, DataError, RatepoolError
from ratepool.model.config import ModelConfig
from ratepool.model.description import describe_config
from ratepool.posterior.comparison_checks import predictive_checks
from ratepool.posterior.entity_marginal import with_entity_marginal
from ratepool.posterior.fit_result import FitResult
from ratepool.posterior.model_comparison import (
    LOO_UNITS,
    SIMPLICITY,
    ComparisonResult,
    loo_table,
    recommend,
    simplicity,
)
from ratepool.workflow.fit import fit, prepare_fit

__all__ = ["compare", "ComparisonResult", "CANDIDATE_NAMES", "candidate_configs"]

log = logging.getLogger(__name__)

#: Names accepted by ``candidates`` (and ``--candidates``): "base", one option, or "all".
CANDIDATE_NAMES = ("base", *SIMPLICITY, "all")


def _label(options: tuple[str, ...]) -> str:
    return "base" if not options else "base + " + " + ".join(options)


def candidate_configs(names: Sequence[str], config: ModelConfig, *, window_col: str | None,
                      exposure_col: str | None, covariates: Sequence[str] | None
                      ) -> tuple[dict[str, ModelConfig], dict[str, str]]:
    """The configs of named candidates, and the skipped ones with the reason.

    "base" is always a candidate; each named option is the base model plus that option;
    "all" is every combination of the static options the data allow (exposure, covariates,
    zero-inflation) plus the temporal model (with exposure when given).
    """
    unknown = [n for n in names if n not in CANDIDATE_NAMES]
    if unknown:
        raise ConfigError(f"unknown candidate(s) {unknown}; choose from "
                          f"{', '.join(CANDIDATE_NAMES)}")
    missing = {"exposure": None if exposure_col else "no exposure column given (--exposure-col)",
               "covariates": None if covariates else "no covariates given (--covariates)",
               "zero-inflation": None,
               "temporal": None if window_col else "no window column given (--window-col); "
                                                   "the temporal model orders the windows"}
    if "all" in names:
        static = [o for o in ("exposure", "covariates", "zero-inflation") if not missing[o]]
        wanted = [c for r in range(len(static) + 1) for c in itertools.combinations(static, r)]
        if not missing["temporal"]:
            wanted.append(("exposure", "temporal") if exposure_col else ("temporal",))
        skipped = {o: why for o, why in missing.items() if why}
    else:
        wanted = [()] + [(n,) for n in names if n != "base"]
        skipped = {n: missing[n] for n in names if n != "base" and missing[n]}
        wanted = [w for w in wanted if not w or not missing[w[0]]]
    configs = {}
    for options in sorted(dict.fromkeys(wanted), key=simplicity):
        configs[_label(options)] = config.replace(
            exposure_col=exposure_col if "exposure" in options else None,
            covariates=tuple(covariates or ()) if "covariates" in options else (),
            zero_inflation="zero-inflation" in options,
            temporal="ar1" if "temporal" in options else None)
    return configs, skipped


def _options(config: ModelConfig) -> tuple[str, ...]:
    return describe_config(config).options


def _load(source: pd.DataFrame | str | Path, config: ModelConfig, columns: Mapping[str, object]
          ) -> CountData:
    return load_counts(source, entity_col=str(columns["entity_col"]),
                       count_col=str(columns["count_col"]),
                       window_col=columns["window_col"],  # type: ignore[arg-type]
                       allow_duplicate_windows=bool(columns["allow_duplicate_windows"]),
                       exposure_col=config.exposure_col,
                       covariates=list(config.covariates) or None)


def compare(
    data: pd.DataFrame | str | Path,
    candidates: Sequence[str] | Mapping[str, ModelConfig] = ("all",),
    *,
    config: ModelConfig | None = None,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    allow_duplicate_windows: bool = False,
    exposure_col: str | None = None,
    covariates: Sequence[str] | None = None,
    unit: str = "entity",
    show_progress: bool = False,
) -> ComparisonResult:
    """Fit candidate models to one data set and rank them by PSIS-LOO.

    Parameters
    ----------
    data : pandas.DataFrame or path
        The raw rows (one per entity and window); each candidate reads the columns it needs.
    candidates : sequence of str, or mapping of label to ModelConfig
        Names from `CANDIDATE_NAMES` (options the data do not allow are skipped, with the
        reason in ``ComparisonResult.skipped``), or explicit configs (refused with
        `ConfigError` / `DataError` if the data cannot serve one, before anything compiles).
    config : ModelConfig, optional
        Sampler settings and priors shared by the named candidates.
    entity_col, count_col, window_col, allow_duplicate_windows
        As in `ratepool.load_counts`.
    exposure_col, covariates
        The exposure column and covariate columns the named candidates may use.
    unit : {"entity", "window"}
        What LOO leaves out: a whole entity (default; the pointwise log likelihood is each
        entity's marginal likelihood, its rate integrated out:
        `ratepool.posterior.entity_marginal`), or one window of a known entity. Temporal
        candidates are ranked by window LOO only: in entity mode they are in
        ``ComparisonResult.tables["window"]`` and ``skipped`` says why. The window ranking
        is always computed too (``tables["window"]``).

    Returns
    -------
    ComparisonResult
    """
    if unit not in LOO_UNITS:
        raise ConfigError(f"unit must be one of {sorted(LOO_UNITS)}, got {unit!r}")
    if isinstance(data, CountData):
        raise DataError("compare needs the raw rows (a DataFrame or a file) so that each "
                        "candidate can read its own columns; pass the table, not CountData")
    base = (config or ModelConfig()).replace(obs_predictions=True)
    if isinstance(candidates, Mapping):
        configs = {str(k): v.replace(obs_predictions=True) for k, v in candidates.items()}
        skipped: dict[str, str] = {}
    else:
        names = [candidates] if isinstance(candidates, str) else list(candidates)
        configs, skipped = candidate_configs(names, base, window_col=window_col,
                                             exposure_col=exposure_col, covariates=covariates)
    if not configs:
        raise ConfigError("no candidate to compare")
    columns = {"entity_col": entity_col, "count_col": count_col, "window_col": window_col,
               "allow_duplicate_windows": allow_duplicate_windows}
    prepared = {}
    engines: dict[str, Engine] = {}  # one engine (and one log line) per engine name
    for label, candidate in configs.items():  # validate all before compiling any
        try:
            if candidate.engine not in engines:
                engines[candidate.engine] = get_engine(candidate.engine)
            prepared[label] = prepare_fit(_load(data, candidate, columns), candidate,
                                          engines[candidate.engine])
        except RatepoolError as error:
            raise type(error)(f"candidate {label!r}: {error}") from None
    fits = {}
    for label, ready in prepared.items():
        log.info("fitting candidate %s", label)
        fits[label] = fit(ready, show_progress=show_progress)
    tables = {}
    for name in dict.fromkeys([unit, "window"]):  # the asked unit first, window for reference
        idatas, why_not = _rankable(fits, name)
        if name == unit:
            skipped.update(why_not)
            if not idatas:
                raise DataError(f"no candidate has a per-{unit} log likelihood to rank")
        if idatas:
            tables[name] = loo_table(idatas, name)
    checks = predictive_checks({label: result.idata for label, result in fits.items()})
    table = tables[unit]
    options = {label: _options(fits[label].config) for label in fits}
    chosen, text = recommend(table, options, unit)
    log.info("recommended: %s", text)
    return ComparisonResult(table=table, checks=checks, recommended=chosen,
                            recommendation=text, unit=unit, skipped=skipped, fits=fits,
                            options=options, tables=tables)


def _rankable(fits: Mapping[str, FitResult], unit: str
              ) -> tuple[dict[str, az.InferenceData], dict[str, str]]:
    """The InferenceData to rank by ``unit`` (with the entity marginal log likelihood added
    for "entity"), and the fits that cannot be, with the reason."""
    idatas: dict[str, az.InferenceData] = {}
    why_not: dict[str, str] = {}
    for label, result in fits.items():
        idata = result.idata
        if unit == "entity" and not describe_config(result.config).entity_marginal_likelihood:
            why_not[label] = ("fitted, but not ranked by entity LOO: its entity marginal "
                              "likelihood needs the latent AR(1) path integrated out, which "
                              "ratepool does not do; compare it with --loo window (unit="
                              "'window'), whose ranking is also in the report")
        elif unit == "entity":
            try:
                idatas[label] = with_entity_marginal(idata)
            except RatepoolError as error:
                why_not[label] = f"fitted, but not ranked by entity LOO: {error}"
        elif "log_likelihood" in idata.groups() and LOO_UNITS[unit] in idata.log_likelihood:
            idatas[label] = idata
        else:
            why_not[label] = f"fitted, but has no {unit} log likelihood to rank"
    return idatas, why_not
