"""The PyStan engine: compiles the program offline with httpstan's bundled stanc and the system
C++ compiler, and samples it in-process.

Two kinds of litter are kept out of the user's machine: httpstan binds a Unix socket in the temp
directory for every run and never removes it, so runs use a private temp directory that is
deleted afterwards; and httpstan stores every seeded fit in its cache for ever, so the fits a
run creates are deleted once read.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..errors import CompileError, EngineNotFoundError, SamplingError
from ..program import StanProgram
from ..tempdirs import owned_tempdir
from ._console import captured_console
from .base import Draws, Engine, SamplerSettings, shorten, split_sample_stats, tail

__all__ = ["PyStanEngine", "pystan_available"]

log = logging.getLogger(__name__)

_NUTS = "stan::services::sample::hmc_nuts_diag_e_adapt"
_FIXED = "stan::services::sample::fixed_param"


def pystan_available() -> bool:
    """Whether the ``pystan`` package (module ``stan``) can be imported."""
    try:
        import stan  # noqa: F401
    except ImportError:
        return False
    return True


def _import_stan() -> Any:
    try:
        import stan
    except ImportError as error:
        raise EngineNotFoundError(
            f"the PyStan engine needs the 'pystan' package ({error}); install it with "
            "'pip install pystan' (Linux/macOS), or install CmdStan and use engine='cmdstan'"
        ) from None
    return stan


#: Unix socket paths are limited to ~107 bytes; httpstan binds one in the temp directory.
_MAX_TEMP_BASE = 60


@contextlib.contextmanager
def _private_tempdir() -> Iterator[Path]:
    """Run with a fresh temp directory as both ``tempfile``'s default and the working directory.

    httpstan binds a Unix socket in the temp directory and never removes it, and its compiler
    step writes ``build/`` into the working directory; both land here and are deleted after.
    """
    base = tempfile.gettempdir()
    if len(base) > _MAX_TEMP_BASE and os.path.isdir("/tmp"):
        base = "/tmp"  # a long TMPDIR would make httpstan's socket path too long to bind
    with owned_tempdir("ratepool-pystan-", base) as path:
        previous_tempdir, previous_cwd = tempfile.tempdir, os.getcwd()
        tempfile.tempdir = str(path)
        os.chdir(path)
        try:
            yield path
        finally:
            os.chdir(previous_cwd)
            tempfile.tempdir = previous_tempdir


def _init_worker() -> None:  # pragma: no cover - runs in the sampler's worker processes
    """Sampler workers ignore Ctrl-C (the parent handles it) and die with their parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _install_sampler_pool() -> None:
    """Give httpstan a worker pool whose processes cannot outlive this one.

    httpstan runs each chain in a module-level ProcessPoolExecutor whose workers survive a
    killed parent and keep sampling; ours are killed with it (Linux) and on Ctrl-C.
    """
    import httpstan.services_stub as stub

    if getattr(stub.executor, "_ratepool_pool", False):
        return
    pool = concurrent.futures.ProcessPoolExecutor(
        mp_context=multiprocessing.get_context("fork"), initializer=_init_worker)
    pool._ratepool_pool = True  # type: ignore[attr-defined]
    stub.executor = pool


def _stop_sampler_pool() -> None:
    """Kill the running chains (after Ctrl-C) and leave a fresh pool for later runs."""
    import httpstan.services_stub as stub

    for process in list(getattr(stub.executor, "_processes", {}).values()):
        process.kill()
    stub.executor.shutdown(wait=False, cancel_futures=True)
    stub.executor = None
    _install_sampler_pool()


