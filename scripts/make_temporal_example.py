"""Write data/temporal_example.csv: a seeded panel simulated from the AR(1) temporal model
(daily windows as ISO dates, about 10% of days missing), and data/temporal_example_truth.json
with the true values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ratepool.model.simulate import simulate_ar_counts

ROOT = Path(__file__).resolve().parents[1]
SEED = 2026
TRUTH = dict(n_entities=30, windows=(20, 40), mu=5.0, alpha=2.0, phi=3.0, rho=0.8, sigma=0.3,
             missing=0.1)


def main() -> None:
    simulated = simulate_ar_counts(seed=SEED, label_format="host-{:02d}", **TRUTH)
    frame = simulated.frame.copy()
    days = pd.Timestamp("2026-01-01") + pd.to_timedelta(frame["window"] - 1, unit="D")
    frame["window"] = days.dt.strftime("%Y-%m-%d")
    frame.to_csv(ROOT / "data" / "temporal_example.csv", index=False)
    truth = {**simulated.truth(), "seed": SEED, "settings": {k: v for k, v in TRUTH.items()},
             "rate_path_mean": float(np.mean(simulated.rate_path)),
             "script": "scripts/make_temporal_example.py"}
    (ROOT / "data" / "temporal_example_truth.json").write_text(json.dumps(truth, indent=2)
                                                               + "\n")
    print(f"wrote data/temporal_example.csv ({len(frame)} rows) and its truth")


if __name__ == "__main__":
    main()
