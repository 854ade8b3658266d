"""Regenerate data/example_spiked.csv: a week of new windows for the example hosts, with spikes.

    python scripts/make_spiked_example.py

Each of the 40 example hosts gets 7 new daily windows (numbered after its last fitted window)
drawn from NB2(its true rate, phi) with the true values in data/example_truth.json; one host
the fit has never seen ("host-41", rate 4) is added; then 12 seeded rows are replaced by draws
at 5x their host's true rate. The ``injected`` column marks them (the scorer ignores it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ratepool.model.simulate import nb2_draws

ROOT = Path(__file__).resolve().parents[1]
SEED, NEW_WINDOWS, SPIKES, FACTOR = 20261125, 7, 12, 5.0


def main() -> None:
    truth = json.loads((ROOT / "data" / "example_truth.json").read_text())
    fitted = pd.read_csv(ROOT / "data" / "example_counts.csv")
    last = fitted.groupby("entity")["window"].max()
    rates = {**truth["theta"], "host-41": truth["mu"]}
    rng = np.random.default_rng(SEED)
    entity = np.repeat(list(rates), NEW_WINDOWS)
    start = np.array([last.get(e, 0) + 1 for e in entity])
    window = start + np.tile(np.arange(NEW_WINDOWS), len(rates))
    theta = np.array([rates[e] for e in entity])
    injected = np.zeros(len(entity), dtype=bool)
    injected[rng.choice(len(entity), SPIKES, replace=False)] = True
    count = nb2_draws(rng, np.where(injected, FACTOR * theta, theta), truth["phi"])
    frame = pd.DataFrame({"entity": entity, "window": window, "count": count,
                          "injected": injected})
    frame.to_csv(ROOT / "data" / "example_spiked.csv", index=False)
    print(f"wrote {len(frame)} rows ({SPIKES} spiked at {FACTOR:g}x) for {len(rates)} hosts")


if __name__ == "__main__":
    main()
