"""The CmdStan engine (through cmdstanpy): the default wherever CmdStan is installed.

Compiled executables live in the per-user cache (`ratepool.model.program.cache_root`), keyed by the
program's SHA-256 and the CmdStan version; a build happens in an owned directory that is
renamed into place, so concurrent processes never see a half-written executable. Each run
writes its data JSON and CmdStan's CSVs into a private directory that is deleted afterwards.
Nothing here configures logging: cmdstanpy's own log lines are the caller's to show or hide.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import stanio

from ratepool._testhooks import pause_at
from ratepool.engines.base import Draws, Engine, SamplerSettings, sampler_messages, shorten, tail
from ratepool.engines.cmdstan_csv import draws_from_fit
from ratepool.engines.progress import SamplingProgress
from ratepool.errors import CompileError, EngineError, EngineNotFoundError, SamplingError
from ratepool.model.program import StanProgram, cache_root
from ratepool.tempdirs import owned_dir, owned_tempdir, release_lock

__all__ = ["CmdStanEngine", "find_cmdstan", "output_sig_figs", "CMDSTAN_INSTALL_HINT"]

log = logging.getLogger(__name__)

CMDSTAN_INSTALL_HINT = (
    "install CmdStan with 'python -m cmdstanpy.install_cmdstan' (or 'conda install -c "
    "conda-forge cmdstan'), or point the CMDSTAN environment variable at an installation; "
    "or use engine='pystan'"
)

#: Significant digits of the draws CmdStan writes: enough for every continuous output
#: (relative rounding below 5e-9, far inside Monte Carlo error) -- see `output_sig_figs`.
CONTINUOUS_SIG_FIGS = 9
#: Digits that round-trip a double exactly (used for the single value of ``log_prob``).
EXACT_SIG_FIGS = 17
#: Predictive counts are taken to stay below this multiple of the largest observed count or
#: entity total; counts printed with fewer digits than they have would be rounded.
_COUNT_HEADROOM = 1000


def output_sig_figs(data: Mapping[str, Any]) -> int:
    """Significant digits for CmdStan's output CSVs on this data.

    CmdStan prints an integral value with its own digits ("7", not "7.00000000"), so the
    predictive counts cost only what they hold; ``sig_figs`` matters for them only once a count
    has more digits than it (it is then printed rounded, e.g. 1.23456789e+09). The continuous
    outputs (parameters, log likelihoods) need `CONTINUOUS_SIG_FIGS`. So: that, or the digits of
    `_COUNT_HEADROOM` times the largest count or entity total in the data if more (at most 17).
    Measured sizes and read times: ``scripts/cmdstan_csv_size.py``.
    """
    largest = max([0.0, *(float(np.max(data[name])) for name in ("y", "entity_total")
                          if len(data.get(name, [])))])
    digits = len(str(int(largest * _COUNT_HEADROOM)))
    return min(EXACT_SIG_FIGS, max(CONTINUOUS_SIG_FIGS, digits))


def find_cmdstan() -> Path | None:
    """The CmdStan installation cmdstanpy would use (``CMDSTAN`` or ``~/.cmdstan``), or None."""
    try:
        import cmdstanpy
    except ImportError:
        return None
    try:
        return Path(cmdstanpy.cmdstan_path())
    except (ValueError, OSError) as error:
        log.debug("CmdStan not found: %s", error)
        return None


class CmdStanEngine(Engine):
    """Runs the program with CmdStan via cmdstanpy."""

    name = "cmdstan"
    runs_threads = True

    def __init__(self) -> None:
        try:
            import cmdstanpy
        except ImportError as error:
            raise EngineNotFoundError(
                f"the CmdStan engine needs cmdstanpy ({error}); 'pip install cmdstanpy'"
            ) from None
        home = find_cmdstan()
        if home is None:
            raise EngineNotFoundError(f"CmdStan was not found: {CMDSTAN_INSTALL_HINT}")
        self._cmdstanpy = cmdstanpy
        self.home = home
        version = cmdstanpy.cmdstan_version()  # (major, minor), or None if unreadable
        self.version = ".".join(map(str, version)) if version else home.name

    # -- compile -------------------------------------------------------------------------
    def _exe_path(self, program: StanProgram, threads: bool = False) -> Path:
        # A fixed name: the cache key is the program's content, whatever its file is called;
        # the build with STAN_THREADS (threads_per_chain > 1) is cached next to the plain one.
        directory = (cache_root() / f"cmdstan-{self.version}"
                     / (program.sha256[:20] + ("-threads" if threads else "")))
        return directory / ("model" + (".exe" if os.name == "nt" else ""))

    def compile(self, program: StanProgram, threads: bool = False) -> bool:
        """Compile ``program`` unless cached; ``threads``: the build with ``STAN_THREADS``."""
        pause_at("compile")
        exe = self._exe_path(program, threads)
        if exe.is_file():
            return False
        with owned_dir(exe.parent.parent, ".build-", private=False) as build_dir:
            stan_file = build_dir / "model.stan"
            stan_file.write_text(program.code, encoding="utf-8")
            log.info("compiling %s with CmdStan %s%s", program.path.name, self.version,
                     " and STAN_THREADS" if threads else "")
            start = time.perf_counter()
            try:
                self._cmdstanpy.CmdStanModel(
                    stan_file=str(stan_file),
                    cpp_options={"STAN_THREADS": True} if threads else None)
            except (ValueError, RuntimeError) as error:
                raise CompileError(f"CmdStan could not compile {program.path}:\n{error}") from None
            log.info("compiled in %.1f s", time.perf_counter() - start)
            if exe.parent.exists() and not exe.is_file():
                shutil.rmtree(exe.parent, ignore_errors=True)  # a damaged entry: replace it
            release_lock(build_dir)
            try:
                build_dir.rename(exe.parent)
            except OSError:
                # Another process finished the same build first; its executable is identical.
                log.debug("compiled model already in cache at %s", exe.parent)
        return True

    def cmdstan_model(self, program: StanProgram, threads: bool = False) -> Any:
        """cmdstanpy's model of ``program`` (compiled first if not cached); ``threads``: the
        build with ``STAN_THREADS``."""
        self.compile(program, threads)
        return self._cmdstanpy.CmdStanModel(exe_file=str(self._exe_path(program, threads)))

    # -- sample ----------------------------------------------------------------------------
    def sample(
        self, program: StanProgram, data: Mapping[str, Any], settings: SamplerSettings
    ) -> Draws:
        threads = settings.threads_per_chain
        model = self.cmdstan_model(program, threads > 1)
        start = time.perf_counter()
        iterations = settings.draws + (0 if settings.fixed_param else settings.warmup)
        progress = SamplingProgress(settings.chains, iterations,
                                    sys.stderr if settings.show_progress else None)
        follow = _FollowProgress(model, progress)
        with owned_tempdir("ratepool-cmdstan-") as run_dir, follow:
            data_file = run_dir / "data.json"
            stanio.write_stan_json(str(data_file), dict(data))
            try:
                fit = model.sample(
                    data=str(data_file),
                    chains=settings.chains,
                    # as many chains at once as their threads find cores (at least one)
                    parallel_chains=max(1, min(settings.chains,
                                               (os.cpu_count() or 1) // threads)),
                    threads_per_chain=threads if threads > 1 else None,
                    seed=settings.seed,
                    iter_warmup=None if settings.fixed_param else settings.warmup,
                    iter_sampling=settings.draws,
                    adapt_delta=None if settings.fixed_param else settings.adapt_delta,
                    fixed_param=settings.fixed_param,
                    inits=[dict(chain) for chain in settings.inits] if settings.inits else None,
                    **_initial_metric(model, settings),
                    output_dir=str(run_dir),
                    sig_figs=output_sig_figs(data),
                    # one console line per 1% of a chain, read by `progress` (no tqdm bars)
                    refresh=max(iterations // 100, 1),
                    show_progress=follow.active,
                )
            except (RuntimeError, ValueError) as error:
                raise SamplingError(
                    f"CmdStan's sampler failed: {shorten(str(error))}\n--- console (tail) ---\n"
                    f"{_console_tail(run_dir)}"
                ) from None
            progress.finish()
            draws = draws_from_fit(fit, self.name)
            draws.console = _console_tail(run_dir)
        log.debug("CmdStan's messages:\n%s", sampler_messages(draws.console, program))
        draws.elapsed_seconds = time.perf_counter() - start
        return draws

    # -- log density -----------------------------------------------------------------------
    def log_density(
        self,
        program: StanProgram,
        data: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        jacobian: bool = False,
    ) -> float:
        model = self.cmdstan_model(program)
        with owned_tempdir("ratepool-cmdstan-") as run_dir:
            files = {"data": run_dir / "data.json", "params": run_dir / "params.json"}
            stanio.write_stan_json(str(files["data"]), dict(data))
            stanio.write_stan_json(str(files["params"]), dict(params))
            try:
                frame = model.log_prob(params=str(files["params"]), data=str(files["data"]),
                                       jacobian=jacobian, sig_figs=EXACT_SIG_FIGS)
            except (RuntimeError, ValueError) as error:
                raise EngineError(f"CmdStan's log_prob failed: {shorten(str(error))}") from None
        return float(frame["lp__"].iloc[0])

    def versions(self) -> dict[str, str]:
        return {
            "engine": self.name,
            "cmdstan": self.version,
            "cmdstanpy": self._cmdstanpy.__version__,
            "stan": self.version,
        }


def _console_tail(run_dir: Path) -> str:
    texts = [path.read_text(errors="replace") for path in sorted(run_dir.glob("*stdout*.txt"))]
    return tail("\n".join(texts))


def _initial_metric(model: Any, settings: SamplerSettings) -> dict[str, Any]:
    """The sample() argument giving the initial inverse metric: ``inv_metric`` (cmdstanpy
    1.3 on; it deprecates ``metric`` for values) or ``metric`` (1.2)."""
    if settings.inv_metric is None:
        return {}
    values = {"inv_metric": list(settings.inv_metric)}
    if "inv_metric" in inspect.signature(model.sample).parameters:
        return {"inv_metric": values}
    return {"metric": values}


class _FollowProgress:
    """Within its ``with`` block, the model's sampling runs report to ``progress``.

    cmdstanpy reads each chain's console lines and hands them to a hook it builds with
    ``CmdStanModel._wrap_sampler_progress_hook`` (one tqdm bar per chain). The model object
    gets its own hook factory instead, which feeds `SamplingProgress` (one line for all
    chains, or log lines). When a cmdstanpy version lacks that factory, ``active`` is False
    and the run goes without progress rather than failing. After the chains end, cmdstanpy
    writes blank lines to ``sys.stdout`` to step past its bars; the hook sees "Done" just
    before that, so stdout is swapped for a sink from then until the block ends.
    """

    def __init__(self, model: Any, progress: SamplingProgress) -> None:
        self.model = model
        self.progress = progress
        self.active = hasattr(model, "_wrap_sampler_progress_hook")
        self._stdout: Any = None

    def _factory(self, chain_ids: list[int], total: int) -> Any:
        def hook(line: str, idx: int) -> None:
            if line == "Done" and idx == -1:  # all chains ended: cmdstanpy's cleanup follows
                self._stdout = sys.stdout
                sys.stdout = _Sink()
                return
            self.progress.cmdstan_line(line, chain_ids[idx] if 0 <= idx < len(chain_ids)
                                       else idx)
        return hook

    def __enter__(self) -> "_FollowProgress":
        if self.active:
            self.model._wrap_sampler_progress_hook = self._factory
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stdout is not None:
            sys.stdout = self._stdout
            self._stdout = None
        if self.active:
            del self.model._wrap_sampler_progress_hook


class _Sink:
    """A text stream that keeps nothing (cmdstanpy's post-bar blank lines)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
