"""The PyStan child process: compiles, sampling runs and log densities, one at a time, in a
process of its own.

Run by `ratepool.engines.pystan` as ``python -P _pystan_child.py PARENT_PID``; it imports
neither ratepool nor anything the parent set up, so whatever PyStan needs (a working directory
for its build, a temp directory for httpstan's socket, an asyncio loop, httpstan's worker pool)
is arranged here, in a process that belongs to one engine object and ends with it (its stdin
closes).

Protocol: for each request the parent creates a private run directory, writes
``request.json`` (and ``data.json``) into it and sends the directory's path as a line on stdin.
The child works with that directory as its working and temp directory, writes ``result.json``
and, after sampling, ``draws.npz`` (``v.<variable>`` arrays shaped (chain, draw, *dims),
``s.<sampler column>`` arrays shaped (chain, draw)), and answers with ``{"event": "done"}``.
Progress events go to stdout as JSON lines; everything PyStan prints goes to stderr. The chains
run in waves (``settings["wave_chains"]`` per wave, default: as many as run at once), each
wave's PyStan output freed before the next starts; a line ``ratepool: sampling chains 3-4 of 4``
on stderr precedes each wave when there are several.

Signals: Ctrl-C is ignored (the parent decides and sends SIGTERM); SIGTERM kills the chains and
exits; the child gets SIGTERM when its parent dies (Linux) and then also deletes the run
directory, which its parent can no longer do. Chain processes are killed when the child dies.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

_NUTS = "stan::services::sample::hmc_nuts_diag_e_adapt"
_FIXED = "stan::services::sample::fixed_param"
_PR_SET_PDEATHSIG = 1
#: Lock files for seeded runs (identical runs share one; unrelated runs rarely do).
_FIT_LOCK_STRIPES = 16
#: Seconds stanc may take to translate a program here (httpstan allows it 1 second).
_STANC_SECONDS = 300.0
#: Overrides _STANC_SECONDS; tests set it to make the translation time out.
_STANC_SECONDS_ENV = "RATEPOOL_STANC_SECONDS"
#: Pauses (seconds) between attempts when httpstan's own stanc run times out.
_BUILD_PAUSES = (2.0, 5.0, 15.0)
#: Lines of console output kept for messages.
_TAIL_LINES = 40
#: How a line of httpstan's diagnostic writer starts (its momenta and gradients of every draw,
#: three values per parameter, which PyStan never reads; `_without_diagnostics`).
_DIAGNOSTIC_LINE = b'{"version":1,"topic":"diagnostic"'
#: Bytes of a stored fit decompressed at a time while its diagnostic lines are dropped.
_FILTER_CHUNK = 1 << 22
#: Chain processes in httpstan's pool (`_Child.install_pool`): chains that run at once.
_POOL_WORKERS = os.cpu_count() or 1
#: The test-only pause points, loaded by path (this process does not import ratepool).
_TEST_HOOKS = runpy.run_path(str(Path(__file__).parents[1] / "_testhooks.py"))


def _tail(text: str) -> str:
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-_TAIL_LINES:])


def _die_with_parent(signum: int) -> None:
    """Ask the kernel to send ``signum`` when the parent exits (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signum)


