"""Write data/bytes_example.csv: a seeded simulated panel of counts and the bytes they moved
(40 hosts x 10-30 windows), and data/bytes_example_truth.json with the true values.

Bytes are built event by event (`ratepool.model.simulate.window_bytes_from_events`):
m_i ~ Normal(m0, tau); a window with y > 0 events has a factor exp(w), w ~ Normal(-sigma_w^2 / 2,
sigma_w), and y events of LogNormal(m_i - sigma_e^2 / 2 + w, sigma_e) sizes; bytes are their
sum, rounded to whole bytes; 0 without events.
"""

from __future__ import annotations

import json
from pathlib import Path

from ratepool.model.simulate import simulate_counts

ROOT = Path(__file__).resolve().parents[1]
SEED = 11
BYTES = {"m0": 7.0, "tau": 1.0, "sigma_w": 0.3, "sigma_e": 0.8}


def main() -> None:
    simulated = simulate_counts(n_entities=40, windows=(10, 30), mu=4.0, alpha=1.5, phi=3.0,
                                seed=SEED, label_format="host-{:02d}", bytes_per_event=BYTES)
    frame = simulated.frame.round({"bytes": 0}).astype({"bytes": "int64"})
    frame.to_csv(ROOT / "data" / "bytes_example.csv", index=False)
    truth = {**simulated.truth(), "seed": SEED, "script": "scripts/make_bytes_example.py"}
    (ROOT / "data" / "bytes_example_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"wrote data/bytes_example.csv ({len(frame)} rows, {int((frame['count'] == 0).sum())} "
          "windows without events) and its truth")


if __name__ == "__main__":
    main()
