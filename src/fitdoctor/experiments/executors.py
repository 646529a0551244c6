"""Where a batch of training runs executes: one small seam, three executors.

:func:`fitdoctor.experiments.engine.train_runs` hands its runs to an executor:

* ``"inprocess"``: the vectorised JAX engine in this process (sequential ``model.fit`` runs where
  it cannot train the model). The default on the JAX backend.
* ``"worker"``: a JAX worker process (:mod:`fitdoctor.experiments.worker`), started once and reused.
  The default when this process runs Keras on another backend (TensorFlow, PyTorch): the model's
  config and all its variables, the data (a temporary ``.npz``) and its custom objects (by value,
  with cloudpickle) go to the worker; curves and weights come back as :class:`RunResult` values
  that rebuild the model in this process's backend. When JAX is missing or the model cannot be
  shipped, the runs are trained here (sequentially) and each result's ``note`` says why.
* ``"ray"``: Ray tasks (``pip install 'fitdoctor[ray]'``), for models where one fit takes minutes
  or data that lives on a cluster. Connects to ``address`` (or ``$RAY_ADDRESS``) when given, else
  uses the Ray instance this process already started, else starts a local one. Runs that share a
  compiled program (same loss, batch size and epochs) form one task; Ray schedules the tasks.

``executor`` may also be an :class:`Executor` instance. ``"auto"`` (or None) picks ``"inprocess"``
on JAX and ``"worker"`` elsewhere.
"""
from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from .shipping import (NotShippable, frame, pack_model, pack_specs, pack_value, read_frame, unpack_model_result,
                       unpack_results)

EXECUTORS = ("auto", "inprocess", "worker", "ray")