def _init_worker() -> None:  # pragma: no cover - runs in the chain processes
    """Chain processes ignore Ctrl-C (the parent handles it) and die with this process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(signal.SIGKILL)
    _TEST_HOOKS["pause_at"]("sample")  # test-only (ratepool/_testhooks.py); a no-op unless set


def _chain_processes() -> list[Any]:
    stub = sys.modules.get("httpstan.services_stub")
    return list(getattr(getattr(stub, "executor", None), "_processes", {}).values())


class _Child:
    def __init__(self, parent: int) -> None:
        self.parent = parent
        self.run_dir: Path | None = None
        self.base: Path | None = None  # where the parent makes its run directories
        self.request: dict[str, Any] = {}
        self.events = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)  # anything else written to stdout is console output

    # -- signals ---------------------------------------------------------------------------
    def on_term(self, signum: int, frame: Any) -> None:
        for process in _chain_processes():
            with contextlib.suppress(Exception):
                process.kill()
        if os.getppid() != self.parent:  # the parent died: nobody else will clean up after it
            self.remove_parents_run_dirs()
        os._exit(128 + signum)

    def remove_parents_run_dirs(self) -> None:
        """Delete the run directory being served and any the dead parent made but had not sent
        yet (named ``ratepool-pystan-<parent pid>-...``: provably its own, and it is dead)."""
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        bases = [self.base] if self.base is not None else [Path(tempfile.gettempdir()),
                                                            Path("/tmp")]
        for base in bases:
            for path in base.glob(f"ratepool-pystan-{self.parent}-*"):
                shutil.rmtree(path, ignore_errors=True)

    def event(self, name: str, **values: Any) -> None:
        self.events.write(json.dumps({"event": name, **values}) + "\n")

    # -- httpstan's cache ------------------------------------------------------------------
    def model_dir(self) -> Path:
        import httpstan.cache
        import httpstan.models

        return httpstan.cache.model_directory(
            httpstan.models.calculate_model_name(self.request["program_code"]))

    def is_compiled(self) -> bool:
        model_dir = self.model_dir()
        return model_dir.is_dir() and any(model_dir.glob("*.so"))

    @contextlib.contextmanager
    def compile_lock(self) -> Iterator[None]:
        """An exclusive lock on httpstan's cache while building (httpstan writes the module in
        place, so two processes compiling the same program could load a half-written one)."""
        with _cache_lock("ratepool-compile.lock"):
            yield

    # -- build -----------------------------------------------------------------------------
    def build(self, data: dict[str, Any], seed: int | None) -> Any:
        """``stan.build`` under the lock: compiles on first use, then binds the data.

        Its console output is kept out of sight: stanc warns that the parameters "have no
        priors" because the program uses ``target +=`` (to keep every constant), which is noise.
        """
        with self.compile_lock():
            compiled_before = self.is_compiled()
            if not compiled_before:
                self.event("compiling")
                self.translate()
            start = time.perf_counter()
            model = self.build_retrying(data, seed)
        if not compiled_before:
            self.event("compiled", seconds=time.perf_counter() - start)
        return model

    def translate(self) -> None:
        """Run httpstan's own stanc on the program once, with a generous time budget.

        httpstan gives stanc 1 second, which a busy machine's first run can exceed; this run
        reports syntax errors in stanc's words and leaves stanc's files in the page cache, so
        httpstan's own run that follows is a quick one.
        """
        import importlib.resources

        seconds = float(os.environ.get(_STANC_SECONDS_ENV, _STANC_SECONDS))
        path = self.request["program_path"]
        program = self.run_dir / "program.stan"  # type: ignore[operator]
        program.write_text(self.request["program_code"], encoding="utf-8")
        with importlib.resources.as_file(
                importlib.resources.files("httpstan") / "stanc") as stanc:
            try:
                done = subprocess.run([str(stanc), "--warn-pedantic", "--print-cpp",
                                       str(program)], capture_output=True, timeout=seconds)
            except subprocess.TimeoutExpired:
                raise _Failure("compile", f"stanc took more than {seconds:g} s to translate "
                               f"{path}; the machine may be very busy: try again when it is "
                               "less loaded") from None
        if done.returncode != 0:
            raise _Failure("compile", f"PyStan could not compile {path}: "
                           f"{done.stderr.decode(errors='replace').strip()}")

    def build_retrying(self, data: dict[str, Any], seed: int | None) -> Any:
        """``stan.build``, again after a pause when httpstan's 1-second stanc run timed out."""
        import stan

        for attempt, pause in enumerate((*_BUILD_PAUSES, None), start=1):
            record = io.StringIO()
            try:
                with contextlib.redirect_stdout(record), contextlib.redirect_stderr(record):
                    return stan.build(self.request["program_code"], data=data,
                                      random_seed=seed)
            except (ValueError, RuntimeError) as error:
                console = record.getvalue()
                if self.is_compiled():
                    raise _Failure("data", f"the Stan program rejected the data: {error}\n"
                                   f"{_tail(console)}") from None
                if "TimeoutExpired" not in f"{error}\n{console}":
                    raise _Failure("compile", f"PyStan could not compile "
                                   f"{self.request['program_path']}: {error}",
                                   detail=console) from None
                if pause is None:
                    raise _Failure("compile", f"httpstan's stanc run (it allows 1 second) timed "
                                   f"out {attempt} times compiling "
                                   f"{self.request['program_path']}: the machine is too busy; "
                                   "try again when it is less loaded, or use the CmdStan "
                                   "engine", detail=console) from None
                print(f"httpstan's stanc run timed out (attempt {attempt}); again in "
                      f"{pause:g} s", file=sys.stderr)
                time.sleep(pause)
        raise AssertionError("unreachable")

    def data(self) -> dict[str, Any]:
        assert self.run_dir is not None
        path = self.run_dir / "data.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    # -- actions ---------------------------------------------------------------------------
    def compile(self) -> dict[str, Any]:
        compiled_before = self.is_compiled()
        try:
            self.build({}, seed=None)  # compiles, then fails to bind the (missing) data
        except _Failure as failure:
            if failure.kind == "compile":
                raise
        return {"compiled": not compiled_before}

    def sample(self) -> dict[str, Any]:
        """Run the chains in waves (`_waves`) and write their draws to ``draws.npz``.

        PyStan holds every chain's whole output as JSON text (about 16 times the draws' size)
        until its fit is gone, so chains run a wave at a time: each wave's draws are copied into
        the run's arrays and its fit dropped (and the freed memory returned to the system)
        before the next wave starts. A wave holds at most as many chains as httpstan's pool runs
        at once, so waves cost next to no time.
        """
        import numpy as np

        settings = self.request["settings"]
        model = self.build(self.data(), settings["seed"])
        function, kwargs = _sampler_call(settings)
        chains = settings["chains"]
        waves = _waves(chains, _wave_size(settings.get("wave_chains"), chains))
        start = time.perf_counter()
        draws = _Draws(chains)
        for wave, members in enumerate(waves):
            if len(waves) > 1:  # the parent's progress line reads this (`SamplingProgress`)
                print(f"ratepool: sampling chains {members.start + 1}-{members.stop} of "
                      f"{chains}", file=sys.stderr, flush=True)
            wave_model = dataclasses.replace(model, random_seed=_wave_seed(settings["seed"],
                                                                           wave))
            fit = self.run_wave(wave_model, function, _wave_kwargs(kwargs, members))
            draws.add(fit, members)
            del fit
            _release_memory()
        np.savez(self.run_dir / "draws.npz", **draws.arrays)  # type: ignore[operator]
        return {"seconds": time.perf_counter() - start}

    def run_wave(self, model: Any, function: str, kwargs: dict[str, Any]) -> Any:
        """One ``sample`` (or ``fixed_param``) call of ``len(kwargs["init"])`` chains, with
        httpstan's stored copies of its fits deleted; returns PyStan's ``Fit``."""
        chains = len(kwargs["init"])
        call_kwargs = kwargs if any(kwargs["init"]) else {
            key: value for key, value in kwargs.items() if key != "init"}
        run = model.fixed_param if function == _FIXED else model.sample
        fits = self.fit_paths(model, function, kwargs)
        # httpstan names a seeded fit by its request and answers an identical request with the
        # stored fit: identical runs at once would share, and each delete, one file. So a run
        # holds a lock for its fit names (one of a few stripes) from start to clean-up.
        stripe = int(hashlib.sha256("".join(map(str, fits)).encode()).hexdigest(), 16)
        with _cache_lock(f"ratepool-fit-{stripe % _FIT_LOCK_STRIPES}.lock"):
            _unlink(fits)  # left by a run that was killed before its clean-up
            try:
                fit = run(num_chains=chains, **call_kwargs)
            except (RuntimeError, ValueError) as error:
                raise _Failure("sampling", f"PyStan's sampler failed: {error}") from None
            finally:
                _unlink(fits)
        if fit is None:  # PyStan returns None when interrupted
            raise _Failure("interrupted", "the sampler was interrupted")
        return fit

    def log_density(self) -> dict[str, Any]:
        import numpy as np

        model = self.build(self.data(), seed=1)
        params = self.request["params"]
        context = {name: np.asarray(params[name], dtype=float).tolist()
                   for name in model.param_names if name in params}
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            unconstrained = model.unconstrain_pars(context)
            value = model.log_prob(unconstrained, adjust_transform=self.request["jacobian"])
        return {"value": float(value)}

    # -- one request -----------------------------------------------------------------------
    def serve(self, run_dir: Path) -> None:
        """Answer the request in ``run_dir``, with it as working and temp directory."""
        self.run_dir = run_dir
        self.base = run_dir.parent
        self.request = json.loads((run_dir / "request.json").read_text(encoding="utf-8"))
        os.chdir(run_dir)
        tempfile.tempdir = str(run_dir)
        action = {"compile": self.compile, "sample": self.sample,
                  "log_density": self.log_density}[self.request["action"]]
        try:
            result = {"ok": True, **action()}
        except _Failure as failure:
            result = {"ok": False, "kind": failure.kind, "message": str(failure),
                      "detail": failure.detail}
        except Exception as error:  # noqa: BLE001 - reported to the parent with the traceback
            result = {"ok": False, "kind": "crash", "message": f"{type(error).__name__}: {error}",
                      "detail": traceback.format_exc()}
        finally:
            os.chdir("/")
            tempfile.tempdir = None
        temp = run_dir / "result.json.tmp"
        temp.write_text(json.dumps(result), encoding="utf-8")
        os.replace(temp, run_dir / "result.json")
        self.run_dir = None
        sys.stderr.flush()
        self.event("done")

    # -- httpstan's pool and fit cache -----------------------------------------------------
    @staticmethod
    def install_pool() -> None:
        """Chains run in a pool whose processes die with this one (httpstan's own survive a
        killed parent and keep sampling). This process exists to run PyStan, so its
        module-level pool is ours to replace."""
        import httpstan.services_stub as stub

        stub.executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=_POOL_WORKERS, mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker)

    @staticmethod
    def install_fit_filter() -> None:
        """httpstan serves a fit as the whole text of every message Stan wrote, three quarters
        of it the diagnostic writer's (momenta and gradients of every draw), and PyStan holds
        each chain's text until its fit is built; PyStan reads only the draws and the logger
        messages. So the fits this process's httpstan serves are read from its cache without
        the diagnostic lines (`_without_diagnostics`): same draws, a quarter of the text."""
        import httpstan.cache

        load_fit = getattr(httpstan.cache, "load_fit", None)
        if load_fit is None or getattr(load_fit, "_ratepool_filter", False):
            return

        def load_fit_without_diagnostics(name: str) -> bytes:
            return _without_diagnostics(load_fit(name))

        load_fit_without_diagnostics._ratepool_filter = True  # type: ignore[attr-defined]
        httpstan.cache.load_fit = load_fit_without_diagnostics

    @staticmethod
    def fit_paths(model: Any, function: str, kwargs: dict[str, Any]) -> list[Path]:
        """Where httpstan stores the fits of ``model.sample(num_chains=len(kwargs["init"]),
        **kwargs)`` (it keeps every seeded fit for ever).

        httpstan names a seeded fit by hashing its request; the same request is rebuilt here.
        """
        import httpstan.cache
        import httpstan.fits
        import httpstan.schemas

        import stan

        inits = kwargs["init"]
        encoded = json.loads(stan.model.DataJSONEncoder().encode(
            {key: value for key, value in kwargs.items() if key != "init"}))
        paths = []
        for chain in range(1, len(inits) + 1):
            request = dict(encoded, function=function, chain=chain, data=model.data,
                           init=inits[chain - 1], random_seed=model.random_seed)
            args = httpstan.schemas.CreateFitRequest().load(request)
            name = httpstan.fits.calculate_fit_name(args.pop("function"), model.model_name, args)
            paths.append(httpstan.cache.fit_path(name))
        return paths


