"""The temporal model (``ModelConfig(temporal="ar1")``): entity log rates drift as an AR(1).

- `window_layout`: the window column as steps (integers: steps of 1; dates and timestamps: the
  smallest positive difference between consecutive windows of an entity over the data), the
  rows ordered by entity then window, and the gap in steps between an entity's consecutive
  observed windows. Duplicated, missing and unorderable windows are refused here, before
  anything compiles.
- `check_temporal` and `temporal_stan_data`: the checks and the data dict of
  ``stan/temporal_negbinom.stan`` (see the layout at the top of that file).

The fit is `ratepool.workflow.temporal`, its outputs `ratepool.posterior.temporal_draws`. The
model, its priors (on the stationary sd s and on rho) and its gap handling are documented in
the Stan file and the docs ("Temporal dynamics").
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratepool.data.counts import CountData
from ratepool.data.labels import show
from ratepool.errors import ConfigError, DataError
from ratepool.model.config import ModelConfig

if TYPE_CHECKING:
    pass

__all__ = [
    "WindowLayout",
    "window_layout",
    "check_temporal",
    "temporal_stan_data",
    "TEMPORAL_PARAMETERS",
    "PATH_VARIABLES",
]

log = logging.getLogger(__name__)

#: Per-row Stan outputs (put back in the data's row order).
#: Population parameters of the AR(1) program.
TEMPORAL_PARAMETERS = ("rho", "s", "sigma")
PATH_VARIABLES = ("lambda", "y_rep", "log_lik")
#: Interval reported for the latent rates and the next window's count.
INTERVAL = 0.90
#: How many offending windows an error message shows.
_SHOW = 5
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+\Z")


@dataclass(frozen=True)
class WindowLayout:
    """The rows of a `CountData` in time order.

    Attributes
    ----------
    order : numpy.ndarray
        Row numbers (into ``data.y``) ordered by entity index, then by window.
    gap : numpy.ndarray
        Per ordered row: 0 on an entity's first window, else the number of steps since the
        entity's previous observed window (1 = consecutive).
    steps : numpy.ndarray
        Per original row: its window as a whole number of steps from the earliest window.
    windows : pandas.Index
        Per original row: the window as an ordered value (integers, or timestamps).
    step : str
        The step, as text ("1" for integer windows, e.g. "1 days 00:00:00" for dates).
    """

    order: np.ndarray
    gap: np.ndarray
    steps: np.ndarray
    windows: pd.Index
    step: str

    @property
    def inverse(self) -> np.ndarray:
        """Per original row: its position in ``order``."""
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(len(self.order))
        return inverse


def _column(name: str | None) -> str:
    return f"window column {name!r}" if name else "the window column"


def _ordered_windows(window: np.ndarray, name: str | None) -> tuple[pd.Index, str]:
    """The window labels as integers or timestamps, and the kind ("integer" or "time")."""
    values = pd.Series(window)
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"{_column(name)} holds true/false values; the temporal model "
                        "needs integer windows (1, 2, 3, ...) or dates")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return pd.Index(pd.to_datetime(values, utc=True)), "time"
    if values.dtype == object and values.map(
            lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)).all():
        values = values.astype(np.int64)
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.to_numpy(dtype=float)
        fractional = ~np.isfinite(numbers) | (numbers != np.round(numbers))
        if fractional.any():
            first = values[fractional].head(_SHOW).tolist()
            raise DataError(
                f"{_column(name)} holds numbers that are not whole: e.g. "
                f"{', '.join(show(v) for v in first)}; the temporal model needs integer windows "
                "(steps of 1) or dates. Number the windows 1, 2, 3, ... (or give dates)")
        return pd.Index(values.to_numpy(dtype=np.int64)), "integer"
    kinds = {type(v) for v in values}
    if kinds == {str}:
        texts = values.str.strip()
        if texts.str.match(_INTEGER_TEXT).all():
            return pd.Index(texts.astype(np.int64)), "integer"
    if kinds == {str} or all(issubclass(k, (dt.date, np.datetime64)) for k in kinds):
        try:
            return pd.Index(pd.to_datetime(values, utc=True, format="ISO8601")), "time"
        except (ValueError, TypeError, OverflowError):
            pass
    bad = [v for v in values.head(10_000) if not _is_time(v)][:_SHOW] or values.head(_SHOW)
    raise DataError(
        f"{_column(name)} holds values that are neither integers nor dates (or a mix), e.g. "
        f"{', '.join(show(v) for v in bad)}; the temporal model orders the windows, so give "
        "integers (1, 2, 3, ...: one step each) or ISO 8601 dates/timestamps (2026-01-31, "
        "2026-01-31T12:00)")


def _is_time(value: Any) -> bool:
    if not isinstance(value, (str, dt.date, np.datetime64)):
        return False
    try:
        pd.to_datetime(value, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return False
    return True


_UNITS = (("day", 86_400 * 10**9), ("hour", 3_600 * 10**9), ("minute", 60 * 10**9),
          ("second", 10**9))


def _describe_step(nanoseconds: int) -> str:
    """A time step as text: "1 day", "6 hours", "90 seconds", else pandas' Timedelta text."""
    for unit, size in _UNITS:
        if nanoseconds % size == 0:
            count = nanoseconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return str(pd.Timedelta(nanoseconds, unit="ns"))


