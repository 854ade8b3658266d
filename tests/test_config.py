"""The TOML config file: layout, round trip, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ratepool import ConfigError, ModelConfig
from ratepool.cli.main import main
from ratepool.model.config import SECTIONS

from .conftest import EXAMPLE_CSV, ROOT


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_lists_every_setting_with_its_default() -> None:
    path = ROOT / "examples" / "config.toml"
    assert ModelConfig.from_toml(path) == ModelConfig()
    values = tomllib.loads(path.read_text())
    listed = {key for table in SECTIONS for key in values.get(table, {})} | {
        key for key, value in values.items() if not isinstance(value, dict)}
    # exposure_col's and bytes_col's default is "no column" and temporal's "static rates",
    # which TOML cannot write: they are shown commented.
    assert listed == set(ModelConfig.field_names()) - {"exposure_col", "bytes_col", "temporal"}
    assert "# exposure_col = " in path.read_text()
    assert "# bytes_col = " in path.read_text()
    assert '# temporal = "ar1"' in path.read_text()


def test_tables_and_flat_keys_give_the_same_config(tmp_path: Path) -> None:
    tables = _write(tmp_path, '[sampling]\nn_samples = 10\nengine = "pystan"\n'
                              '[priors]\nmu_prior_rate = 0.5\n'
                              '[model]\nparameterization = "non_centered"\n'
                              'obs_predictions = false\n')
    flat = ModelConfig.from_dict({"n_samples": 10, "engine": "pystan", "mu_prior_rate": 0.5,
                                  "parameterization": "non_centered",
                                  "obs_predictions": False})
    assert ModelConfig.from_toml(tables) == flat
    assert flat.n_samples == 10 and flat.parameterization == "non_centered"


@pytest.mark.parametrize("config", [
    ModelConfig(),
    ModelConfig(n_samples=17, n_tune=0, n_chains=3, target_accept=0.975, random_seed=2**31 - 1,
                mu_prior_rate=0.25, alpha_prior_sd=1.5, overdispersion_prior_sd=10.0,
                parameterization="non_centered", likelihood="observation",
                obs_predictions=True, entity_predictions=False, max_obs_prediction_values=0,
                engine="pystan"),
    ModelConfig(obs_predictions=False, engine="cmdstan"),
])
def test_to_toml_reads_back_equal(tmp_path: Path, config: ModelConfig) -> None:
    assert ModelConfig.from_toml(_write(tmp_path, config.to_toml())) == config


@pytest.mark.parametrize(("text", "named"), [
    ("[sampling]\nn_sample = 10\n", "sampling.n_sample"),
    ("[smapling]\nn_samples = 10\n", "[smapling]"),
    ("[priors]\nn_samples = 10\n", "priors.n_samples"),
    ("[model]\nlikelihood = \"exact\"\n", "model.likelihood"),
    ("[sampling]\nn_chains = 0\n", "sampling.n_chains"),
    ("[sampling]\nn_samples = 10.5\n", "sampling.n_samples"),
    ("[sampling]\ntarget_accept = 1.0\n", "sampling.target_accept"),
    ("[sampling]\nrandom_seed = -1\n", "sampling.random_seed"),
    ("[priors]\nalpha_prior_sd = 0\n", "priors.alpha_prior_sd"),
    ("[priors]\nmu_prior_rate = \"fast\"\n", "priors.mu_prior_rate"),
    ("[model]\nobs_predictions = \"maybe\"\n", "model.obs_predictions"),
    ("[model]\nentity_predictions = 1\n", "model.entity_predictions"),
    ("engine = \"stan\"\n", "engine"),
    ("seed = 3\n", "seed"),
    ("n_samples = 10\n[sampling]\nn_samples = 20\n", "n_samples"),
    ("[sampling.adapt]\ndelta = 0.9\n", "sampling.adapt"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as error:
        ModelConfig.from_toml(_write(tmp_path, text))
    assert named in str(error.value)
    assert str(tmp_path / "config.toml") in str(error.value)


def test_obs_predictions_auto_is_none(tmp_path: Path) -> None:
    config = ModelConfig.from_toml(_write(tmp_path, '[model]\nobs_predictions = "auto"\n'))
    assert config.obs_predictions is None


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ModelConfig.from_toml(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ModelConfig.from_toml(_write(tmp_path, "[sampling\nn_samples = 3\n"))


def test_cli_rejects_a_bad_config_before_sampling(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, "[sampling]\nn_chain = 2\n")
    out = tmp_path / "results"
    code = main(["fit", str(EXAMPLE_CSV), "--config", str(path), "--out", str(out), "--quiet"])
    assert code == 2
    assert "sampling.n_chain" in capsys.readouterr().err
    assert not out.exists()
