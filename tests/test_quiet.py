"""Quiet by default: the command line shows one line per phase and the results; the compiler's
and the sampler's own messages go to the log (shown with ``--verbose``), without temp paths."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ratepool.cli import main
from ratepool.engines.base import sampler_messages
from ratepool.engines.progress import SamplingProgress
from ratepool.model.program import default_program

from .conftest import EXAMPLE_CSV, engine_params

#: Long enough a warmup that Stan rejects some early proposals on the example data (seed 42):
#: the messages this file checks are kept out of the default output.
SETTINGS = """[sampling]
n_samples = 200
n_tune = 300
n_chains = 2
"""


def _fit(tmp_path: Path, engine: str, *extra: str) -> list[str]:
    config = tmp_path / "config.toml"
    config.write_text(SETTINGS)
    return ["fit", str(EXAMPLE_CSV), "--engine", engine, "--config", str(config),
            "--out", str(tmp_path / "out"), *extra]


def test_sampler_messages_name_the_program_not_its_temporary_copy() -> None:
    program = default_program()
    console = ("Informational Message: The current Metropolis proposal is about to be rejected\n"
               "Exception: gamma_lpdf: Shape parameter is 0 (in '/tmp/httpstan_x1/model_ab.stan',"
               " line 303, column 6 to column 54)\n"
               "Exception: gamma_lpdf: Random variable is inf (in 'model.stan', line 303)\n"
               "    file = /tmp/ratepool-cmdstan-5129-d131d1fc/data.json\n")
    shown = sampler_messages(console, program)
    assert "/tmp/" not in shown and "'model.stan'" not in shown and "data.json" not in shown
    assert shown.count(f"'{program.path.name}', line 303") == 2
    assert shown.startswith("Informational Message")


def test_pystan_progress_off_a_terminal_is_the_final_line_only() -> None:
    echo = io.StringIO()  # not a terminal
    progress = SamplingProgress(2, 600, echo)
    for line in ("Building: found in cache, done.", "Messages from stanc:",
                 "warning: unused variable", "Sampling:   0%", "Sampling:  50% (600/1200)",
                 "Informational Message: proposal rejected", "Sampling: 100%, done."):
        progress.pystan_line(line)
    assert echo.getvalue() == ""
    progress.finish()
    assert echo.getvalue().startswith("Sampling: 100% in ")
    assert echo.getvalue().rstrip().endswith("done.") and echo.getvalue().count("\n") == 1


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_fit_prints_phase_lines_and_results_only(engine: str, tmp_path: Path, capfd) -> None:
    assert main(_fit(tmp_path, engine)) == 0
    err = capfd.readouterr().err.splitlines()
    assert err, "the phase lines are missing"
    strays = [line for line in err
              if not (line.startswith("ratepool: ")
                      or line.startswith("Sampling: 100%") and line.endswith("done."))]
    assert strays == []
    assert not any("Exception" in line or "ratepool-cmdstan-" in line or "httpstan_" in line
                   for line in err)


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_verbose_shows_the_sampler_messages_without_temp_paths(engine: str, tmp_path: Path,
                                                                capfd) -> None:
    assert main(_fit(tmp_path, engine, "--verbose")) == 0
    err = capfd.readouterr().err
    header = {"cmdstan": "CmdStan's messages:", "pystan": "PyStan's messages:"}[engine]
    assert f"ratepool: {header}" in err
    messages = err.split(header, 1)[1]
    for temporary in ("ratepool-cmdstan-", "ratepool-pystan-", "httpstan_", "'model.stan'"):
        assert temporary not in messages
    if "Exception:" in messages:  # Stan quotes the program: by its name
        assert "'hierarchical_negbinom.stan', line" in messages


def test_quiet_and_verbose_exclude_each_other(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["fit", str(EXAMPLE_CSV), "--quiet", "--verbose"])
    assert stop.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
