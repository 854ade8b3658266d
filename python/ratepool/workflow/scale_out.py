"""Many entities beyond one NUTS run: hyperparameters from every entity's sufficient
statistics, then every entity's rate exactly.

`fit_scaled` works in three steps, each where the data live:

1. **Aggregate.** The rows are reduced to each entity's windows n_i and total S_i and the
   histogram of the counts (on the Dask cluster or Spark session that holds them,
   `ratepool.from_dask` / `ratepool.from_spark`; in memory for a pandas DataFrame). O(J)
   numbers reach the driver.
2. **Hyperparameters.** ``hyperparameters="all"`` (the default): from all J entities, each
   entity's rate integrated out of its likelihood by quadrature (it needs only (n_i, S_i), so
   the cost is per distinct pair), sampled by Pareto-smoothed importance sampling
   (`ratepool.posterior.hyper_marginal`); if its Pareto k says the weights cannot be trusted
   (hyperparameters the data barely identify, e.g. one window per entity) or it fails, it
   falls back to the next. ``hyperparameters="subsample"``: ``subsample`` entities are drawn at random
   (seeded) and their rows fitted with NUTS (`ratepool.fit`, the usual engines and
   diagnostics); their posterior draws of (mu, alpha, phi) stand for the full data's.
3. **Every entity's rate given those draws**, exactly: given a draw, entity i's rate has a 1-D
   conditional posterior that needs only (n_i, S_i) (`ratepool.posterior.entity_conditional`),
   computed by quadrature and averaged over the draws. Entities with the same (n_i, S_i) share
   it; the distinct pairs are mapped over the cluster (Dask ``map_partitions``, Spark
   ``mapInPandas``) or computed in memory.

**What it approximates.** With ``"all"``, nothing but the quadrature (checked against mpmath)
and the Monte Carlo error of the importance sampler: the hyperparameters' posterior is the
full fit's, and the entity means are the Rao-Blackwellised versions of the full fit's (same
expectation, smaller Monte Carlo error). With ``"subsample"``: the hyperparameters' posterior
given the subsample, not given all J entities, so it is about sqrt(J / subsample) times wider
than the full fit's and its centre moves by about that much; with ``subsample >= J`` it is the
full fit's.
The base model only: exposure, covariates, zero-inflation, bytes and temporal fits need more
than (n_i, S_i) and are refused.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ratepool.data.counts import CountData
from ratepool.data.frame import from_dataframe
from ratepool.errors import ConfigError, DataError, RatepoolError
from ratepool.model.config import ModelConfig
from ratepool.model.description import describe_config
from ratepool.posterior.entity_conditional import HyperDraws, entity_summaries
from ratepool.posterior.fit_result import FitResult
from ratepool.posterior.hyper_marginal import (
    EntityStatistics,
    MarginalHyperFit,
    pareto_k_limit,
    sample_hyperparameters,
)

__all__ = ["ScaledFit", "fit_scaled", "DEFAULT_SUBSAMPLE", "DEFAULT_DRAWS", "HYPERPARAMETERS"]

log = logging.getLogger(__name__)

#: Entities in the NUTS fit of the hyperparameters (J = 2,000 x 500 windows fits in ~30 s).
DEFAULT_SUBSAMPLE = 20_000
#: Hyperparameter draws each entity's rate is averaged over (thinned evenly from the fit's).
DEFAULT_DRAWS = 1000
#: How `fit_scaled` draws the hyperparameters (module docstring).
HYPERPARAMETERS = ("all", "subsample")
#: Distinct (n, S) pairs per cluster partition.
PAIRS_PER_PARTITION = 20_000


@dataclass(frozen=True)
class ScaledFit:
    """The result of `fit_scaled`.

    Attributes
    ----------
    entities : pandas.DataFrame
        One row per entity (label order of the aggregated data): ``entity``, ``n_windows``,
        ``total``, ``mean``, ``sd``, ``lower``, ``upper`` (`entity_summaries`) and
        ``in_subsample`` (the entities the hyperparameters were drawn from).
    hyper : FitResult or None
        The NUTS fit of the subsample (its diagnostics are the run's diagnostics); None when
        the hyperparameters come from every entity.
    draws : HyperDraws
        The hyperparameter draws the entity rates are averaged over.
    n_entities : int
        J, all entities.
    marginal : MarginalHyperFit or None
        The importance sampler of the hyperparameters given every entity (its Pareto k and
        ESS are the run's diagnostics); None for a subsample fit.
    """

    entities: pd.DataFrame
    hyper: FitResult | None
    draws: HyperDraws
    n_entities: int
    marginal: MarginalHyperFit | None = None

    @property
    def method(self) -> str:
        """``"all"`` or ``"subsample"``: where the hyperparameter draws came from."""
        return "subsample" if self.hyper is not None else "all"

    @property
    def n_subsample(self) -> int:
        """Entities the hyperparameters were drawn from."""
        return self.hyper.data.n_entities if self.hyper is not None else self.n_entities

    def summary(self) -> str:
        """Plain-text summary: sizes, hyperparameters, the approximation."""
        rows = [f"{name:<6} {np.mean(v):10.4g}  90% [{np.quantile(v, 0.05):.4g}, "
                f"{np.quantile(v, 0.95):.4g}]"
                for name, v in (("mu", self.draws.mu), ("alpha", self.draws.alpha),
                                ("phi", self.draws.phi))]
        if self.marginal is not None:
            return "\n".join([
                f"{self.n_entities} entities; hyperparameters from all of them, rates "
                f"integrated out ({self.draws.n_draws} draws; importance sampling: Pareto k "
                f"{self.marginal.pareto_k:.2f}, ESS {self.marginal.ess:.0f} of "
                f"{self.marginal.n_proposals})",
                *rows,
            ])
        widen = math.sqrt(self.n_entities / self.n_subsample)
        return "\n".join([
            f"{self.n_entities} entities; hyperparameters from a NUTS fit of "
            f"{self.n_subsample} of them ({self.draws.n_draws} draws)",
            *rows,
            ("hyperparameters are the full data's posterior" if widen <= 1.0 else
             f"hyperparameter intervals are those of the subsample: about {widen:.1f}x "
             "wider than a fit of all entities would give"),
        ])


def _source_kind(source: Any) -> str:
    if isinstance(source, pd.DataFrame):
        return "pandas"
    module = type(source).__module__
    if module.startswith("dask"):
        return "dask"
    if module.startswith("pyspark"):
        return "spark"
    raise DataError(f"fit_scaled reads a pandas, Dask or Spark DataFrame of rows, got "
                    f"{type(source).__name__}; for a file use dask.dataframe.read_csv / "
                    "read_parquet (or spark.read)")


def _check_config(config: ModelConfig) -> None:
    options = list(describe_config(config).options)
    if options:
        raise ConfigError(
            f"fit_scaled fits the base model only; the config sets {options}. An entity's "
            "rate given the hyperparameters then needs more than its windows and total: fit "
            "these options with ratepool.fit")


def _aggregate(kind: str, source: Any, columns: dict[str, Any]) -> CountData:
    """The sufficient statistics only (no rows), whatever the source: the subsample fit then
    gets the same Stan data from pandas, Dask and Spark rows."""
    if kind == "pandas":
        return dataclasses.replace(from_dataframe(source, **columns), entity_index=None,
                                   y=None, window=None)
    if kind == "dask":
        from ratepool.data.dask_source import from_dask
        return from_dask(source, **columns)
    from ratepool.data.spark_source import from_spark
    return from_spark(source, **columns)


def _rows_of(kind: str, source: Any, entity_col: str, labels: list[Any]) -> Any:
    """The rows of the entities ``labels``, filtered where they live."""
    if kind == "pandas":
        return source.loc[source[entity_col].isin(labels)]
    if kind == "dask":
        return source.loc[source[entity_col].isin(labels)]
    from pyspark.sql import functions

    chosen = source.sparkSession.createDataFrame(
        [(label,) for label in labels], schema=source.select(entity_col).schema)
    return source.join(functions.broadcast(chosen), on=entity_col, how="inner")


def _partition_summaries(pairs: pd.DataFrame, draws: HyperDraws,
                         interval: float) -> pd.DataFrame:
    """Summaries of one partition of distinct (n_windows, total) pairs."""
    table = entity_summaries(pairs["n_windows"].to_numpy(), pairs["total"].to_numpy(),
                             draws, interval)
    table.index = pairs.index
    return pd.concat([pairs, table], axis=1)


_SUMMARY_COLUMNS = ["mean", "sd", "lower", "upper"]


def _map_pairs(kind: str, source: Any, pairs: pd.DataFrame, draws: HyperDraws,
               interval: float) -> pd.DataFrame:
    """`_partition_summaries` over the distinct pairs, on the source's cluster."""
    parts = max(1, math.ceil(len(pairs) / PAIRS_PER_PARTITION))
    if kind == "dask":
        import dask.dataframe as dd

        meta = pairs.head(0).assign(**{c: pd.Series(dtype=float) for c in _SUMMARY_COLUMNS})
        frame = dd.from_pandas(pairs, npartitions=parts)
        return frame.map_partitions(_partition_summaries, draws, interval,
                                    meta=meta).compute().sort_index()
    if kind == "spark":
        spark = source.sparkSession
        schema = ("n_windows long, total long, " +
                  ", ".join(f"{c} double" for c in _SUMMARY_COLUMNS))

        def summarise(batches):
            for batch in batches:
                yield _partition_summaries(batch, draws, interval).reset_index(drop=True)

        frame = spark.createDataFrame(pairs).repartition(parts)
        out = frame.mapInPandas(summarise, schema=schema).toPandas()
        return out.set_index(["n_windows", "total"]).loc[
            list(zip(pairs["n_windows"], pairs["total"]))].reset_index()
    return _partition_summaries(pairs, draws, interval)


def _thinned(values: np.ndarray, n: int) -> np.ndarray:
    if n >= len(values):
        return values
    return values[np.linspace(0, len(values) - 1, n).round().astype(int)]


def fit_scaled(
    source: Any,
    config: ModelConfig | None = None,
    *,
    hyperparameters: str = "all",
    subsample: int = DEFAULT_SUBSAMPLE,
    draws: int = DEFAULT_DRAWS,
    interval: float = 0.9,
    engine: str | None = None,
    entity_col: str = "entity",
    count_col: str = "count",
    window_col: str | None = None,
    allow_duplicate_windows: bool = False,
) -> ScaledFit:
    """Fit the base model to many entities: hyperparameters from every entity (rates
    integrated out) or from a random subsample by NUTS, then every entity's rate exactly given
    those hyperparameter draws (module docstring).

    Parameters
    ----------
    source : pandas, Dask or Spark DataFrame
        One row per entity and window. Dask and Spark rows are aggregated and filtered where
        they live, and the per-entity work is mapped over the same cluster.
    config : ModelConfig, optional
        Priors and sampler settings of the subsample fit; its ``random_seed`` also draws the
        subsample and seeds the importance sampler. Base model only (no exposure, covariates,
        zero-inflation, bytes, temporal).
    hyperparameters : {"all", "subsample"}
        ``"all"``: from every entity by importance sampling, falling back to ``"subsample"``
        (with a logged warning) when its Pareto k exceeds `pareto_k_limit` or the sampler
        fails; ``"subsample"``: NUTS on a random subsample.
    subsample : int
        Entities in the NUTS fit (all of them when J is smaller).
    draws : int
        Hyperparameter draws to average each entity's rate over (evenly thinned).
    interval : float
        Central probability of each entity's ``lower``/``upper``.
    engine : str, optional
        Engine of the subsample fit (as in `ratepool.fit`).
    entity_col, count_col, window_col, allow_duplicate_windows
        As in `ratepool.from_dataframe`.

    Returns
    -------
    ScaledFit

    Raises
    ------
    ConfigError
        If the config turns on an option other than the base model, ``hyperparameters`` is
        not one of `HYPERPARAMETERS`, or ``subsample`` < 2 or ``draws`` < 1 (before any
        work).
    """
    from ratepool.workflow.fit import fit

    config = config or ModelConfig()
    _check_config(config)
    if int(subsample) < 2 or int(draws) < 1:
        raise ConfigError(f"subsample must be >= 2 and draws >= 1, got {subsample!r} and "
                          f"{draws!r}")
    if hyperparameters not in HYPERPARAMETERS:
        raise ConfigError(f"hyperparameters must be one of {list(HYPERPARAMETERS)}, got "
                          f"{hyperparameters!r}")
    kind = _source_kind(source)
    columns = dict(entity_col=entity_col, count_col=count_col, window_col=window_col,
                   allow_duplicate_windows=allow_duplicate_windows)
    data = _aggregate(kind, source, columns)
    hyper: FitResult | None = None
    marginal: MarginalHyperFit | None = None
    chosen = np.arange(data.n_entities)
    if hyperparameters == "all":
        statistics = EntityStatistics.from_entities(data.n_windows, data.entity_total,
                                                    data.count_value, data.count_freq)
        try:
            marginal = sample_hyperparameters(statistics, config, int(draws))
        except RatepoolError as error:
            log.warning("fit_scaled: the hyperparameters given every entity could not be "
                        "sampled (%s); falling back to NUTS on a subsample", error)
        else:
            if not marginal.reliable:
                log.warning("fit_scaled: the importance weights of the hyperparameters given "
                            "every entity are not reliable (Pareto k %.2f > %.2f: the data "
                            "barely identify them); falling back to NUTS on a subsample",
                            marginal.pareto_k, pareto_k_limit(marginal.n_proposals))
                marginal = None
    if marginal is None:
        rng = np.random.default_rng(config.random_seed)
        n_sub = min(int(subsample), data.n_entities)
        chosen = np.sort(rng.choice(data.n_entities, size=n_sub, replace=False))
        labels = [getattr(label, "item", lambda label=label: label)()  # numpy -> Python
                  for label in data.labels[chosen]]
        sub_rows = (source if n_sub == data.n_entities
                    else _rows_of(kind, source, entity_col, labels))
        sub_data = data if n_sub == data.n_entities else _aggregate(kind, sub_rows, columns)
        log.info("fit_scaled: %d entities, NUTS on %d of them", data.n_entities, n_sub)
        hyper = fit(sub_data, config, engine=engine)
        posterior = hyper.idata.posterior
        hyper_draws = HyperDraws(*(_thinned(posterior[name].values.reshape(-1), int(draws))
                                   for name in ("mu", "alpha", "phi")))
    else:
        hyper_draws = marginal.draws
    pairs = (pd.DataFrame({"n_windows": data.n_windows, "total": data.entity_total})
             .drop_duplicates().sort_values(["n_windows", "total"]).reset_index(drop=True))
    log.info("fit_scaled: %d distinct (windows, total) pairs x %d draws", len(pairs),
             hyper_draws.n_draws)
    summaries = _map_pairs(kind, source, pairs, hyper_draws, interval)
    entities = pd.DataFrame({"entity": data.labels, "n_windows": data.n_windows,
                             "total": data.entity_total})
    entities = entities.merge(summaries, on=["n_windows", "total"], how="left", sort=False)
    in_subsample = np.zeros(data.n_entities, dtype=bool)
    in_subsample[chosen] = True
    entities["in_subsample"] = in_subsample
    return ScaledFit(entities=entities, hyper=hyper, draws=hyper_draws,
                     n_entities=data.n_entities, marginal=marginal)