class Executor:
    """Runs a batch of training runs and returns one RunResult per spec, in order."""

    name = "executor"

    def run(self, model, X, y, specs: Sequence, *, seed: int = 0, engine: str = "auto",
            callback: Callable[[int, int], None] | None = None, **options) -> list:
        """``options``: ``validation_data``/``keep_best`` of ``train_runs``, passed through."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor holds (processes, connections)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _in_process(model, X, y, specs, *, seed, engine, callback, note: str = "", **options) -> list:
    from .engine import train_runs

    results = train_runs(model, X, y, list(specs), seed=seed, engine=engine, callback=callback, executor="inprocess",
                         **options)
    if note:
        for r in results:
            r.note = "; ".join(p for p in (note, r.note) if p)
    return results


class InProcessExecutor(Executor):
    """The vectorised JAX engine in this process (sequential fits where it cannot run)."""

    name = "inprocess"

    def run(self, model, X, y, specs, *, seed=0, engine="auto", callback=None, **options) -> list:
        return _in_process(model, X, y, specs, seed=seed, engine=engine, callback=callback, **options)


# --------------------------------------------------------------------------------------------
# the JAX worker process


def jax_available() -> bool:
    return importlib.util.find_spec("jax") is not None and importlib.util.find_spec("jaxlib") is not None


def _data_digest(X: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in (X, y):
        h.update(str((a.shape, a.dtype)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


class WorkerExecutor(Executor):
    """A long-lived ``KERAS_BACKEND=jax`` subprocess that trains on the vectorised engine.

    The process starts on the first :meth:`run` (importing Keras and JAX there takes seconds) and
    serves every later one; :meth:`start` starts it ahead of time. It ends with :meth:`close`, or
    when this process exits.
    """

    name = "worker"

    def __init__(self, *, python: str | None = None, start_timeout: float = 120.0):
        self.python = python
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._tmpdir: str | None = None
        self._data: tuple[str, str] | None = None  # (digest, path) of the data file the worker holds
        self._log = None
        self.unavailable_reason: str | None = None

    # -- process ----------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KERAS_BACKEND"] = "jax"
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # on a GPU, JAX would otherwise reserve most of its memory next to the user's TensorFlow
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        # the user's modules (custom layers, losses) import in the worker as they do here
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        if os.getcwd() not in paths:
            paths.insert(0, os.getcwd())
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def start(self) -> "WorkerExecutor":
        """Start the worker process now (it is reused by every later run)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self
            if not jax_available():
                raise NotShippable("JAX is not installed (pip install 'jax[cpu]')")
            self._tmpdir = self._tmpdir or tempfile.mkdtemp(prefix="fitdoctor-worker-")
            self._log = open(os.path.join(self._tmpdir, "worker.log"), "ab")
            self._data = None
            try:
                self._proc = subprocess.Popen([self.python or sys.executable, "-m", "fitdoctor.experiments.worker"],
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                              env=self._env(), close_fds=True)
            except OSError as exc:
                raise NotShippable(f"the JAX worker could not be started ({exc})") from None
            hello = read_frame(self._proc.stdout)
            if not hello or not hello.get("ready"):
                self._stop()
                raise NotShippable(f"the JAX worker did not start ({self._log_tail()})")
            if hello.get("backend") != "jax":
                self._stop()
                raise NotShippable(f"the worker runs Keras on {hello.get('backend')}, not JAX")
            return self

    def _log_tail(self) -> str:
        try:
            with open(os.path.join(self._tmpdir or "", "worker.log"), "rb") as fh:
                lines = fh.read().decode(errors="replace").strip().splitlines()
            return lines[-1][:200] if lines else "no output"
        except OSError:
            return "no log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _stop(self, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None and not kill:
                proc.stdin.write(frame({"op": "close"}))
                proc.stdin.flush()
                proc.wait(timeout=10)
        except Exception:
            pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except Exception:
                pass

    def close(self) -> None:
        with self._lock:
            self._stop()
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._tmpdir and os.path.isdir(self._tmpdir):
                import shutil

                shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self._data = None

    # -- runs -------------------------------------------------------------------------------
    def _data_file(self, X: np.ndarray, y: np.ndarray) -> str:
        digest = _data_digest(X, y)
        if self._data is not None and self._data[0] == digest:
            return self._data[1]
        if self._data is not None:
            try:
                os.remove(self._data[1])
            except OSError:
                pass
        path = os.path.join(self._tmpdir, f"data-{digest}.npz")
        np.savez(path, X=X, y=y)
        self._data = (digest, path)
        return path

    def run(self, model, X, y, specs, *, seed=0, engine="auto", callback=None, **options) -> list:
        specs = list(specs)
        if engine == "sequential":
            return _in_process(model, X, y, specs, seed=seed, engine=engine, callback=callback, **options)
        X = np.asarray(X, dtype=np.float64)
        X = X.reshape(-1, 1) if X.ndim == 1 else X  # rows of any shape the model takes (sequences stay 3-D)
        y = np.asarray(y, dtype=np.float64)
        with self._lock:
            try:
                self.start()
                request = {"op": "train", "model": pack_model(model), "specs": pack_specs(specs),
                           "data": self._data_file(X, y), "seed": int(seed), "engine": engine,
                           "options": _plain_options(options)}
            except NotShippable as exc:
                return self._fallback(model, X, y, specs, seed, engine, callback, str(exc), **options)
            try:
                reply = self._exchange(request, callback)
            except (BrokenPipeError, OSError) as exc:
                return self._fallback(model, X, y, specs, seed, engine, callback, str(exc), **options)
        if reply.get("ok"):
            backend = _backend_name()
            note = "" if backend == "jax" else f"trained in a JAX worker process (this process runs Keras on {backend})"
            return unpack_results(reply["results"], specs, note or "trained in a JAX worker process")
        if reply.get("kind") == "input":
            raise InputError(reply["message"])
        return self._fallback(model, X, y, specs, seed, engine, callback, f"the JAX worker failed ({reply['message'][:160]})",
                              **options)

    def _exchange(self, request: dict, callback) -> dict:
        """Send one request and read replies up to the final one (progress goes to ``callback``)."""
        try:
            self._proc.stdin.write(frame(request))
            self._proc.stdin.flush()
            while True:
                reply = read_frame(self._proc.stdout)
                if reply is None:
                    raise BrokenPipeError(f"the JAX worker exited ({self._log_tail()})")
                if "progress" in reply:
                    if callback is not None:
                        callback(*reply["progress"])
                    continue
                return reply
        except (BrokenPipeError, OSError):
            self._stop()
            raise
        except BaseException:  # interrupted mid-request (Ctrl-C, a failing callback): replies are out of step
            self._stop(kill=True)
            raise

    def call(self, fn: Callable, model, X, y, value, **kwargs):
        """``fn(model, X, y, value, **kwargs)`` in the worker, for a function importable by name whose
        result is a dataclass holding a trained Keras ``model`` (a plain ``model.fit`` with callbacks):
        the model comes back rebuilt in this process's backend. ``value`` is a configuration (its
        ``loss_object`` travels by value). Returns None when the worker cannot take the call; the
        caller then runs ``fn`` itself. Input errors are raised here."""
        X = np.asarray(X, dtype=np.float64)
        X = X.reshape(-1, 1) if X.ndim == 1 else X
        y = np.asarray(y, dtype=np.float64)
        with self._lock:
            try:
                self.start()
                request = {"op": "call", "fn": _dumps_fn(fn), "model": pack_model(model), "value": pack_value(value),
                           "kwargs": kwargs, "data": self._data_file(X, y)}
                reply = self._exchange(request, None)
            except (NotShippable, BrokenPipeError, OSError) as exc:
                self.unavailable_reason = str(exc)
                return None
        if reply.get("ok"):
            return unpack_model_result(reply["result"])
        if reply.get("kind") == "input":
            raise InputError(reply["message"])
        self.unavailable_reason = reply.get("message", "")
        return None

    def _fallback(self, model, X, y, specs, seed, engine, callback, why: str, **options) -> list:
        self.unavailable_reason = why
        if engine == "vectorized" and _backend_name() != "jax":
            raise InputError(f"the vectorised engine cannot train this model: {why}")
        return _in_process(model, X, y, specs, seed=seed, engine=engine, callback=callback,
                           note=f"JAX worker not used: {why}", **options)


