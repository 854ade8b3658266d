"""Calibration checks of scoring on data simulated from a fit's own posterior predictive.

Used by the tests (small) and ``scripts/score_calibration.py`` (the README's figures):

* `predictive_rows` draws new windows from the exact posterior predictive: each row picks a
  posterior draw at random and draws NB2(theta_i, phi) at it (theta_new for unseen entities),
  so the rows are independent draws from the law the scoring assumes;
* `inject_spikes` replaces a share of the rows by draws at ``factor`` times their rate;
* `null_flag_rates` scores many null data sets and reports how often BH flags anything (with no
  anomalies every flag is false, so that is the false discovery rate);
* `spike_power` reports the share of spiked rows flagged, by the entity's rate.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ratepool.model.simulate import nb2_draws
from ratepool.posterior.anomaly import AnomalyRule, benjamini_hochberg
from ratepool.posterior.predictive import PosteriorRates
from ratepool.posterior.score import score_rows

__all__ = ["predictive_rows", "inject_spikes", "null_flag_rates", "spike_power"]


def predictive_rows(rates: PosteriorRates, n_windows: int, rng: np.random.Generator,
                    n_new: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """``n_windows`` rows per fitted entity (and per each of ``n_new`` unseen ones).

    Returns
    -------
    (frame, theta) : the rows (entity, window, count) and the rate each row was drawn at.
    """
    labels = list(rates.labels) + [f"new-{i}" for i in range(n_new)]
    codes = np.repeat(np.minimum(np.arange(len(labels)), rates.n_entities), n_windows)
    draw = rng.integers(0, rates.n_draws, len(codes))
    theta = rates.rates(np.arange(rates.n_entities + 1))[draw, codes]
    counts = nb2_draws(rng, theta, rates.phi[draw])
    entity = np.empty(len(codes), dtype=object)
    entity[:] = np.repeat(np.asarray(labels, dtype=object), n_windows)
    frame = pd.DataFrame({"entity": entity, "window": np.tile(np.arange(n_windows), len(labels)),
                          "count": counts})
    return frame, theta


def inject_spikes(frame: pd.DataFrame, theta: np.ndarray, rates: PosteriorRates,
                  rng: np.random.Generator, *, factor: float = 5.0,
                  share: float = 0.02) -> tuple[pd.DataFrame, np.ndarray]:
    """A copy of ``frame`` with a random ``share`` of rows redrawn at ``factor`` x their rate."""
    spiked = rng.random(len(frame)) < share
    out = frame.copy()
    phi = rates.phi[rng.integers(0, rates.n_draws, int(spiked.sum()))]
    out.loc[spiked, "count"] = nb2_draws(rng, factor * theta[spiked], phi)
    return out, spiked


def null_flag_rates(rates: PosteriorRates, *, n_repeats: int, n_windows: int,
                    fdr_levels: Sequence[float], seed: int) -> pd.DataFrame:
    """Score ``n_repeats`` anomaly-free data sets; per q, how often BH flags anything.

    All repeats are scored in one `score_rows` call (each row's p-value depends only on its own
    entity and count), then BH runs on each repeat's rows alone.

    Returns
    -------
    pandas.DataFrame
        Per q: ``any_flag_rate`` (the FDR, as every flag is false), its Monte Carlo standard
        error, and ``flags_per_row`` (the per-row false flag rate).
    """
    rng = np.random.default_rng(seed)
    frames = [predictive_rows(rates, n_windows, rng)[0] for _ in range(n_repeats)]
    rows = len(frames[0])
    both = pd.concat(frames, ignore_index=True)
    p = score_rows(rates, both["entity"], both["count"].to_numpy(),
                   rule=AnomalyRule(fdr=None, per_window_alpha=0.5)).table["p_value"].to_numpy()
    p = p.reshape(n_repeats, rows)
    records = []
    for q in fdr_levels:
        flags = np.array([benjamini_hochberg(one, q)[0].sum() for one in p])
        rate = float((flags > 0).mean())
        records.append({"q": q, "repeats": n_repeats, "rows_per_repeat": rows,
                        "any_flag_rate": rate,
                        "mcse": float(np.sqrt(max(rate * (1 - rate), q * (1 - q)) / n_repeats)),
                        "flags_per_row": float(flags.sum() / p.size)})
    return pd.DataFrame(records)


def spike_power(rates: PosteriorRates, *, n_windows: int, factor: float, share: float,
                fdr: float, seed: int,
                rate_bands: Sequence[float] = (0.0, 2.0, 5.0, 10.0, np.inf)) -> dict[str, Any]:
    """Inject spikes into posterior predictive data, score at FDR ``fdr``, measure the flags.

    Returns
    -------
    dict
        ``power`` (share of spiked rows flagged), ``false_flags``, ``flags``, ``fdp`` (false
        share of the flags), ``spikes``, ``rows`` and ``by_rate``: a table of power per band
        of the entity's posterior mean rate.
    """
    rng = np.random.default_rng(seed)
    frame, theta = predictive_rows(rates, n_windows, rng)
    frame, spiked = inject_spikes(frame, theta, rates, rng, factor=factor, share=share)
    table = score_rows(rates, frame["entity"], frame["count"].to_numpy(),
                       rule=AnomalyRule(fdr=fdr)).table
    flagged = table["anomaly"].to_numpy()
    mean_rate = rates.theta.mean(axis=0)[rates.entity_codes(frame["entity"])]
    band = pd.cut(mean_rate[spiked], list(rate_bands), right=False)
    by_rate = (pd.DataFrame({"rate": band, "flagged": flagged[spiked]})
               .groupby("rate", observed=False)["flagged"].agg(["size", "mean"])
               .rename(columns={"size": "spikes", "mean": "power"}))
    false = int((flagged & ~spiked).sum())
    return {"rows": len(frame), "spikes": int(spiked.sum()),
            "power": float(flagged[spiked].mean()), "flags": int(flagged.sum()),
            "false_flags": false, "fdp": false / max(int(flagged.sum()), 1),
            "by_rate": by_rate}
