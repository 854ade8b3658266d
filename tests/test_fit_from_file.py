"""Fitting from a file without holding its rows (issue 18 item 1).

`ratepool.aggregate_file` groups the windows by (entity, exposure) in DuckDB, with the zero
windows per group, and reads covariates once per entity; `ratepool.fit` of a path uses it
unless an option needs the rows. The references: the Stan data of the same file read as rows
(`load_counts`, whose grouping is pandas'), and, independently, numpy/pandas over the raw
rows in the test (zeros per entity, exposure sums, the median exposure). Equal Stan data and
seed give bit-for-bit equal draws, so the fit check is exact, not within Monte Carlo error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ratepool
from ratepool import aggregate_file
from ratepool.data.counts import WindowGroups
from ratepool.model.standata import stan_data
from ratepool.workflow.fit import read_for_fit
from tests.conftest import engine_params


def _rows(seed: int, *, n_entities: int = 17, zero_heavy: bool = False) -> pd.DataFrame:
    """Shuffled rows with an exposure (persons, few distinct values per entity so that groups
    merge), a numeric and a text covariate constant per entity, and NB2 counts; zero-heavy:
    mu * alpha << 1 and a zero-inflation share, so that 40-90% of windows are 0."""
    rng = np.random.default_rng(seed)
    windows = rng.integers(3, 30, n_entities)
    entity = np.repeat(np.arange(n_entities), windows)
    size = rng.choice([800.0, 1500.0, 2500.0, 40_000.0], n_entities)
    exposure = size[entity] * rng.choice([0.5, 1.0, 1.25], len(entity))
    if zero_heavy:
        theta = rng.gamma(0.2, 1.0 / 0.2 / 1000, n_entities)  # shape mu * alpha = 0.2
    else:
        theta = rng.gamma(2.0, 2.0 / 1000, n_entities)
    mean = exposure * theta[entity]
    counts = rng.negative_binomial(3.0, 3.0 / (3.0 + mean))
    if zero_heavy:
        counts[rng.random(len(counts)) < 0.3] = 0
    frame = pd.DataFrame({
        "user": np.array([f"u{i:03d}" for i in range(n_entities)], dtype=object)[entity],
        "events": counts, "persons": exposure,
        "age": rng.normal(40, 10, n_entities).round(1)[entity],
        "plan": np.array(["basic", "pro", "team"], dtype=object)[rng.integers(0, 3,
                                                                              n_entities)][entity]})
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


CASES = {
    "base": ({}, {}),
    "exposure": ({"exposure_col": "persons"}, {"exposure_col": "persons"}),
    "exposure_per_100k": ({"exposure_col": "per100k"}, {"exposure_col": "per100k"}),
    "zero_inflation": ({}, {"zero_inflation": True}),
    "covariates": ({"covariates": ["age", "plan"]}, {"covariates": ("age", "plan")}),
    "all": ({"exposure_col": "persons", "covariates": ["age", "plan"]},
            {"exposure_col": "persons", "covariates": ("age", "plan"), "zero_inflation": True}),
}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("zero_heavy", [False, True], ids=["moderate", "zero_heavy"])
@pytest.mark.parametrize("case", list(CASES))
def test_aggregated_stan_data_equal_the_rows(tmp_path: Path, suffix: str, zero_heavy: bool,
                                             case: str) -> None:
    frame = _rows(5 + zero_heavy, zero_heavy=zero_heavy)
    frame["per100k"] = frame["persons"] / 1e5
    zero_share = float(np.mean(frame["events"] == 0))
    assert (0.4 <= zero_share <= 0.9) if zero_heavy else zero_share < 0.4
    path = _write(frame, tmp_path / f"rows{suffix}")
    read, options = CASES[case]
    config = ratepool.ModelConfig(obs_predictions=False, **options)
    rows = ratepool.load_counts(path, entity_col="user", count_col="events", **read)
    aggregated = aggregate_file(path, "user", "events", **read)
    assert not aggregated.has_rows
    assert stan_data(aggregated, config) == stan_data(rows, config)

    # independently of both paths: pandas over the raw rows
    by_entity = frame.groupby("user")
    want_zeros = by_entity["events"].agg(lambda y: int((y == 0).sum()))
    np.testing.assert_array_equal(aggregated.entity_zeros,
                                  want_zeros.loc[aggregated.labels].to_numpy())
    if "exposure_col" in read:
        column = read["exposure_col"]
        assert aggregated.exposure_median() == np.median(frame[column])
        np.testing.assert_allclose(aggregated.entity_exposure,
                                   by_entity[column].sum().loc[aggregated.labels], rtol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7, 8])
def test_grouped_median_is_numpys(n: int) -> None:
    rng = np.random.default_rng(n)
    exposure = rng.choice([0.5, 1.0, 3.0, 4.5], n)
    groups = WindowGroups.from_rows(np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                                    exposure)
    assert groups.exposure_median() == np.median(exposure)


@pytest.mark.parametrize("bad, message", [
    (np.nan, r"missing exposures: 1 row\(s\), first line 5"),
    (0.0, r"not positive and finite: 1 row\(s\), first line 5"),
    (-2.0, r"not positive and finite: 1 row\(s\), first line 5"),
])
def test_bad_exposure_named_as_the_rows_name_it(tmp_path: Path, bad: float,
                                                message: str) -> None:
    frame = _rows(1)
    frame.loc[3, "persons"] = bad
    path = _write(frame, tmp_path / "rows.csv")
    messages = []
    for read in (aggregate_file, ratepool.load_counts):
        with pytest.raises(ratepool.DataError, match=message) as error:
            read(path, entity_col="user", count_col="events", exposure_col="persons")
        messages.append(str(error.value).split(": ", 1)[1])
    assert messages[0] == messages[1]


def test_varying_covariate_named_as_the_rows_name_it(tmp_path: Path) -> None:
    frame = _rows(2)
    rows = frame["user"] == "u004"
    frame.loc[rows, "plan"] = np.resize(["basic", "pro"], int(rows.sum()))
    path = _write(frame, tmp_path / "rows.parquet")
    with pytest.raises(ratepool.DataError, match="differs between the rows of entity 'u004'"):
        aggregate_file(path, "user", "events", covariates=["plan"])


def test_fit_from_a_path_reads_rows_only_when_needed(tmp_path: Path) -> None:
    frame = _rows(3).rename(columns={"user": "entity", "events": "count"})
    path = _write(frame, tmp_path / "rows.parquet")
    small = ratepool.ModelConfig(exposure_col="persons")
    big = small.replace(max_obs_prediction_values=10)
    assert read_for_fit(path, small).has_rows  # auto per-row outputs on small data
    assert not read_for_fit(path, big).has_rows
    assert not read_for_fit(path, small.replace(obs_predictions=False)).has_rows
    assert read_for_fit(path, small.replace(obs_predictions=True)).has_rows
    assert read_for_fit(path, small.replace(likelihood="observation")).has_rows


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_fit_from_aggregates_equals_fit_from_rows(tmp_path: Path, engine: str) -> None:
    """Zero-inflation with exposure: the same draws from the file's aggregates as from its rows
    (same Stan data, same seed), and the observed zeros are the rows' zeros."""
    frame = _rows(4, n_entities=8, zero_heavy=True).rename(
        columns={"user": "entity", "events": "count"})
    path = _write(frame, tmp_path / "rows.csv")
    config = ratepool.ModelConfig(n_samples=100, n_tune=150, n_chains=1, random_seed=11,
                                  exposure_col="persons", zero_inflation=True,
                                  obs_predictions=False, engine=engine)
    from_file = ratepool.fit(path, config)
    from_rows = ratepool.fit(ratepool.load_counts(path, exposure_col="persons"), config)
    assert not from_file.data.has_rows and from_rows.data.has_rows
    for name in ("mu", "alpha", "phi", "pi", "theta"):
        np.testing.assert_array_equal(from_file.idata.posterior[name].values,
                                      from_rows.idata.posterior[name].values, err_msg=name)
    zeros = frame.groupby("entity")["count"].agg(lambda y: int((y == 0).sum()))
    np.testing.assert_array_equal(from_file.idata.observed_data["entity_zeros"].values,
                                  zeros.loc[from_file.data.labels].to_numpy())


