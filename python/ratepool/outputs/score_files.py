"""The files of ``ratepool score``: ``scores.csv`` (one row per input row), ``scores.json``
(the summary) and the anomalies figure, each written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ratepool.errors import RatepoolError
from ratepool.files import atomic_file
from ratepool.posterior.anomaly import ScoreResult


def _atomic_file(path: Path, write: Any) -> None:
    """Call ``write(temp_path)`` for a temp file next to ``path``, then rename it into place."""
    with atomic_file(path) as temp:
        write(str(temp))


def write_scores(result: ScoreResult, out: str | Path, *, top: int = 20,
                 source: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the scored table, a JSON summary and the anomaly figure next to each other.

    ``out`` ending in ``.parquet`` writes Parquet, anything else CSV. Next to it:
    ``<stem>.summary.json`` (the rule, counts, settings and ``source``) and
    ``<stem>.anomalies.png`` (the most surprising windows against their predictive intervals).
    Each file is written to a temporary name and renamed into place.

    Returns
    -------
    dict
        ``{"table": ..., "summary": ..., "figure": ...}`` paths.
    """
    from ratepool.files import atomic_write_text
    from ratepool.outputs.plots import png_bytes
    from ratepool.outputs.results import dump_json
    from ratepool.outputs.score_plots import anomalies_figure

    out = Path(out)
    if out.exists() and out.is_dir():
        raise RatepoolError(f"output {out} is a directory; give a file name such as "
                            "scores.csv")
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    paths = {"table": out, "summary": out.with_name(f"{stem}.summary.json"),
             "figure": out.with_name(f"{stem}.anomalies.png")}
    if out.suffix.lower() in (".parquet", ".pq"):
        _atomic_file(out, lambda temp: result.table.to_parquet(temp, index=False))
    else:
        _atomic_file(out, lambda temp: result.table.to_csv(temp, index=False))
    png = png_bytes(anomalies_figure(result, top=top))
    _atomic_file(paths["figure"], lambda temp: Path(temp).write_bytes(png))
    summary = {**result.summary(), **(source or {}),
               "files": {key: path.name for key, path in paths.items()}}
    atomic_write_text(paths["summary"], dump_json(summary))
    return paths
