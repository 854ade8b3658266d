"""The PyStan engine: compiles the program offline with httpstan's bundled stanc and the system
C++ compiler, and samples it in a child process.

PyStan needs things a library must not do to its caller's process: a working directory for its
build, a temp directory for httpstan's Unix socket (which it never removes), an asyncio loop of
its own, and a pool of chain processes. So compiles, sampling runs and log densities run in a
child process (`ratepool.engines._pystan_child`) that belongs to the engine object (started on
first use, ended with the object, serving one request at a time); each request gets a private
working and temp directory, deleted afterwards, and the draws come back as numpy arrays through
a file, so the caller never holds PyStan's own copy of them. Separate engine objects (each
`ratepool.fit` call makes one) run side by side from several threads. Ctrl-C stops the child and
its chains; a killed caller takes them down too (Linux). Compiled modules stay in httpstan's
per-user cache, built by one process at a time; the seeded fits httpstan would keep for ever are
deleted.

Memory: PyStan keeps each chain's whole output as JSON text until its fit is built (about
0.13 KB per value of every draw, three quarters of it httpstan's diagnostic writer: momenta and
gradients, which PyStan never reads). The child serves httpstan's fits without the diagnostic
lines, and runs the chains in waves of at most as many chains as run at once (the machine's
cores), keeping each wave's draws (8 bytes a value) and freeing the rest before the next.
``RATEPOOL_PYSTAN_WAVE_CHAINS`` sets the chains per wave (1: the least memory; the run's chains:
one call, as before waves). Each wave after the first gets a seed derived from the run's seed
and its index: a run's first wave draws what a one-call run draws, its later chains differ.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import numpy as np
import stanio

from ratepool._testhooks import pause_at
from ratepool.engines.base import (
    Draws,
    Engine,
    SamplerSettings,
    sampler_messages,
    shorten,
    split_sample_stats,
    tail,
)
from ratepool.engines.progress import SamplingProgress
from ratepool.errors import (
    CompileError,
    ConfigError,
    EngineError,
    EngineNotFoundError,
    SamplingError,
)
from ratepool.model.program import StanProgram
from ratepool.tempdirs import owned_tempdir

__all__ = ["PyStanEngine", "pystan_available"]

log = logging.getLogger(__name__)

_CHILD = Path(__file__).with_name("_pystan_child.py")
#: Unix socket paths are limited to ~107 bytes; httpstan binds one in the child's temp directory.
_MAX_TEMP_BASE = 60
#: Seconds the child gets to stop its chains after SIGTERM before it is killed.
_STOP_GRACE_SECONDS = 10.0
#: Characters of the child's console output kept for error messages.
_CONSOLE_KEEP = 64_000
#: Chains per wave (a positive integer; unset: as many as the machine runs at once).
WAVE_CHAINS_ENV = "RATEPOOL_PYSTAN_WAVE_CHAINS"


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


def _temp_base() -> str:
    base = tempfile.gettempdir()
    if len(base) > _MAX_TEMP_BASE and os.path.isdir("/tmp"):
        return "/tmp"  # a long TMPDIR would make httpstan's socket path too long to bind
    return base


class _Console(threading.Thread):
    """Reads the child's console output and keeps its tail. When ``progress`` is set, PyStan's
    ``Sampling: NN%`` lines go to it (`ratepool.engines.progress.SamplingProgress`: one line
    on a terminal, log lines elsewhere). Compiler output and Stan's messages stay in the text
    (logged at DEBUG after the run, shown with ``--verbose``)."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self.progress: SamplingProgress | None = None
        self.text = ""
        self._line = ""

    def run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for chunk in iter(lambda: self._stream.read1(65536), b""):
            text = decoder.decode(chunk)
            self.text = (self.text + text)[-_CONSOLE_KEEP:]
            lines = (self._line + text).split("\n")
            self._line = lines.pop()
            progress = self.progress
            if progress is not None:
                for line in lines:
                    progress.pystan_line(line)
        self._stream.close()


def _stop(process: subprocess.Popen) -> None:
    """Stop the child (it kills its chains on SIGTERM); kill it if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Child:
    """The engine's child process, its event stream and its console reader."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(
            [sys.executable, "-P", str(_CHILD), str(os.getpid())], cwd="/", env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.console = _Console(self.process.stderr)
        self.console.start()
        # Ends the child (its stdin closes) when the engine object goes, or at exit.
        self.finalizer = weakref.finalize(self, _close, self.process)

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, run_dir: Path) -> None:
        self.process.stdin.write(f"{run_dir}\n".encode())
        self.process.stdin.flush()

    def events(self) -> Any:
        """The child's events until it is done with the request (or ends)."""
        for line in self.process.stdout:
            event = json.loads(line)
            if event["event"] == "done":
                return
            yield event

    def stop(self) -> None:
        _stop(self.process)
        self.finalizer()


