"""Regenerate data/example_counts.csv and data/example_truth.json (seeded, deterministic).

    python scripts/make_example_data.py

The committed files were written with ratepool up to commit df77c85, whose `simulate_counts`
drew the counts with numpy's ``negative_binomial``. It now draws them as the explicit
Gamma–Poisson mixture that simulation-based calibration uses too (one generative process in
`ratepool.model.simulate`), so this script writes the same entities, windows and true rates but other
counts from the same model. The committed files are kept: the CmdStan fixtures and results in
the docs were made from them.
"""

from __future__ import annotations

import json
from pathlib import Path

from ratepool.model.simulate import simulate_counts

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(n_entities=40, windows=(3, 30), mu=4.0, alpha=0.8, phi=3.0, seed=20261124,
                label_format="host-{:02d}")


def main() -> None:
    simulated = simulate_counts(**SETTINGS)
    (ROOT / "data").mkdir(exist_ok=True)
    simulated.frame.to_csv(ROOT / "data" / "example_counts.csv", index=False)
    truth = {"settings": {k: v for k, v in SETTINGS.items() if k != "label_format"},
             **simulated.truth()}
    (ROOT / "data" / "example_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"wrote {len(simulated.frame)} rows for {SETTINGS['n_entities']} entities")


if __name__ == "__main__":
    main()
