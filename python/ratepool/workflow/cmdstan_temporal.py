"""The CmdStan round trip of the temporal program (``stan/temporal_negbinom.stan``).

Its data JSON (`ratepool.model.temporal.temporal_stan_data`) holds the rows ordered by entity and
window with the gap in steps between an entity's consecutive windows, not the windows
themselves. `read_temporal_data` rebuilds the rows from it: each entity's windows become the
whole number of steps since its first window (0, 1, 3, ...), which is all the model and its
outputs use (ordering, gaps, the last window of the forecast table). `temporal_fit_result`
turns a run's draws into the same InferenceData as `ratepool.workflow.temporal.fit_temporal`, with the
same builders.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ratepool.data.counts import CountData, _aggregate
from ratepool.engines.base import Draws
from ratepool.model.config import ModelConfig
from ratepool.model.description import describe_stan_data
from ratepool.model.temporal import check_temporal, temporal_stan_data
from ratepool.model.standata import recorded_exposure_scale
from ratepool.posterior.inference import build_inference_data
from ratepool.posterior.temporal_draws import _add_temporal_variables, _in_row_order

__all__ = ["TEMPORAL_PROGRAM", "is_temporal_data", "read_temporal_data",
           "temporal_config", "expected_temporal_data", "temporal_inference_data"]

log = logging.getLogger(__name__)

#: The program whose data JSON and outputs this module reads.
TEMPORAL_PROGRAM = "stan/temporal_negbinom.stan"


def is_temporal_data(values: dict[str, Any]) -> bool:
    """Whether a data JSON is the temporal program's (it has the AR(1) fields)."""
    return describe_stan_data(values).temporal


def read_temporal_data(
    path: Path, values: dict[str, Any], table: pd.DataFrame, layout_error: Any,
) -> CountData:
    """The `CountData` of a temporal data JSON and its label table (rows in the JSON's order,
    windows as steps since each entity's first; exposure only when not all 1).

    ``layout_error(path, what)`` makes the `DataError` for a JSON this version did not write
    (raised for a missing or malformed field). The caller checks the label table's windows and
    totals against the returned data.
    """
    try:
        entity = np.rint(np.asarray(values["entity"], dtype=float)).astype(np.int64) - 1
        gap = np.rint(np.asarray(values["gap"], dtype=float)).astype(np.int64)
        y = np.rint(np.asarray(values["y"], dtype=float)).astype(np.int64)
        exposure = np.asarray(values["exposure"], dtype=float) * recorded_exposure_scale(values)
    except KeyError as error:
        raise layout_error(path, f"has no field {error}") from None
    except (TypeError, ValueError) as error:
        raise layout_error(path, f"has a malformed row field ({error})") from None
    n_entities = len(table)
    if not (len(entity) == len(gap) == len(y) == len(exposure) == int(values["N"])) or (
            entity.size and (entity.min() < 0 or entity.max() >= n_entities
                             or np.any(np.diff(entity) < 0))):
        raise layout_error(path, "has rows that are not N rows ordered by entity 1..J")
    # exposure is on when the JSON records its scale (or, before exposures were scaled, when
    # any exposure differs from 1)
    given = "exposure_scale" in values or not np.all(exposure == 1.0)
    labels = pd.Index(table["entity"].to_numpy(), name="entity")
    counts = _aggregate(entity, y, labels)
    data = CountData(
        labels=labels, n_windows=counts.n_windows, entity_total=counts.entity_total,
        count_value=counts.count_value, count_freq=counts.count_freq, entity_index=entity,
        y=y, window=_steps(entity, gap),
        exposure=exposure if given else None, exposure_col="exposure" if given else None)
    log.info("%s: rebuilt %d rows of the temporal model; windows are steps since each "
             "entity's first window (the JSON holds gaps, not window labels)", path, len(y))
    return data


def _steps(entity: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Per row (ordered by entity): steps since the entity's first row, from the gaps."""
    total = np.cumsum(gap)
    first = np.r_[0, np.flatnonzero(np.diff(entity)) + 1]
    starts = np.repeat(total[first], np.diff(np.r_[first, len(entity)]))
    return (total - starts).astype(np.int64)


def temporal_config(values: dict[str, Any]) -> ModelConfig:
    """The model settings of a temporal data JSON (sampler settings left at the defaults)."""
    return ModelConfig(
        temporal="ar1", mu_prior_rate=float(values["mu_rate"]),
        alpha_prior_sd=float(values["alpha_sd"]),
        overdispersion_prior_sd=float(values["phi_sd"]),
        stationary_sd_prior_sd=float(values["s_sd"]),
        obs_predictions=bool(int(values["obs_predictions"])),
        entity_predictions=bool(int(values["entity_predictions"])), engine="cmdstan")


def expected_temporal_data(data: CountData, config: ModelConfig, values: dict[str, Any]
                           ) -> dict[str, Any]:
    """What this version writes for that data and config (compared with the JSON)."""
    expected = temporal_stan_data(data, config, prior_only=bool(int(values["prior_only"])),
                                  obs_predictions=bool(int(values["obs_predictions"])),
                                  scale=recorded_exposure_scale(values))
    if "exposure_scale" not in values:  # written before exposures were scaled
        expected.pop("exposure_scale", None)
    return expected


def temporal_inference_data(draws: Draws, data: CountData, config: ModelConfig,
                            scale: float = 1.0) -> Any:
    """The InferenceData `ratepool.workflow.temporal.fit_temporal` builds from the same draws
    (of a program that saw ``exposure / scale``)."""
    layout = check_temporal(data, config)
    draws = _in_row_order(draws, layout)
    return _add_temporal_variables(build_inference_data(draws, data, scale=scale), draws, None,
                                   layout)