def _plain_options(options: dict) -> dict:
    """``train_runs`` options as plain arrays and flags (what crosses to a worker)."""
    out = dict(options)
    if out.get("validation_data") is not None:
        out["validation_data"] = tuple(np.asarray(a, dtype=np.float64) for a in out["validation_data"])
    return out


def _dumps_fn(fn) -> bytes:
    import pickle

    return pickle.dumps(fn)  # by name: the worker imports the same function


def call_in_worker(fn: Callable, model, X, y, value, **kwargs):
    """On a backend other than JAX: ``fn(model, X, y, value, **kwargs)`` in the JAX worker process
    (see :meth:`WorkerExecutor.call`). None on JAX, without JAX, or when the worker cannot take it."""
    if _backend_name() == "jax" or not jax_available():
        return None
    return default_worker().call(fn, model, X, y, value, **kwargs)


def _backend_name() -> str:
    import keras

    return keras.backend.backend()


_DEFAULT_WORKER: WorkerExecutor | None = None
_DEFAULT_LOCK = threading.Lock()


def default_worker() -> WorkerExecutor:
    """The process-wide worker executor (one worker process, reused by every call)."""
    global _DEFAULT_WORKER
    with _DEFAULT_LOCK:
        if _DEFAULT_WORKER is None:
            _DEFAULT_WORKER = WorkerExecutor()
        return _DEFAULT_WORKER


def shutdown_worker() -> None:
    """Stop the process-wide worker (a later run starts a new one)."""
    global _DEFAULT_WORKER
    with _DEFAULT_LOCK:
        if _DEFAULT_WORKER is not None:
            _DEFAULT_WORKER.close()
            _DEFAULT_WORKER = None


atexit.register(shutdown_worker)


# --------------------------------------------------------------------------------------------
# Ray


def _task_groups(specs: Sequence) -> list[list[int]]:
    """Indices of the runs that share a compiled program (loss, batch size, epochs): one Ray task each."""
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(specs):
        key = (str(s.loss), float(s.huber_delta), id(s.loss_object), int(s.batch_size), int(s.epochs))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def _ray_train(packed_model, X, y, packed_specs, seed, engine, options=None):  # runs inside a Ray worker
    os.environ.setdefault("KERAS_BACKEND", "jax")
    from .shipping import run_packed
    from .worker import skip_tensorflow

    skip_tensorflow()

    return run_packed(packed_model, X, y, packed_specs, seed=seed, engine=engine, **(options or {}))


