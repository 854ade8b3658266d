"""Simulation-based calibration, the checks: rank histograms, chi-square uniformity tests and
the divergence breakdown of the table that `ratepool.workflow.sbc.run_sbc` returns."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ratepool.errors import ConfigError

#: Share of the rank range counted as a "tail" on each side by the tail test.
TAIL_SHARE_EACH_SIDE = 0.1


def fit_ran(table: pd.DataFrame) -> pd.Series:
    """Which rows of `run_sbc`'s table are fits that ran (``error`` empty or missing)."""
    errors = table["error"]
    return errors.isna() | (errors.astype(object) == "")


def _rank_columns(table: pd.DataFrame) -> list[str]:
    return [column[len("rank_"):] for column in table.columns if column.startswith("rank_")]


def _check_bins(n_ranked_draws: int, n_bins: int) -> None:
    if n_bins < 2 or (n_ranked_draws + 1) % n_bins:
        raise ConfigError(
            f"n_bins={n_bins} must be at least 2 and divide the {n_ranked_draws + 1} possible "
            f"ranks 0..{n_ranked_draws} evenly"
        )


def rank_histograms(table: pd.DataFrame, n_ranked_draws: int, n_bins: int
                    ) -> dict[str, np.ndarray]:
    """Counts of each parameter's ranks in ``n_bins`` equal bins of 0..L (failed fits left out)."""
    _check_bins(n_ranked_draws, n_bins)
    width = (n_ranked_draws + 1) // n_bins
    histograms = {}
    for name in _rank_columns(table):
        ranks = table[f"rank_{name}"].dropna().to_numpy(dtype=np.int64)
        if ranks.size and (ranks.min() < 0 or ranks.max() > n_ranked_draws):
            raise ValueError(f"ranks of {name} outside 0..{n_ranked_draws}")
        histograms[name] = np.bincount(ranks // width, minlength=n_bins)
    return histograms


def uniformity_tests(table: pd.DataFrame, n_ranked_draws: int, n_bins: int) -> pd.DataFrame:
    """Per parameter: a chi-square test of uniform ranks and a two-sided tail test.

    The chi-square test compares the ``n_bins`` bin counts with their common expectation
    (its approximation needs roughly 5 or more simulations per bin). The tail test counts ranks
    in the outer 10% of the range on either side, expected share 0.2, and gives the exact
    binomial probability of at least that many; it is the one that stays valid for a handful
    of simulations and catches ranks piled at the ends (bias, or posteriors too narrow).

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter: ``n`` (fits ranked), ``chi2``, ``chi2_p``, ``tail_share``,
        ``tail_p``, ``mean_rank`` (scaled to 0..1; 0.5 expected).
    """
    from scipy import stats

    histograms = rank_histograms(table, n_ranked_draws, n_bins)
    tail = int(round(TAIL_SHARE_EACH_SIDE * (n_ranked_draws + 1)))
    expected_share = 2 * tail / (n_ranked_draws + 1)
    rows = []
    for name, counts in histograms.items():
        ranks = table[f"rank_{name}"].dropna().to_numpy(dtype=np.int64)
        n = int(ranks.size)
        if n == 0:
            rows.append({"parameter": name, "n": 0})
            continue
        chi2, chi2_p = stats.chisquare(counts)
        in_tails = int(np.sum((ranks < tail) | (ranks > n_ranked_draws - tail)))
        rows.append({
            "parameter": name, "n": n, "chi2": float(chi2), "chi2_p": float(chi2_p),
            "tail_share": in_tails / n,
            "tail_p": float(stats.binom.sf(in_tails - 1, n, expected_share)),
            "mean_rank": float(np.mean(ranks) / n_ranked_draws),
        })
    return pd.DataFrame(rows).set_index("parameter")


#: Where the simulated truth (or its data) fell, as (label, predicate on `run_sbc`'s table).
#: Small phi (heavy overdispersion) and small mu both make most windows zero, which puts the
#: posterior of the entity rates against theta = 0, where the centred geometry is hardest; the
#: share of zero windows is the data-side view of the same region, and the one a user can see.
REGIONS: list[tuple[str, Callable[[pd.DataFrame], pd.Series]]] = [
    ("all", lambda t: pd.Series(True, index=t.index)),
    ("phi < 0.1", lambda t: t["true_phi"] < 0.1),
    ("mu < 1", lambda t: t["true_mu"] < 1),
    ("alpha < 0.1", lambda t: t["true_alpha"] < 0.1),
    ("phi < 0.1 or mu < 1", lambda t: (t["true_phi"] < 0.1) | (t["true_mu"] < 1)),
    ("phi >= 0.1 and mu >= 1", lambda t: (t["true_phi"] >= 0.1) & (t["true_mu"] >= 1)),
    ("data: >= 75% zero windows", lambda t: t["zero_share"] >= 0.75),
    ("data: < 75% zero windows", lambda t: t["zero_share"] < 0.75),
]

#: Regions of the temporal model's SBC (`ratepool.workflow.sbc_temporal`): rho near +-1 (where
#: the AR(1) becomes a second entity level, confounded with theta) and a large stationary sd s
#: (about 12% and 11% of the prior: (rho + 1) / 2 ~ Beta(2, 2), s ~ HalfNormal(0.5)); the
#: static regions follow.
TEMPORAL_REGIONS: list[tuple[str, Callable[[pd.DataFrame], pd.Series]]] = [
    REGIONS[0],
    ("|rho| > 0.7", lambda t: t["true_rho"].abs() > 0.7),
    ("|rho| <= 0.7", lambda t: t["true_rho"].abs() <= 0.7),
    ("s > 0.8", lambda t: t["true_s"] > 0.8),
    ("s <= 0.8", lambda t: t["true_s"] <= 0.8),
    *REGIONS[1:],
]


def divergence_breakdown(
    table: pd.DataFrame,
    regions: list[tuple[str, Callable[[pd.DataFrame], pd.Series]]] | None = None,
) -> pd.DataFrame:
    """Share of fits with divergences (and failed fits) by where the prior draw landed
    (`REGIONS` by default; `TEMPORAL_REGIONS` for the temporal model's table).

    Returns
    -------
    pandas.DataFrame
        Indexed by region: ``simulations``, ``prior_share`` (share of all simulations that
        fell there), ``failed`` (fits that did not run), ``divergent_fits`` (fits with at least
        one divergence), ``divergent_share`` (of the fits that ran there),
        ``share_of_divergent`` (of all divergent fits), ``median_ess_bulk_min``.
    """
    ran = fit_ran(table)
    divergent = ran & (table["divergences"].fillna(0) > 0)
    total_divergent = int(divergent.sum())
    rows = []
    for label, predicate in (REGIONS if regions is None else regions):
        inside = predicate(table).astype(bool)
        n_ran = int((inside & ran).sum())
        n_div = int((inside & divergent).sum())
        rows.append({
            "region": label,
            "simulations": int(inside.sum()),
            "prior_share": float(inside.mean()) if len(table) else np.nan,
            "failed": int((inside & ~ran).sum()),
            "divergent_fits": n_div,
            "divergent_share": n_div / n_ran if n_ran else np.nan,
            "share_of_divergent": n_div / total_divergent if total_divergent else np.nan,
            "median_ess_bulk_min": float(table.loc[inside & ran, "ess_bulk_min"].median())
            if n_ran else np.nan,
        })
    return pd.DataFrame(rows).set_index("region")
