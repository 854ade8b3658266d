"""Entity covariates: validation, one-hot encoding, centring and scaling.

The model uses ``log mu_i = log mu + z_i' beta`` where ``z_i = (x_i - center) / scale`` are the
entity's covariates centred and scaled by ratepool, and ``mu`` is the rate of an entity with
average covariates. A continuous column is scaled by its sd, so ``beta ~ Normal(0, beta_sd)`` is
the prior of the log rate ratio per sd of the covariate; a two-valued column (a categorical
level's 0/1 dummy, or a binary column) by the distance between its values, so ``beta_sd`` is
the prior sd of the log rate ratio between its two values, whatever share of the entities
holds each (dividing a 0/1 column by its sd would give a level held by 2% of the entities a
prior sd 7.1 times ``beta_sd``). This is rstanarm's convention. Reported on
the original scale, a coefficient is ``beta_p / scale_p`` per unit of covariate p, and its rate
ratio ``exp(beta_p / scale_p)``. A categorical covariate with levels L_0 < L_1 < ... becomes one
0/1 column per level but the first (the reference level, named in the output): its rate ratio
compares that level with the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ratepool.data.labels import show
from ratepool.errors import DataError

__all__ = ["EntityCovariates", "encode_covariates"]

#: Relative singular-value threshold below which the design is called collinear.
_COLLINEAR_TOL = 1e-8


@dataclass(frozen=True)
class EntityCovariates:
    """Covariates of the J entities, encoded for the model.

    Attributes
    ----------
    names : tuple of str
        One name per model column: the covariate, or ``"column[level]"`` for a level of a
        categorical covariate.
    values : numpy.ndarray
        J x P design on the original scale (0/1 for the levels of categorical covariates).
    center, scale : numpy.ndarray
        Per column mean and standard deviation used to build the model's matrix.
    reference_levels : dict
        Categorical covariate -> its reference level (absorbed into mu).
    source_columns : tuple of str
        The covariate columns as the user named them.
    """

    names: tuple[str, ...]
    values: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    reference_levels: dict[str, object]
    source_columns: tuple[str, ...]
    #: The covariates per entity as given (J rows, one column per source column), so that an
    #: export can carry them and a reader re-encode them exactly; None after `from_encoding`.
    source_values: pd.DataFrame | None = None

    @property
    def n_columns(self) -> int:
        """P, the number of model columns."""
        return len(self.names)

    @property
    def scaled(self) -> np.ndarray:
        """The J x P matrix the Stan program receives: ``(values - center) / scale``."""
        return (self.values - self.center) / self.scale

    def encoding(self) -> dict[str, Any]:
        """What encoding new entities needs (no per-entity values), JSON-ready."""
        return {"names": list(self.names), "center": self.center.tolist(),
                "scale": self.scale.tolist(),
                "reference_levels": {k: str(v) for k, v in self.reference_levels.items()},
                "source_columns": list(self.source_columns)}

    @classmethod
    def from_encoding(cls, encoding: dict[str, Any]) -> "EntityCovariates":
        """The encoding saved by `encoding` (``values`` is then empty: 0 entities)."""
        names = tuple(encoding["names"])
        return cls(names, np.zeros((0, len(names))), np.asarray(encoding["center"], float),
                   np.asarray(encoding["scale"], float), dict(encoding["reference_levels"]),
                   tuple(encoding["source_columns"]))

    def scale_new(self, rows: pd.DataFrame) -> np.ndarray:
        """Encode covariate values of new entities (one row each) like the fitted ones."""
        missing = [c for c in self.source_columns if c not in rows.columns]
        if missing:
            raise DataError(f"the new entities have no covariate column(s) {missing}")
        design = np.column_stack([_column_values(rows, name, self.reference_levels)
                                  for name in self.names]) if self.names else np.zeros((len(rows), 0))
        return (design - self.center) / self.scale


def _column_values(rows: pd.DataFrame, name: str, references: dict[str, object]) -> np.ndarray:
    if "[" in name and name.endswith("]") and name.split("[", 1)[0] in references:
        column, level = name[:-1].split("[", 1)
        return (rows[column].astype(str) == level).to_numpy(dtype=float)
    values = pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float)
    if np.isnan(values).any():
        raise DataError(f"covariate {name!r} of the new entities must be numbers without gaps")
    return values


def encode_covariates(frame: pd.DataFrame, columns: Sequence[str], entity_col: str,
                      codes: np.ndarray, labels: pd.Index,
                      where: Callable[[Any], str] = lambda index: f"index {show(index)}",
                      ) -> EntityCovariates:
    """Validate and encode entity covariates given on the rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        The raw rows.
    columns : sequence of str
        Covariate columns. Numeric columns are used as numbers; text, boolean and
        categorical columns are one-hot encoded with their first level (sorted) as reference.
    entity_col : str
        Entity column (for messages).
    codes : numpy.ndarray
        0-based entity index of each row.
    labels : pandas.Index
        Entity labels in index order.
    where : callable
        Names the place of a row (given its index label) in messages.

    Raises
    ------
    DataError
        A missing value, a covariate that differs between the rows of one entity (naming the
        entity and column), a constant column, or collinear columns; before anything compiles.
    """
    columns = list(columns)
    if len(set(columns)) != len(columns):
        raise DataError(f"covariates {columns} name a column more than once")
    missing_columns = [c for c in columns if c not in frame.columns]
    if missing_columns:
        raise DataError(f"the data has no covariate column(s) {missing_columns}; its columns "
                        f"are {list(frame.columns)}")
    if entity_col in columns:
        raise DataError(f"the entity column {entity_col!r} cannot also be a covariate")
    names: list[str] = []
    blocks: list[np.ndarray] = []
    source: dict[str, pd.Series] = {}
    references: dict[str, object] = {}
    first_row = _first_row_per_entity(codes, len(labels))
    for column in columns:
        series = frame[column]
        missing = series.isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise DataError(
                f"covariate column {column!r} has {int(missing.sum())} missing value(s), first "
                f"at {where(frame.index[row])} (entity {show(labels[codes[row]])}); fill them "
                "in or drop the covariate")
        _check_constant_within_entity(series, codes, labels, column, entity_col)
        per_entity = series.iloc[first_row].reset_index(drop=True)
        source[column] = per_entity
        if _is_numeric(series):
            blocks.append(per_entity.to_numpy(dtype=float)[:, None])
            names.append(column)
        else:
            levels = sorted(per_entity.astype(str).unique())
            if len(levels) < 2:
                raise DataError(f"covariate column {column!r} has the single level "
                                f"{levels[0]!r} over all entities: it cannot be estimated "
                                "apart from mu; drop it")
            references[column] = levels[0]
            text = per_entity.astype(str).to_numpy()
            blocks.append(np.column_stack([(text == level).astype(float)
                                           for level in levels[1:]]))
            names.extend(f"{column}[{level}]" for level in levels[1:])
    values = np.hstack(blocks) if blocks else np.zeros((len(labels), 0))
    center = values.mean(axis=0)
    scale = _column_scales(values)
    constant = [name for name, s in zip(names, scale) if not s > 0]
    if constant:
        raise DataError(f"covariate(s) {constant} take the same value for every entity: they "
                        "cannot be estimated apart from mu; drop them")
    _check_collinear(values, center, scale, names)
    return EntityCovariates(tuple(names), values, center, scale, references, tuple(columns),
                            pd.DataFrame(source))


def _column_scales(values: np.ndarray) -> np.ndarray:
    """Per column: a two-valued column (a categorical level's 0/1 dummy, or any binary column)
    is scaled by the distance between its two values, so that beta is the log rate ratio of
    one value against the other and ``beta_sd`` is its prior sd whatever the level's share; a
    continuous column by its sd (rstanarm's convention). 0 marks a constant column."""
    scales = values.std(axis=0)
    for j in range(values.shape[1]):
        distinct = np.unique(values[:, j])
        if len(distinct) == 2:
            scales[j] = distinct[1] - distinct[0]
    return scales


def _is_numeric(series: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(series.dtype)
            and not pd.api.types.is_bool_dtype(series.dtype))


def _first_row_per_entity(codes: np.ndarray, n_entities: int) -> np.ndarray:
    first = np.full(n_entities, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return first


def _check_constant_within_entity(series: pd.Series, codes: np.ndarray, labels: pd.Index,
                                  column: str, entity_col: str) -> None:
    values = pd.Series(series.to_numpy(), index=codes)
    distinct = values.groupby(level=0).nunique(dropna=False)
    varying = distinct.index[distinct.to_numpy() > 1]
    if len(varying):
        entity = show(labels[int(varying[0])])
        seen = sorted(map(str, values.loc[int(varying[0])].unique()))[:5]
        raise DataError(
            f"covariate column {column!r} differs between the rows of entity {entity} "
            f"(values {seen}; {len(varying)} entit{'y' if len(varying) == 1 else 'ies'} in all): "
            f"entity covariates must be constant within an entity ({entity_col!r}). Use a "
            "per-entity value (e.g. the baseline), or model the change as exposure")


def _check_collinear(values: np.ndarray, center: np.ndarray, scale: np.ndarray,
                     names: list[str]) -> None:
    if not names:
        return
    scaled = (values - center) / scale
    singular = np.linalg.svd(scaled, compute_uv=False)
    if len(names) > values.shape[0] - 1 or singular.min() <= _COLLINEAR_TOL * singular.max():
        # Name a smallest set of columns that is linearly dependent, via the null space.
        _, _, vt = np.linalg.svd(scaled)
        weights = np.abs(vt[-1])
        involved = [n for n, w in zip(names, weights) if w > 1e-6]
        raise DataError(
            f"covariates {involved} are collinear over the {values.shape[0]} entities (one is a "
            "linear combination of the others, or there are more covariate columns than "
            "entities - 1): their effects cannot be told apart; drop one of them")