def test_prior_check_figure_from_the_histogram() -> None:
    """The observed ECDF drawn from the count histogram (no rows) is the rows' own ECDF."""
    import arviz as az

    from ratepool.model.prior import prior_predictive_check
    from ratepool.outputs.plots import prior_check_figure

    rng = np.random.default_rng(9)
    y = rng.negative_binomial(0.5, 0.2, 300)
    data = ratepool.from_dataframe(pd.DataFrame({"entity": np.arange(300) % 6, "count": y}))
    idata = az.from_dict(prior_predictive={"y_pred": rng.poisson(3.0, (1, 40, 6))})
    figure = prior_check_figure(idata, prior_predictive_check(idata, data),
                                (data.count_value, data.count_freq))
    line = next(line for line in figure.axes[0].get_lines()
                if line.get_label() == "observed")
    values = np.unique(y)
    np.testing.assert_array_equal(line.get_xdata(), values)
    np.testing.assert_allclose(line.get_ydata(),
                               np.searchsorted(np.sort(y), values, side="right") / len(y))


def test_per_entity_aggregates_refuse_zero_inflation_with_the_fix() -> None:
    """`from_aggregates` has no zero windows: zero-inflation is refused, naming the reader
    that keeps them."""
    data = ratepool.from_aggregates(
        pd.DataFrame({"entity": ["a", "b"], "n_windows": [2, 3], "total_count": [1, 3]}),
        pd.DataFrame({"value": [0, 1, 2], "frequency": [2, 2, 1]}))
    assert data.entity_zeros is None
    with pytest.raises(ratepool.DataError, match=r"aggregate_file\(\.\.\., exposure_col=\.\.\.\)"):
        stan_data(data, ratepool.ModelConfig(zero_inflation=True))


def test_the_cli_reads_a_file_for_a_fit_without_its_rows(tmp_path: Path) -> None:
    """`ratepool fit FILE` / `prior-check FILE` with per-row outputs off: the command line
    reads the file as `fit(path)` does (aggregated, no rows), with its column options, and
    gets the statistics the rows give."""
    from ratepool.cli.common import config_from_args, load_data, load_data_for_fit
    from ratepool.cli.parser import build_parser

    frame = _rows(3)
    path = _write(frame, tmp_path / "rows.csv")
    toml = tmp_path / "config.toml"
    toml.write_text('[model]\nobs_predictions = false\n')
    for command in ("fit", "prior-check"):
        args = build_parser().parse_args([
            command, str(path), "--entity-col", "user", "--count-col", "events",
            "--exposure-col", "persons", "--config", str(toml)])
        config = config_from_args(args)
        data = load_data_for_fit(args, config)
        rows = load_data(args, config)
        assert not data.has_rows and rows.has_rows
        assert list(data.labels) == list(rows.labels)
        np.testing.assert_array_equal(data.entity_total, rows.entity_total)
        np.testing.assert_array_equal(data.entity_zeros, rows.entity_zeros)