def window_layout(data: CountData, window_col: str | None = None) -> WindowLayout:
    """Order the rows within each entity by window and measure the gaps in steps.

    Integer windows have a step of 1. For dates and timestamps the step is the smallest
    positive difference between two consecutive windows of one entity over the whole data;
    every other difference must be a whole multiple of it. ``window_col`` only names the
    column in messages.

    Raises
    ------
    DataError
        Without a window column or rows; for windows that are not integers or dates; for a
        window repeated within an entity; for date differences that are not multiples of the
        step. Each message names the entity and the windows.
    """
    if data.window is None or not data.has_rows:
        raise DataError(
            "the temporal model needs the window of every row: load the data with "
            "load_counts(..., window_col='window') or pass --window-col (pre-aggregated "
            "input has no windows; use the static model for it)")
    windows, kind = _ordered_windows(data.window, window_col)
    if kind == "time":
        ticks = windows.as_unit("ns").asi8  # nanoseconds since the epoch, UTC
    else:
        ticks = windows.to_numpy(dtype=np.int64)
    order = np.lexsort((ticks, data.entity_index))
    entity = data.entity_index[order]
    sorted_ticks = ticks[order]
    same_entity = entity[1:] == entity[:-1]
    differences = np.diff(sorted_ticks)
    repeated = same_entity & (differences == 0)
    if repeated.any():
        rows = np.flatnonzero(repeated)[:_SHOW]
        examples = ", ".join(
            f"entity {show(data.labels[entity[r]])} window {show(data.window[order[r]])}"
            for r in rows)
        raise DataError(
            f"{_column(window_col)}: {int(repeated.sum())} window(s) appear more than "
            f"once for the same entity, e.g. {examples}. The temporal model needs one row per "
            "entity and window: sum the counts of each window first")
    positive = differences[same_entity]
    if kind == "integer":
        step_ticks, step = 1, "1"
    elif positive.size:
        step_ticks = int(positive.min())
        step = _describe_step(step_ticks)
    else:
        step_ticks, step = 1, "none (every entity has one window)"
    uneven = same_entity & (differences % step_ticks != 0)
    if uneven.any():
        rows = np.flatnonzero(uneven)[:_SHOW]
        examples = ", ".join(
            f"entity {show(data.labels[entity[r]])}: {show(data.window[order[r]])} to "
            f"{show(data.window[order[r + 1]])}" for r in rows)
        raise DataError(
            f"{_column(window_col)}: the step (the smallest difference between "
            f"consecutive windows of an entity) is {step}, but some differences are not whole "
            f"multiples of it, e.g. {examples}. Put the windows on a regular grid (e.g. round "
            "timestamps to the hour or day)")
    gap = np.zeros(len(order), dtype=np.int64)
    gap[1:] = np.where(same_entity, differences // step_ticks, 0)
    if gap.max(initial=0) > 2**31 - 1:
        raise DataError(f"{_column(window_col)}: a gap of {int(gap.max())} steps of "
                        f"{step} exceeds Stan's integer range; use a coarser step")
    steps = (ticks - ticks.min()) // step_ticks
    return WindowLayout(order=order, gap=gap, steps=steps, windows=windows, step=step)


def check_temporal(data: CountData, config: ModelConfig) -> WindowLayout:
    """Refuse what the temporal model cannot fit, before anything compiles; return the layout.

    Raises
    ------
    ConfigError
        For options the temporal model does not have (zero-inflation, covariates, the
        non-centred parameterisation of theta).
    DataError
        For window problems (`window_layout`) and for more rows than
        ``config.max_temporal_windows``.
    """
    unsupported = [name for name, on in (
        ("zero_inflation", config.zero_inflation),
        ("covariates", bool(config.covariates) or data.covariates is not None),
        ("parameterization = 'non_centered'", config.parameterization == "non_centered"),
    ) if on]
    if unsupported:
        raise ConfigError(
            f"temporal = {config.temporal!r} does not support {', '.join(unsupported)}; turn "
            "these off, or fit the static model (temporal unset) to use them")
    if data.has_rows and data.n_windows_total > config.max_temporal_windows:
        raise DataError(
            f"the temporal model has one latent state per window and costs O(N) per gradient: "
            f"N = {data.n_windows_total} windows exceeds max_temporal_windows = "
            f"{config.max_temporal_windows} (the default, 10,000, is about 10 minutes of "
            "sampling at the default settings on an idle 2-core machine; see the README, "
            "'Temporal dynamics'). Fit the static model "
            "(drop --temporal / temporal = \"ar1\"), whose cost does not grow with N; or "
            "aggregate to coarser windows; or raise [model] max_temporal_windows")
    return window_layout(data)


def temporal_stan_data(
    data: CountData, config: ModelConfig, *, prior_only: bool = False,
    obs_predictions: bool | None = None, layout: WindowLayout | None = None,
    scale: float | None = None,
) -> dict[str, Any]:
    """The data dict of ``stan/temporal_negbinom.stan`` (JSON-ready Python types).

    ``obs_predictions`` (per-row ``y_rep``, ``log_lik`` and the latent path ``lambda``) follows
    the static model's rule when None: on while rows x draws <= max_obs_prediction_values.
    """
    from ratepool.model.standata import _obs_predictions

    from ratepool.model.standata import exposure_scale

    layout = layout or check_temporal(data, config)
    if obs_predictions is None:
        obs_predictions = _obs_predictions(config, data, config.total_draws)
    order = layout.order
    scale = exposure_scale(data) if scale is None else scale
    exposure = data.exposure[order] / scale if data.exposure is not None else np.ones(len(order))
    return {
        **({"exposure_scale": float(scale)} if data.exposure is not None else {}),
        "J": data.n_entities,
        "N": len(order),
        "entity": (data.entity_index[order] + 1).tolist(),
        "gap": layout.gap.tolist(),
        "y": data.y[order].tolist(),
        "exposure": exposure.astype(float).tolist(),
        "mu_rate": float(config.mu_prior_rate),
        "alpha_sd": float(config.alpha_prior_sd),
        "phi_sd": float(config.overdispersion_prior_sd),
        "s_sd": float(config.stationary_sd_prior_sd),
        "prior_only": int(prior_only),
        "obs_predictions": int(obs_predictions),
        "path_output": int(obs_predictions),
        # "auto" means on here: the temporal model's per-entity draws cannot be derived later.
        "entity_predictions": int(config.entity_predictions is not False),
    }


