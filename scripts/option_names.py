#!/usr/bin/env python
"""Where the model options are named in ratepool's code: per option, the modules whose code
(comments and strings left out) names its config flag or data field.

The options should be interpreted by the model description (`ratepool.model.description`),
the Stan data builders of the model layer, the data readers and the CLI's flags; a module of
the posterior, outputs or workflow layers that names one is listed as a consumer, with the
line numbers, so that a new option's reach can be seen (and kept small).

Usage::

    python scripts/option_names.py            # the consumers per option
    python scripts/option_names.py --all      # every module per option
"""

from __future__ import annotations

import argparse
import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "ratepool"
#: How the code names each option: its config flag or data field.
PATTERNS = {
    "exposure": r"\bexposure_col\b|\bhas_exposure\b|\.\s*exposure\b",
    "covariates": r"\.\s*covariates\b|\bn_covariates\b",
    "zero-inflation": r"\bzero_inflation\b",
    "bytes": r"\bbytes_col\b|\bwindow_bytes\b|\bhas_bytes\b",
    "temporal": r"\.\s*temporal\b|\bis_temporal_data\b",
}
#: The layers whose modules consume a model rather than define or read it.
CONSUMERS = ("posterior", "outputs", "workflow")


def code_lines(path: Path) -> dict[int, str]:
    """Line number -> the line's code tokens (no comments, no strings or docstrings)."""
    lines: dict[int, list[str]] = {}
    with path.open(encoding="utf-8") as handle:
        for token in tokenize.generate_tokens(handle.readline):
            if token.type not in (tokenize.COMMENT, tokenize.STRING):
                lines.setdefault(token.start[0], []).append(token.string)
    return {number: " ".join(parts) for number, parts in lines.items()}


def naming(option: str, every_module: bool) -> dict[str, list[int]]:
    """Module (relative path) -> line numbers whose code names ``option``."""
    found: dict[str, list[int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if not every_module and relative.parts[0] not in CONSUMERS:
            continue
        numbers = [n for n, code in code_lines(path).items()
                   if re.search(PATTERNS[option], code)
                   and not code.startswith(("from ", "import "))]  # a module's name
        if numbers:
            found[str(relative)] = numbers
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="every module, not only consumers")
    args = parser.parse_args(argv)
    for option in PATTERNS:
        found = naming(option, args.all)
        print(f"{option}: {len(found)} module(s)")
        for module, numbers in found.items():
            print(f"    {module}: lines {', '.join(map(str, numbers))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
