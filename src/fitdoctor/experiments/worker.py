"""The JAX worker process: ``python -m fitdoctor.experiments.worker``.

Started once by :class:`fitdoctor.experiments.executors.WorkerExecutor` with ``KERAS_BACKEND=jax``
and reused: it reads requests from stdin and writes replies to its original stdout, each message
an 8-byte length and a pickle (:func:`fitdoctor.experiments.shipping.frame`). Anything printed
while training goes to stderr, never into the replies.

Requests: ``{"op": "train", "model", "data", "specs", "seed", "engine"}`` where ``data`` is the
path of a ``.npz`` file holding ``X`` and ``y`` (loaded once per path); ``{"op": "call", "fn",
"model", "data", "value", "kwargs"}`` (``fn(model, X, y, value, **kwargs)``, a function importable
by name, whose result holds a trained ``model``); ``{"op": "ping"}``;
``{"op": "close"}``. Replies: ``{"progress": (done, total)}`` while training, then ``{"ok": True,
"results": [...]}`` or ``{"ok": False, "kind": "input"|"error", "message": ...}``.
"""
from __future__ import annotations

import os
import sys
import traceback


def skip_tensorflow() -> None:
    """Keras imports TensorFlow when it is installed, even on JAX; the worker never needs it."""
    if "tensorflow" in sys.modules:
        return
    try:
        from keras.src.utils import module_utils

        if module_utils.tensorflow._available is None:
            module_utils.tensorflow._available = False
    except (ImportError, AttributeError):
        pass


def serve(requests, replies) -> None:
    import numpy as np

    from ..errors import InputError
    from .shipping import call_packed, frame, read_frame, run_packed

    def send(obj) -> None:
        replies.write(frame(obj))
        replies.flush()

    import keras

    send({"ready": True, "backend": keras.backend.backend(), "pid": os.getpid()})
    data_cache: dict[str, tuple] = {}
    while True:
        msg = read_frame(requests)
        if msg is None or msg.get("op") == "close":
            return
        if msg.get("op") == "ping":
            send({"ok": True})
            continue
        try:
            path = msg["data"]
            if path not in data_cache:
                with np.load(path) as z:
                    data_cache.clear()  # one data set at a time: a repair sends the same rows again and again
                    data_cache[path] = (z["X"], z["y"])
            X, y = data_cache[path]
            if msg["op"] == "call":  # one function of the model, the data and a configuration (a plain fit)
                send({"ok": True, "result": call_packed(msg["fn"], msg["model"], X, y, msg["value"], msg["kwargs"])})
                continue
            results = run_packed(msg["model"], X, y, msg["specs"], seed=msg["seed"], engine=msg["engine"],
                                 callback=lambda done, total: send({"progress": (done, total)}),
                                 **msg.get("options", {}))
            send({"ok": True, "results": results})
        except InputError as exc:
            send({"ok": False, "kind": "input", "message": str(exc)})
        except Exception as exc:  # reported to the caller, which falls back to training in its own process
            send({"ok": False, "kind": "error", "message": f"{type(exc).__name__}: {str(exc)[:300]}",
                  "traceback": traceback.format_exc()[-3000:]})


def main() -> int:
    os.environ["KERAS_BACKEND"] = "jax"
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr, not into the replies
    sys.stdout = sys.stderr
    skip_tensorflow()
    serve(requests, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
