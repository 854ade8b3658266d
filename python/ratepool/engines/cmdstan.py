"""The CmdStan engine (through cmdstanpy): the default wherever CmdStan is installed.

Compiled executables live in the per-user cache (`ratepool.program.cache_root`), keyed by the
program's SHA-256 and the CmdStan version; a build happens in a private directory that is
renamed into place, so concurrent processes never see a half-written executable. Each run
writes its data JSON and CmdStan's CSVs into a private directory that is deleted afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import CompileError, EngineError, EngineNotFoundError, SamplingError
from ..program import StanProgram, cache_root
from ..tempdirs import current_umask, make_owned_dir, owned_tempdir
from .base import Draws, Engine, SamplerSettings, shorten, split_sample_stats, tail

__all__ = ["CmdStanEngine", "find_cmdstan", "CMDSTAN_INSTALL_HINT"]

log = logging.getLogger(__name__)

CMDSTAN_INSTALL_HINT = (
    "install CmdStan with 'python -m cmdstanpy.install_cmdstan' (or 'conda install -c "
    "conda-forge cmdstan'), or point the CMDSTAN environment variable at an installation; "
    "or use engine='pystan'"
)


#: Digits CmdStan writes (its default, 6, would round draws and predictive counts).
_SIG_FIGS = 18


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


def _cmdstan_version_string(home: Path) -> str:
    try:
        for line in (home / "makefile").read_text().splitlines():
            if line.startswith("CMDSTAN_VERSION"):
                return line.split(":=")[1].strip()
    except OSError:
        pass
    return home.name


class CmdStanEngine(Engine):
    """Runs the program with CmdStan via cmdstanpy."""

    name = "cmdstan"

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
        self.version = _cmdstan_version_string(home)
        # cmdstanpy logs every chain's start and end at INFO; keep that out of our users' logs.
        logging.getLogger("cmdstanpy").setLevel(logging.WARNING)

    # -- compile -------------------------------------------------------------------------
    def _exe_path(self, program: StanProgram) -> Path:
        # A fixed name: the cache key is the program's content, whatever its file is called.
        directory = cache_root() / f"cmdstan-{self.version}" / program.sha256[:20]
        return directory / ("model" + (".exe" if os.name == "nt" else ""))

    def compile(self, program: StanProgram) -> bool:
        exe = self._exe_path(program)
        if exe.is_file():
            return False
        exe.parent.parent.mkdir(parents=True, exist_ok=True)
        build_dir = make_owned_dir(exe.parent.parent, ".build-")
        try:
            os.chmod(build_dir, 0o777 & ~current_umask())  # a cache others may share, not a private dir
            stan_file = build_dir / "model.stan"
            stan_file.write_text(program.code, encoding="utf-8")
            log.info("compiling %s with CmdStan %s", program.path.name, self.version)
            start = time.perf_counter()
            try:
                self._cmdstanpy.CmdStanModel(stan_file=str(stan_file))
            except (ValueError, RuntimeError) as error:
                raise CompileError(f"CmdStan could not compile {program.path}:\n{error}") from None
            log.info("compiled in %.1f s", time.perf_counter() - start)
            if exe.parent.exists() and not exe.is_file():
                shutil.rmtree(exe.parent, ignore_errors=True)  # a damaged entry: replace it
            try:
                build_dir.rename(exe.parent)
            except OSError:
                # Another process finished the same build first; its executable is identical.
                log.debug("compiled model already in cache at %s", exe.parent)
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)
        return True

    def _model(self, program: StanProgram) -> Any:
        self.compile(program)
        return self._cmdstanpy.CmdStanModel(exe_file=str(self._exe_path(program)))

    # -- sample ----------------------------------------------------------------------------
    def sample(
        self, program: StanProgram, data: Mapping[str, Any], settings: SamplerSettings
    ) -> Draws:
        model = self._model(program)
        start = time.perf_counter()
        with owned_tempdir("ratepool-cmdstan-") as run_dir:
            data_file = run_dir / "data.json"
            data_file.write_text(json.dumps(dict(data)), encoding="utf-8")
            try:
                fit = model.sample(
                    data=str(data_file),
                    chains=settings.chains,
                    parallel_chains=min(settings.chains, os.cpu_count() or 1),
                    seed=settings.seed,
                    iter_warmup=None if settings.fixed_param else settings.warmup,
                    iter_sampling=settings.draws,
                    adapt_delta=None if settings.fixed_param else settings.adapt_delta,
                    fixed_param=settings.fixed_param,
                    output_dir=str(run_dir),
                    sig_figs=_SIG_FIGS,
                    show_progress=settings.show_progress,
                )
            except (RuntimeError, ValueError) as error:
                raise SamplingError(
                    f"CmdStan's sampler failed: {shorten(str(error))}\n--- console (tail) ---\n"
                    f"{_console_tail(run_dir)}"
                ) from None
            variables = _variables(fit, settings.chains)
            stats = {name: np.asarray(values).T for name, values in
                     fit.method_variables().items()}
            console = _console_tail(run_dir)
        return Draws(
            variables=variables,
            sample_stats=split_sample_stats(stats),
            engine=self.name,
            console=console,
            elapsed_seconds=time.perf_counter() - start,
        )

    # -- log density -----------------------------------------------------------------------
    def log_density(
        self,
        program: StanProgram,
        data: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        jacobian: bool = False,
    ) -> float:
        model = self._model(program)
        values = {name: np.asarray(value).tolist() for name, value in params.items()}
        with owned_tempdir("ratepool-cmdstan-") as run_dir:
            data_file = run_dir / "data.json"
            data_file.write_text(json.dumps(dict(data)), encoding="utf-8")
            params_file = run_dir / "params.json"
            params_file.write_text(json.dumps(values), encoding="utf-8")
            try:
                frame = model.log_prob(params=str(params_file), data=str(data_file),
                                       jacobian=jacobian, sig_figs=_SIG_FIGS)
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


def _variables(fit: Any, chains: int) -> dict[str, np.ndarray]:
    """Every non-empty Stan variable as (chain, draw, *dims)."""
    variables = {}
    for name, var in fit.metadata.stan_vars.items():
        dims = tuple(var.dimensions)
        if 0 in dims:
            continue
        variables[name] = np.asarray(fit.stan_variable(name)).reshape(chains, -1, *dims)
    return variables


def _console_tail(run_dir: Path) -> str:
    texts = [path.read_text(errors="replace") for path in sorted(run_dir.glob("*stdout*.txt"))]
    return tail("\n".join(texts))
