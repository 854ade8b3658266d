"""Which per-entity and per-row predictive quantities the Stan program draws.

The per-entity generated quantities (``y_pred``, ``y_rep_total``, ``y_rep_zeros``,
``log_lik_entity``) are 4 J numbers per draw. For the base model each is an exact function of
that draw's theta and phi, so with ``ModelConfig(entity_predictions="auto")`` (the default) the
program draws them while J x draws is at most ``max_entity_prediction_values`` and otherwise
skips them; `ratepool.posterior.entity_predictive` then derives them on demand.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ratepool.data.counts import CountData

log = logging.getLogger(__name__)

if TYPE_CHECKING:

    from ratepool.model.config import ModelConfig


def derivable(data: CountData, config: ModelConfig) -> bool:
    """Whether the per-entity draws can be derived in numpy (the base model's laws: not with
    exposure, zero-inflation, the bytes factor or the temporal model)."""
    return (not data.has_exposure and not config.zero_inflation
            and data.window_bytes is None and config.temporal is None)


def entity_predictions_on(config: ModelConfig, data: CountData, draws: int) -> bool:
    """Whether the Stan program draws the per-entity quantities.

    As configured when ``entity_predictions`` is True or False; with ``"auto"``, on while
    ``n_entities * draws <= max_entity_prediction_values`` or when they cannot be derived in
    numpy (exposure, zero-inflation, bytes, temporal), off (with a log line) otherwise.
    """
    if isinstance(config.entity_predictions, bool):
        return config.entity_predictions
    size = data.n_entities * draws
    if size <= config.max_entity_prediction_values or not derivable(data, config):
        return True
    log.info(
        "per-entity y_pred, y_rep_total, y_rep_zeros and log_lik_entity are not drawn in Stan: "
        "%d entities x %d draws exceeds max_entity_prediction_values=%d; "
        "FitResult.entity_predictive() derives them exactly from the theta and phi draws "
        "(set entity_predictions=True to draw them in Stan)",
        data.n_entities, draws, config.max_entity_prediction_values,
    )
    return False