@contextlib.contextmanager
def _compile_lock() -> Iterator[None]:
    """An exclusive lock on httpstan's cache while compiling (httpstan writes the module in
    place, so two processes compiling the same program at once could load a half-written one)."""
    import fcntl

    import httpstan.cache

    directory = httpstan.cache.cache_directory()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "ratepool-compile.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class PyStanEngine(Engine):
    """Runs the program with PyStan 3 (httpstan)."""

    name = "pystan"

    def __init__(self) -> None:
        self._stan = _import_stan()
        _install_sampler_pool()

    # -- compile -------------------------------------------------------------------------
    def _model_dir(self, program: StanProgram) -> Path:
        import httpstan.cache
        import httpstan.models

        return httpstan.cache.model_directory(httpstan.models.calculate_model_name(program.code))

    def is_compiled(self, program: StanProgram) -> bool:
        """Whether httpstan's per-user cache already holds this program's compiled module."""
        model_dir = self._model_dir(program)
        return model_dir.is_dir() and any(model_dir.glob("*.so"))

    def _build(self, program: StanProgram, data: Mapping[str, Any], seed: int | None) -> Any:
        """``stan.build``: compiles on first use (httpstan caches the module), binds the data.

        Its console output is captured, not shown: stanc warns that the parameters "have no
        priors" because the program uses ``target +=`` (to keep every constant), which is noise.
        """
        # Under the lock one process compiles while others wait, then load the cached module;
        # a module being written is never seen as compiled.
        with _compile_lock():
            compiled_before = self.is_compiled(program)
            if not compiled_before:
                log.info("compiling %s with PyStan (about a minute, once per program version)",
                         program.path.name)
            start = time.perf_counter()
            model = self._build_unlocked(program, data, seed)
        if not compiled_before:
            log.info("compiled in %.1f s", time.perf_counter() - start)
        return model

    def _build_unlocked(self, program: StanProgram, data: Mapping[str, Any],
                        seed: int | None) -> Any:
        with captured_console(False) as console:
            try:
                model = self._stan.build(program.code, data=dict(data), random_seed=seed)
            except (ValueError, RuntimeError) as error:
                if not self.is_compiled(program):
                    raise CompileError(
                        f"PyStan could not compile {program.path}: {error}\n"
                        f"{tail(console.getvalue())}"
                    ) from None
                raise SamplingError(
                    f"the Stan program rejected the data: {shorten(str(error))}\n"
                    f"{tail(console.getvalue())}"
                ) from None
        if model is None:  # PyStan swallows Ctrl-C and returns None
            raise KeyboardInterrupt
        return model

    def compile(self, program: StanProgram) -> bool:
        if self.is_compiled(program):
            return False
        with _private_tempdir():
            try:
                # Without data, build compiles the program, then fails to bind the data.
                self._build(program, {}, seed=None)
            except SamplingError:
                pass
        return True

    # -- sample ----------------------------------------------------------------------------
    def sample(
        self, program: StanProgram, data: Mapping[str, Any], settings: SamplerSettings
    ) -> Draws:
        start = time.perf_counter()
        with _private_tempdir():
            model = self._build(program, data, settings.seed)
            kwargs: dict[str, Any] = {"num_samples": settings.draws}
            if settings.fixed_param:
                function, run = _FIXED, model.fixed_param
            else:
                function, run = _NUTS, model.sample
                kwargs.update(num_warmup=settings.warmup, delta=settings.adapt_delta)
            with captured_console(settings.show_progress) as console:
                try:
                    fit = run(num_chains=settings.chains, **kwargs)
                except (RuntimeError, ValueError) as error:
                    raise SamplingError(
                        f"PyStan's sampler failed: {shorten(str(error))}\n"
                        "--- engine output (tail) ---\n"
                        f"{tail(console.getvalue())}"
                    ) from None
                finally:
                    self._delete_cached_fits(model, function, kwargs, settings)
            if fit is None:  # PyStan swallows Ctrl-C and returns None
                _stop_sampler_pool()
                raise KeyboardInterrupt
        return Draws(
            variables=_variables(fit, settings.chains),
            sample_stats=split_sample_stats(
                {name: _by_chain(fit[name], settings.chains)[..., 0]
                 for name in fit.sample_and_sampler_param_names}
            ),
            engine=self.name,
            console=tail(console.getvalue()),
            elapsed_seconds=time.perf_counter() - start,
        )

    def _delete_cached_fits(self, model: Any, function: str, kwargs: Mapping[str, Any],
                            settings: SamplerSettings) -> None:
        """Remove the fits httpstan stored for this run (it keeps every seeded fit for ever).

        httpstan names a seeded fit by hashing its request; the same request is rebuilt here.
        """
        import httpstan.cache
        import httpstan.fits
        import httpstan.schemas

        encoded = json.loads(self._stan.model.DataJSONEncoder().encode(dict(kwargs)))
        for chain in range(1, settings.chains + 1):
            request = dict(encoded, function=function, chain=chain, data=model.data, init={},
                           random_seed=settings.seed)
            args = httpstan.schemas.CreateFitRequest().load(request)
            name = httpstan.fits.calculate_fit_name(args.pop("function"), model.model_name, args)
            path = httpstan.cache.fit_path(name)
            try:
                path.unlink()
            except FileNotFoundError:
                log.debug("httpstan fit %s not found for deletion", path)

    # -- log density -----------------------------------------------------------------------
    def log_density(
        self,
        program: StanProgram,
        data: Mapping[str, Any],
        params: Mapping[str, Any],
        *,
        jacobian: bool = False,
    ) -> float:
        with _private_tempdir():
            model = self._build(program, data, seed=1)
            context = {name: np.asarray(params[name], dtype=float).tolist()
                       for name in model.param_names if name in params}
            with captured_console(False):
                unconstrained = model.unconstrain_pars(context)
                return float(model.log_prob(unconstrained, adjust_transform=jacobian))

    def versions(self) -> dict[str, str]:
        import httpstan

        return {
            "engine": self.name,
            "pystan": self._stan.__version__,
            "httpstan": httpstan.__version__,
            "stan": _stan_version(Path(httpstan.__file__).parent),
        }


def _by_chain(flat: np.ndarray, chains: int) -> np.ndarray:
    """PyStan's (*dims, draws * chains) array, draw-major, as (chain, draw, *dims)."""
    dims = flat.shape[:-1]
    per_draw = flat.reshape(*dims, -1, chains)  # last axis index = draw * chains + chain
    return np.moveaxis(np.moveaxis(per_draw, -1, 0), -1, 1)


def _variables(fit: Any, chains: int) -> dict[str, np.ndarray]:
    """Every non-empty Stan variable as (chain, draw, *dims)."""
    variables = {}
    for name, dims in zip(fit.param_names, fit.dims):
        if 0 in dims:
            continue
        variables[name] = _by_chain(fit[name], chains).reshape(chains, -1, *dims)
    return variables


def _stan_version(httpstan_dir: Path) -> str:
    header = httpstan_dir / "include" / "stan" / "version.hpp"
    try:
        text = header.read_text()
    except OSError:
        return "unknown"
    parts = [re.search(rf"#define STAN_{part} (\d+)", text) for part in
             ("MAJOR", "MINOR", "PATCH")]
    return ".".join(p.group(1) for p in parts if p) or "unknown"