def _without_diagnostics(stored: bytes) -> bytes:
    """A stored fit (gzip members of JSON lines, as httpstan's cache holds it) without the lines
    of Stan's diagnostic writer, gzip-compressed again; decompressed a chunk at a time, so
    memory stays near the size of what is kept."""
    import zlib

    kept = zlib.compressobj(level=zlib.Z_BEST_SPEED, wbits=zlib.MAX_WBITS | 16)
    parts: list[bytes] = []
    partial = b""
    for text in _gunzip_chunks(stored):
        lines = (partial + text).split(b"\n")
        partial = lines.pop()
        parts.extend(kept.compress(line + b"\n") for line in lines
                     if not line.startswith(_DIAGNOSTIC_LINE))
    if partial and not partial.startswith(_DIAGNOSTIC_LINE):
        parts.append(kept.compress(partial))
    parts.append(kept.flush())
    return b"".join(parts)


def _gunzip_chunks(stored: bytes) -> Iterator[bytes]:
    """The decompressed text of concatenated gzip members, in chunks of at most
    `_FILTER_CHUNK` bytes."""
    import gzip

    with gzip.GzipFile(fileobj=io.BytesIO(stored)) as text:
        yield from iter(lambda: text.read(_FILTER_CHUNK), b"")


def _sampler_call(settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The stan::services function of a run and its keyword arguments, ``init`` (one dict per
    chain, empty for Stan's default) included. The fixed_param sampler takes the inits too
    (its draws are them), as CmdStan's does."""
    kwargs: dict[str, Any] = {"num_samples": settings["draws"]}
    if settings["fixed_param"]:
        function = _FIXED
    else:
        function = _NUTS
        kwargs.update(num_warmup=settings["warmup"], delta=settings["adapt_delta"])
    # one dict per chain, for either sampler as CmdStan takes them (httpstan takes no metric)
    inits = settings.get("inits")
    kwargs["init"] = list(inits) if inits else [{} for _ in range(settings["chains"])]
    return function, kwargs


def _wave_size(requested: int | None, chains: int) -> int:
    """Chains per wave: ``requested`` when set (at least 1), else as many as httpstan's pool runs
    at once (`_POOL_WORKERS`), so that the waves take no longer than one call would."""
    size = int(requested) if requested else _POOL_WORKERS
    return max(1, min(size, chains))


def _waves(chains: int, size: int) -> list[range]:
    """The run's chain indexes (0-based) in consecutive waves of at most ``size``."""
    return [range(first, min(first + size, chains)) for first in range(0, chains, size)]


def _wave_seed(seed: int, wave: int) -> int:
    """The seed of wave ``wave``: the run's own for the first (a one-wave run is unchanged),
    then one derived from both, in Stan's range [0, 2^31 - 2].

    PyStan numbers each call's chains from 1 and Stan's chain streams depend on (seed, chain)
    only, so each wave needs a seed of its own or it would repeat the first wave's chains.
    """
    if wave == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, wave]).generate_state(1)[0] % (2**31 - 1))