def _close(process: subprocess.Popen) -> None:
    """Close the child's stdin (it exits after its current request); stop it if it lingers."""
    try:
        process.stdin.close()
        process.wait(_STOP_GRACE_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        _stop(process)
    process.stdout.close()  # stderr is closed by its reader at its end


class PyStanEngine(Engine):
    """Runs the program with PyStan 3 (httpstan), in a child process of its own."""

    name = "pystan"

    def __init__(self) -> None:
        self._stan = _import_stan()
        self._child: _Child | None = None
        self._lock = threading.Lock()  # one request at a time per engine object

    def _run(
        self, request: dict[str, Any], program: StanProgram, data: Mapping[str, Any] | None,
        *, progress: SamplingProgress | None = None,
    ) -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
        """Have the child answer one request; return its result, the arrays it wrote and its
        console output."""
        request = dict(request, program_code=program.code, program_path=str(program.path))
        with self._lock, owned_tempdir("ratepool-pystan-", _temp_base()) as run_dir:
            if data is not None:
                stanio.write_stan_json(str(run_dir / "data.json"), dict(data))
            (run_dir / "request.json").write_text(json.dumps(request), encoding="utf-8")
            if self._child is None or not self._child.alive():
                self._child = _Child()
            child = self._child
            pause_at("compile")
            child.console.text = ""  # the child is idle: nothing is being written
            child.console.progress = progress
            try:
                child.send(run_dir)
                for event in child.events():
                    self._on_event(event, program)
            except BaseException:
                child.stop()
                raise
            finally:
                child.console.progress = None
            console = child.console.text
            result_file = run_dir / "result.json"
            if not result_file.exists():
                child.stop()
                child.console.join(_STOP_GRACE_SECONDS)
                log.error("the PyStan process's output:\n%s", tail(child.console.text))
                raise EngineError(f"the PyStan process ended without a result (exit code "
                                  f"{child.process.returncode}); its output is in the log "
                                  "(logger ratepool.engines.pystan). Run again; if it happens "
                                  "again, try engine='cmdstan'")
            result = json.loads(result_file.read_text(encoding="utf-8"))
            arrays: dict[str, np.ndarray] = {}
            if (run_dir / "draws.npz").exists():
                with np.load(run_dir / "draws.npz") as stored:
                    arrays = {key: stored[key] for key in stored.files}
        if not result["ok"]:
            self._raise(result, console)
        return result, arrays, console

    @staticmethod
    def _on_event(event: Mapping[str, Any], program: StanProgram) -> None:
        if event["event"] == "compiling":
            log.info("compiling %s with PyStan (about a minute, once per program version)",
                     program.path.name)
        elif event["event"] == "compiled":
            log.info("compiled in %.1f s", event["seconds"])

    @staticmethod
    def _raise(result: Mapping[str, Any], console: str) -> None:
        kind, message = result["kind"], result["message"]
        if result.get("detail"):
            log.debug("PyStan's %s failure in detail:\n%s", kind, result["detail"])
        if kind == "compile":
            raise CompileError(message)
        if kind == "interrupted":
            raise KeyboardInterrupt
        if kind == "crash":
            log.error("the PyStan process failed:\n%s\n%s", result.get("detail", ""),
                      tail(console))
            raise EngineError(f"the PyStan process failed unexpectedly ({shorten(message)}); "
                              "the detail is in the log (logger ratepool.engines.pystan). Run "
                              "again; if it happens again, try engine='cmdstan'")
        raise SamplingError(f"{shorten(message)}\n--- engine output (tail) ---\n{tail(console)}")

    # -- compile -------------------------------------------------------------------------
    def compile(self, program: StanProgram) -> bool:
        result, _, _ = self._run({"action": "compile"}, program, None)
        return bool(result["compiled"])

    # -- sample ----------------------------------------------------------------------------
    def sample(
        self, program: StanProgram, data: Mapping[str, Any], settings: SamplerSettings
    ) -> Draws:
        self.check_threads(settings.threads_per_chain)
        start = time.perf_counter()
        request = {"action": "sample", "settings": {
            "chains": settings.chains, "warmup": settings.warmup, "draws": settings.draws,
            "adapt_delta": settings.adapt_delta, "seed": settings.seed,
            "fixed_param": settings.fixed_param, "wave_chains": _wave_chains(),
            "inits": [dict(chain) for chain in settings.inits] if settings.inits else None}}
        if settings.inv_metric is not None:
            log.debug("PyStan takes no initial metric: its warmup starts from the unit metric")
        iterations = settings.draws + (0 if settings.fixed_param else settings.warmup)
        progress = SamplingProgress(settings.chains, iterations,
                                    sys.stderr if settings.show_progress else None)
        _, arrays, console = self._run(request, program, data, progress=progress)
        progress.finish()
        log.debug("PyStan's messages:\n%s", sampler_messages(console, program))
        return Draws(
            variables={key[2:]: value for key, value in arrays.items() if key.startswith("v.")},
            sample_stats=split_sample_stats(
                {key[2:]: value for key, value in arrays.items() if key.startswith("s.")}),
            engine=self.name,
            console=tail(console),
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
        request = {"action": "log_density", "jacobian": jacobian,
                   "params": {name: np.asarray(value, dtype=float).tolist()
                              for name, value in params.items()}}
        result, _, _ = self._run(request, program, data)
        return float(result["value"])

    def versions(self) -> dict[str, str]:
        import httpstan

        return {
            "engine": self.name,
            "pystan": self._stan.__version__,
            "httpstan": httpstan.__version__,
            "stan": _stan_version(Path(httpstan.__file__).parent),
        }


def _wave_chains() -> int | None:
    """Chains per wave from ``RATEPOOL_PYSTAN_WAVE_CHAINS`` (None when unset: the child's
    default, the chains that run at once)."""
    text = os.environ.get(WAVE_CHAINS_ENV, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{WAVE_CHAINS_ENV} must be a positive integer (chains per wave), "
                         f"not {text!r}")
    return value


def _stan_version(httpstan_dir: Path) -> str:
    header = httpstan_dir / "include" / "stan" / "version.hpp"
    try:
        text = header.read_text()
    except OSError:
        return "unknown"
    parts = [re.search(rf"#define STAN_{part} (\d+)", text) for part in
             ("MAJOR", "MINOR", "PATCH")]
    return ".".join(p.group(1) for p in parts if p) or "unknown"
