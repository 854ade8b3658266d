"""The benchmarks' simulated data: N windows split unequally among J entities, NB2 counts.

Seeded and numpy-vectorised: window shares are Gamma(1) weights (each entity has at least one
window), theta_i ~ Gamma(mu * alpha, alpha) and counts NB2(theta_i, phi) with the values of
``TRUTH``. As rows (`simulate_rows`), as a CSV or Parquet file of those rows (`data_file`), or
as the sufficient statistics only (`simulate_aggregates`, for N beyond memory).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TRUTH = {"mu": 4.0, "alpha": 2.0, "phi": 3.0}
#: Rows simulated at a time by `simulate_aggregates`.
CHUNK_ROWS = 5_000_000


def _window_split(rng: np.random.Generator, n_rows: int, n_entities: int) -> np.ndarray:
    """Windows per entity: each at least one, the rest split by Gamma(1) weights."""
    weights = rng.gamma(1.0, size=n_entities)
    return 1 + rng.multinomial(n_rows - n_entities, weights / weights.sum())


def _labels(n_entities: int) -> np.ndarray:
    width = max(5, len(str(n_entities - 1)))
    return np.array([f"host-{i:0{width}d}" for i in range(n_entities)], dtype=object)


def simulate_rows(n_rows: int, n_entities: int, seed: int) -> pd.DataFrame:
    """N rows split unequally among J entities (each at least one window), vectorised.

    Window shares are Gamma(1) weights, so entity sizes vary roughly exponentially. Counts are
    NB2(theta_i, phi) with theta_i ~ Gamma(mu * alpha, alpha).
    """
    from ratepool.model.simulate import draw_entity_rates, nb2_draws

    rng = np.random.default_rng(seed)
    n_windows = _window_split(rng, n_rows, n_entities)
    theta = draw_entity_rates(rng, TRUTH["mu"], TRUTH["alpha"], n_entities)
    entity = np.repeat(np.arange(n_entities), n_windows)
    rng.shuffle(entity)  # rows in arbitrary order, as in a log
    counts = nb2_draws(rng, theta[entity], TRUTH["phi"])
    return pd.DataFrame({"entity": _labels(n_entities)[entity], "count": counts})


def simulate_aggregates(n_rows: int, n_entities: int, seed: int) -> tuple[pd.DataFrame,
                                                                          pd.DataFrame]:
    """The same model's sufficient statistics, simulated CHUNK_ROWS windows at a time.

    Returns the entity table (entity, n_windows, total_count) and the count histogram (value,
    frequency) that `ratepool.from_aggregates` reads.
    """
    from ratepool.model.simulate import draw_entity_rates, nb2_draws

    rng = np.random.default_rng(seed)
    n_windows = _window_split(rng, n_rows, n_entities)
    theta = draw_entity_rates(rng, TRUTH["mu"], TRUTH["alpha"], n_entities)
    totals = np.zeros(n_entities, dtype=np.int64)
    histogram = np.zeros(1, dtype=np.int64)
    ends = np.cumsum(n_windows)
    start = 0
    while start < n_entities:
        stop = int(np.searchsorted(ends, ends[start] - n_windows[start] + CHUNK_ROWS,
                                   side="right"))
        stop = max(stop, start + 1)
        block = np.arange(start, stop)
        entity = np.repeat(block, n_windows[start:stop])
        counts = nb2_draws(rng, theta[entity], TRUTH["phi"])
        totals[start:stop] = np.bincount(entity - start, weights=counts,
                                         minlength=stop - start).astype(np.int64)
        found = np.bincount(counts)
        if len(found) > len(histogram):
            histogram = np.pad(histogram, (0, len(found) - len(histogram)))
        histogram[:len(found)] += found
        start = stop
    entities = pd.DataFrame({"entity": _labels(n_entities), "n_windows": n_windows,
                             "total_count": totals})
    values = np.flatnonzero(histogram)
    return entities, pd.DataFrame({"value": values, "frequency": histogram[values]})


def data_file(directory: Path, kind: str, n_rows: int, n_entities: int, seed: int) -> Path:
    """The case's rows (`simulate_rows`) as a CSV or Parquet file in ``directory``, written
    once (by DuckDB) and reused by later runs."""
    import duckdb

    path = directory / f"ratepool-bench-{n_rows}-{n_entities}-{seed}.{kind}"
    if not path.exists():
        frame = simulate_rows(n_rows, n_entities, seed)
        partial = path.with_suffix(f".partial.{kind}")
        options = "FORMAT parquet" if kind == "parquet" else "FORMAT csv, HEADER"
        duckdb.sql(f"COPY (SELECT * FROM frame) TO '{partial}' ({options})")
        partial.rename(path)
    return path