def _wave_kwargs(kwargs: dict[str, Any], members: range) -> dict[str, Any]:
    """The sampler's arguments for the chains ``members``: their own inits."""
    return dict(kwargs, init=kwargs["init"][members.start:members.stop])


class _Draws:
    """The run's draws, filled a wave at a time: ``v.<variable>`` arrays shaped
    (chain, draw, *dims) and ``s.<sampler column>`` arrays shaped (chain, draw), float64."""

    def __init__(self, chains: int) -> None:
        self.chains = chains
        self.arrays: dict[str, Any] = {}

    def add(self, fit: Any, members: range) -> None:
        """Copy the draws of PyStan's ``fit`` (the chains ``members``) into the arrays."""
        count = len(members)
        for name, dims in zip(fit.param_names, fit.dims):
            if 0 not in dims:
                self.put(f"v.{name}", members,
                         _by_chain(fit[name], count).reshape(count, -1, *dims))
        for name in fit.sample_and_sampler_param_names:
            self.put(f"s.{name}", members, _by_chain(fit[name], count)[..., 0])

    def put(self, key: str, members: range, block: Any) -> None:
        import numpy as np

        if key not in self.arrays:
            self.arrays[key] = np.empty((self.chains, *block.shape[1:]), dtype=block.dtype)
        self.arrays[key][members.start:members.stop] = block


