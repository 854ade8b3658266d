"""One progress line per run on both engines, and log lines for library callers
(`ratepool.engines.progress`)."""

from __future__ import annotations

import io
import logging

import pandas as pd
import pytest

import ratepool
from ratepool.engines.progress import LOG_STEP, SamplingProgress, format_seconds

from .conftest import EXAMPLE_CSV, engine_params

LOGGER = "ratepool.engines.progress"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _steps(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[int]:
    """The percentages of the progress log lines at ``level``."""
    return [int(record.getMessage().split("%")[0].split()[-1]) for record in caplog.records
            if record.name == LOGGER and record.levelno == level]


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0.4, 42, 185, 3725)] == ["0s", "42s", "3m05s", "1h02m"]


def test_chains_reporting_in_turn_make_one_share_and_a_log_line_per_tenth(caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = SamplingProgress(chains=2, iterations=200)  # library caller: no echo
    for iteration in range(0, 201, 2):  # CmdStan's two chains, each line naming its chain
        progress.cmdstan_line(f"Chain [1] Iteration: {iteration:4d} / 200 [ 0%]  (Warmup)", 0)
        progress.cmdstan_line(f"Iteration: {iteration} / 200 [ 0%]  (Sampling)", 2)
        assert progress.share == pytest.approx(iteration / 200)
    progress.cmdstan_line("Gradient evaluation took 1e-05 seconds", 0)  # not a progress line
    assert _steps(caplog) == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    progress.finish()
    progress.finish()  # once only
    assert _steps(caplog) == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]


def test_progress_never_goes_back_and_skipped_tenths_log_once(caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = SamplingProgress(chains=4, iterations=1000)
    for line in ("Sampling:   0%", "Sampling:  35% (1400/4000)", "Sampling:  20% (800/4000)",
                 "\x1b[2KSampling:  72% (2880/4000)"):
        progress.pystan_line(line)
    assert progress.share == pytest.approx(0.72)
    assert _steps(caplog) == [30, 70]
    assert LOG_STEP == 0.1


def test_on_a_terminal_one_line_is_redrawn_and_the_log_stays_quiet(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    echo = _Terminal()
    progress = SamplingProgress(chains=4, iterations=100, echo=echo)
    for iteration in range(0, 101, 10):
        for chain in (1, 2, 3, 4):
            progress.cmdstan_line(f"Chain [{chain}] Iteration: {iteration} / 100", chain)
    progress.finish()
    text = echo.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    frames = [frame.strip() for frame in text.split("\r") if frame.strip()]
    assert frames[0].startswith("Sampling:   0% (4 chains x 100 iterations")
    assert frames[-1].startswith("Sampling: 100% in ") and frames[-1].endswith("done.")
    shown = [int(frame.split("%")[0].split()[-1]) for frame in frames[:-1]]
    assert shown == sorted(shown) and len(shown) == len(set(shown))  # redrawn when it changes
    assert _steps(caplog) == [] and _steps(caplog, logging.DEBUG)[-1] == 100


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params())
def test_a_library_fit_logs_its_progress_and_writes_nothing_to_stdout(engine: str, caplog,
                                                                      capfd) -> None:
    """A long fit shows life to library callers through the log; neither engine's progress
    machinery writes to stdout or stderr (cmdstanpy's bar clean-up writes blank lines)."""
    data = ratepool.from_dataframe(pd.read_csv(EXAMPLE_CSV), entity_col="entity",
                                   count_col="count")
    config = ratepool.ModelConfig(n_samples=100, n_tune=100, n_chains=2)
    caplog.set_level(logging.INFO, logger=LOGGER)
    capfd.readouterr()
    ratepool.fit(data, config, engine=engine)
    steps = _steps(caplog)
    assert steps and steps[-1] == 100 and steps == sorted(steps)
    if engine == "cmdstan":  # a line per 1% of each chain: every tenth is logged
        assert steps == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    out = capfd.readouterr()
    assert out.out == ""
    # no progress line drawn (a CLI test earlier in the session may have left a log handler
    # on stderr, whose lines may quote the sampler's messages: those are not drawn progress)
    assert "\r" not in out.err and "Sampling: 100% in" not in out.err