class RayExecutor(Executor):
    """Groups of runs as Ray tasks on a Ray cluster (or a local Ray instance).

    ``address``: a cluster to connect to (``ray.init(address=...)``); default ``$RAY_ADDRESS``,
    else the instance this process already started, else a new local instance. ``num_cpus`` per
    task (default 1). Each task trains its runs with the vectorised JAX engine in the Ray worker.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: float = 1.0):
        self.address = address
        self.num_cpus = num_cpus
        self._remote = None

    def _ray(self):
        try:
            import ray
        except ImportError:
            raise InputError("executor='ray' needs Ray: pip install 'fitdoctor[ray]'") from None
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS") or None
            try:
                ray.init(address=address, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
                         runtime_env={"env_vars": {"KERAS_BACKEND": "jax"}})
            except ConnectionError as exc:
                raise InputError(f"cannot connect to the Ray cluster at {address}: {exc} (Received address={address!r})") from None
        if self._remote is None:
            self._remote = ray.remote(_ray_train)
        return ray

    def run(self, model, X, y, specs, *, seed=0, engine="auto", callback=None, **options) -> list:
        specs = list(specs)
        if not specs:
            return []
        ray = self._ray()
        X = np.asarray(X, dtype=np.float64)
        X = X.reshape(-1, 1) if X.ndim == 1 else X  # rows of any shape the model takes (sequences stay 3-D)
        y = np.asarray(y, dtype=np.float64)
        try:
            packed_model = pack_model(model)
            packed_specs = pack_specs(specs)
        except NotShippable as exc:
            raise InputError(f"executor='ray' cannot send this model to Ray workers: {exc}") from None
        model_ref, x_ref, y_ref = ray.put(packed_model), ray.put(X), ray.put(y)
        pairs, losses = packed_specs
        remote = self._remote.options(num_cpus=self.num_cpus,
                                      runtime_env={"env_vars": {"KERAS_BACKEND": "jax"}})
        pending = {}
        for idx in _task_groups(specs):
            group_specs = [[pairs[i] for i in idx], losses]
            ref = remote.remote(model_ref, x_ref, y_ref, group_specs, int(seed), engine, _plain_options(options))
            pending[ref] = idx
        results: list = [None] * len(specs)
        done = 0
        refs = list(pending)
        while refs:
            ready, refs = ray.wait(refs, num_returns=1)
            for ref in ready:
                idx = pending[ref]
                try:
                    packed = ray.get(ref)
                except Exception as exc:
                    cause = getattr(exc, "cause", None) or exc
                    if isinstance(cause, InputError) or isinstance(exc, InputError):
                        raise InputError(str(cause)) from None
                    raise
                for i, r in zip(idx, unpack_results(packed, [specs[i] for i in idx], "trained by a Ray task")):
                    results[i] = r
                done += len(idx)
                if callback is not None:
                    callback(done, len(specs))
        return results


# --------------------------------------------------------------------------------------------


def get_executor(executor: "str | Executor | None", *, engine: str = "auto") -> Executor | None:
    """The executor ``train_runs`` hands its runs to, or None to train in this process.

    ``None``/``"auto"``: this process on the JAX backend, the JAX worker elsewhere (unless the
    sequential engine is asked for, which trains here).
    """
    if isinstance(executor, Executor):
        return None if isinstance(executor, InProcessExecutor) else executor
    if executor is None or executor == "auto":
        if engine == "sequential" or _backend_name() == "jax":
            return None
        return default_worker()
    if not isinstance(executor, str) or executor not in EXECUTORS:
        raise InputError(f"executor must be one of {', '.join(EXECUTORS)} or an Executor (Received executor={executor!r})")
    if executor == "inprocess":
        return None
    if executor == "worker":
        return default_worker()
    global _DEFAULT_RAY
    if _DEFAULT_RAY is None:
        _DEFAULT_RAY = RayExecutor()
    return _DEFAULT_RAY


_DEFAULT_RAY: RayExecutor | None = None
