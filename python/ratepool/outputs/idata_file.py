"""The results folder's ``inference_data.nc``: netCDF stores entity labels of one type only,
so mixed-type labels are written as strings with their Python types recorded, and read back
with those types (`load_inference_data`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np

__all__ = ["load_inference_data", "LABEL_TYPES_ATTR"]

#: Attribute on every InferenceData group recording the Python types of the entity labels
#: when they had to be stored as strings (mixed-type labels).
LABEL_TYPES_ATTR = "ratepool_entity_label_types"

def _encode_labels(idata: az.InferenceData) -> az.InferenceData:
    """A copy whose ``entity`` coordinate netCDF can store: mixed-type labels become strings."""
    labels = np.asarray(idata.posterior["entity"].values) if "posterior" in idata.groups() \
        else np.asarray(idata.observed_data["entity"].values)
    if labels.dtype != object or all(isinstance(v, str) for v in labels):
        return idata
    types = json.dumps([type(v).__name__ for v in labels])
    encoded = idata.copy()
    for group in encoded.groups():
        dataset = encoded[group]
        if "entity" in dataset.coords:
            dataset = dataset.assign_coords(entity=[str(v) for v in labels])
            dataset.attrs[LABEL_TYPES_ATTR] = types
            setattr(encoded, group, dataset)
    return encoded


_RESTORE = {"int": int, "float": float, "str": str, "bool": lambda s: s == "True",
            "int64": int, "float64": float, "str_": str}


def _decode_labels(dataset: Any) -> np.ndarray | None:
    """The fit's labels from a stored group: its ``entity`` coordinate, with the Python types
    that `_encode_labels` recorded for mixed-type labels (None when there is no coordinate)."""
    if "entity" not in dataset.coords:
        return None
    values = dataset["entity"].values
    types = dataset.attrs.get(LABEL_TYPES_ATTR)
    if not types:
        return values
    labels = np.empty(len(values), dtype=object)
    labels[:] = [_RESTORE.get(t, str)(str(v)) for t, v in zip(json.loads(types), values)]
    return labels


def load_inference_data(path: str | Path) -> az.InferenceData:
    """Read ``inference_data.nc``; mixed-type labels get their Python types back where possible."""
    idata = az.from_netcdf(str(path))
    for group in idata.groups():
        dataset = idata[group]
        labels = _decode_labels(dataset)
        if labels is not None and dataset.attrs.get(LABEL_TYPES_ATTR):
            setattr(idata, group, dataset.assign_coords(entity=labels))
    return idata
