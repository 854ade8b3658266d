"""Write data/options_example.csv: a seeded simulated panel with exposure, two entity
covariates and structural zeros, and data/options_example_truth.json with the true values."""

from __future__ import annotations

import json
from pathlib import Path

from ratepool.model.simulate import simulate_counts

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    simulated = simulate_counts(n_entities=40, windows=(10, 30), mu=4.0, alpha=1.5, phi=3.0,
                                seed=201, exposure=(0.5, 20.0),
                                covariate_effects={"x1": 0.15, "x2": -0.1},
                                zero_inflation=0.3)
    frame = simulated.frame.round({"exposure": 6, "x1": 6, "x2": 6})
    frame.to_csv(ROOT / "data" / "options_example.csv", index=False)
    truth = {**simulated.truth(), "seed": 201, "script": "scripts/make_options_example.py"}
    (ROOT / "data" / "options_example_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"wrote data/options_example.csv ({len(frame)} rows) and its truth")


if __name__ == "__main__":
    main()
