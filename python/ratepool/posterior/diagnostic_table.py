"""The graded diagnostics as lines: the plain-text table the command line prints and the rows
of the HTML report (`ratepool.outputs.report`). The grades and thresholds come from
`ratepool.posterior.diagnostics`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ratepool.posterior.diagnostics import THRESHOLDS

__all__ = ["DiagnosticRow", "diagnostic_rows", "format_diagnostics"]


@dataclass(frozen=True)
class DiagnosticRow:
    """One graded line: what, its value, where it is worst (checks over every parameter), its
    grade and the thresholds behind the grade."""

    key: str
    name: str
    value: str
    where: str
    grade: str
    thresholds: str


def _text(value: Any, spec: str) -> str:
    """``value`` formatted, or ``n/a`` when missing (JSON null)."""
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "n/a"


def _divergences_text(diagnostics: Mapping[str, Any]) -> str:
    """``12 (0.30%)``; the count alone from a diagnostics file written before the share."""
    share = diagnostics.get("divergence_share")
    text = str(diagnostics["divergences"])
    return text if share is None else f"{text} ({_text(100 * share, '.2f')}%)"


def diagnostic_rows(diagnostics: Mapping[str, Any]) -> list[DiagnosticRow]:
    """The graded lines of ``diagnostics``, in display order.

    A diagnostics file written before a check existed simply has no line for it.
    """
    grades = diagnostics.get("grades", {})
    rows = [
        ("r_hat", "max R-hat", _text(diagnostics["r_hat_max"], ".4f"), "", "r_hat"),
        ("ess_bulk", "min bulk ESS", _text(diagnostics["ess_bulk_min"], ".0f"), "", "ess"),
        ("ess_tail", "min tail ESS", _text(diagnostics["ess_tail_min"], ".0f"), "", "ess"),
        ("divergences", "divergences", _divergences_text(diagnostics), "", "divergences"),
    ]
    every = diagnostics.get("all_parameters")
    if every:
        rows += [
            ("r_hat_all", "max R-hat, all", _text(every["r_hat_max"], ".4f"),
             every["r_hat_where"], "r_hat"),
            ("ess_bulk_all", "min bulk ESS, all", _text(every["ess_bulk_min"], ".0f"),
             every["ess_bulk_where"], "ess"),
            ("ess_tail_all", "min tail ESS, all", _text(every["ess_tail_min"], ".0f"),
             every["ess_tail_where"], "ess"),
        ]
    if "ebfmi" in diagnostics:
        rows.append(("ebfmi", "E-BFMI per chain",
                     " ".join(_text(v, ".2f") for v in diagnostics["ebfmi"]), "", "ebfmi"))
    sensitivity = diagnostics.get("prior_sensitivity")
    if sensitivity:
        prior = sensitivity["prior"]
        worst = max(prior, key=lambda name: prior[name]) if prior else ""
        rows.append(("prior_conflict", "prior sensitivity",
                     f"{_text(prior.get(worst), '.3f')} {worst}".strip(),
                     ", ".join(sensitivity["conflict"]), "prior_conflict"))
    if "treedepth_hits" in diagnostics:
        rows.append(("treedepth", f"tree depth {diagnostics['max_treedepth']} hits",
                     str(diagnostics["treedepth_hits"]), "", "treedepth"))
    return [DiagnosticRow(key, name, value, where, grades.get(key, ""), THRESHOLDS[threshold])
            for key, name, value, where, threshold in rows]


def format_diagnostics(diagnostics: Mapping[str, Any]) -> str:
    """A plain-text table of the diagnostics and their grades, then the advice.

    The first lines cover mu, alpha and phi (the design document's); ``..., all`` lines cover
    every parameter, theta included, and name the worst one after the grade.
    """
    rows = diagnostic_rows(diagnostics)
    width = max(len(row.value) for row in rows)
    lines = [f"{row.name:<19}{row.value:>{width}}  {row.grade:<8} {row.where}".rstrip()
             for row in rows]
    lines.insert(4, f"{'converged':<19}{'yes' if diagnostics['converged'] else 'no':>{width}}")
    lines += [f"- {line}" for line in diagnostics["advice"]]
    return "\n".join(lines)