def _release_memory() -> None:
    """Collect what a wave left and hand the freed heap back to the system (glibc's
    ``malloc_trim``; elsewhere the collection only), so the next wave's peak starts low."""
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _cache_lock(name: str) -> Iterator[None]:
    """An exclusive lock on the file ``name`` in httpstan's cache directory (held by one process
    at a time, released when it ends, however it ends).

    The lock is released explicitly: the sampler forks worker processes that outlive the run and
    share the open file, so closing our descriptor alone would leave the lock held by them, and
    the next run of this process with the same lock name would wait for ever.
    """
    import fcntl

    import httpstan.cache

    directory = httpstan.cache.cache_directory()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / name, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Failure(Exception):
    """A failure to report to the parent: ``kind`` is compile, data, sampling or interrupted."""

    def __init__(self, kind: str, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail


def _by_chain(flat: Any, chains: int) -> Any:
    """PyStan's (*dims, draws * chains) array, draw-major, as (chain, draw, *dims)."""
    import numpy as np

    dims = flat.shape[:-1]
    per_draw = flat.reshape(*dims, -1, chains)  # last axis index = draw * chains + chain
    return np.moveaxis(np.moveaxis(per_draw, -1, 0), -1, 1)


def main(parent: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = _Child(int(parent))
    signal.signal(signal.SIGTERM, child.on_term)
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != child.parent:  # the parent died before the line above
        child.on_term(signal.SIGTERM, None)
    child.install_pool()
    child.install_fit_filter()
    for line in sys.stdin:
        child.serve(Path(line.strip()))
    if os.getppid() != child.parent:  # stdin closed because the parent died
        child.remove_parents_run_dirs()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
