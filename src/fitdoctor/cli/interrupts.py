"""Ctrl-C on the command line: one line, exit 130, no traceback, nothing half-written.

Three phases, one SIGINT handler each:

* **import** (a ``fitdoctor`` process, from the first line of :mod:`fitdoctor.cli` until ``main``
  starts): nothing has been written, so the handler prints "interrupted; nothing written" and
  ends the process with 130 at once (no traceback out of a half-finished import).
* **run** (inside ``main``): the handler sets :data:`fitdoctor.safe_io.CANCELLED` and raises
  KeyboardInterrupt, so ``with`` blocks remove their temporary files; ``main`` prints one line
  and returns 130. A second Ctrl-C while that cleanup runs is ignored.
* **done** (a ``fitdoctor`` process after ``main`` returned): :func:`finish` ends the process at
  once (``os._exit``), with 130 and a line saying what was written when a Ctrl-C came in the
  meantime; the interpreter's slow teardown, where Python resets its handlers, never runs.

A Ctrl-C that lands where Python drops exceptions (a gc callback) is sent again a moment later;
one that lands while result files are renamed into place waits until they all are.

Only this module's standard-library imports run before the handler is in place.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

_STATE = {"phase": "import", "written": [], "unraisablehook": None}


def is_cli_process() -> bool:
    """True when this process is the ``fitdoctor`` command (console script or ``python -m fitdoctor``)."""
    argv0 = sys.argv[0] if sys.argv else ""
    name = os.path.basename(argv0).lower()
    return name in ("fitdoctor", "fitdoctor.exe", "fitdoctor-script.py") or argv0.replace("\\", "/").endswith(
        "fitdoctor/__main__.py")


def _set(handler):
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        return signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):  # not the main thread of the main interpreter
        return None


def _exit_now(line: str) -> None:
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - a closed or broken stdout must not hide the exit
        pass
    os.write(2, f"fitdoctor: {line}\n".encode())
    os._exit(130)


def _handler(signum, frame) -> None:
    phase = _STATE["phase"]
    if phase == "run":
        from .. import safe_io

        if safe_io.holding():  # files are being renamed into place: finish that first
            safe_io.defer_interrupt()
            return
        safe_io.CANCELLED.set()
        raise KeyboardInterrupt
    if phase == "done":  # main has returned: finish() reports it
        from .. import safe_io

        safe_io.CANCELLED.set()
        return
    _exit_now("interrupted; nothing written")


def install_early() -> None:
    """In a ``fitdoctor`` process, handle Ctrl-C from now on (called first thing by :mod:`fitdoctor.cli`)."""
    if is_cli_process() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        _set(_handler)


def _unraisable(info) -> None:
    """A Ctrl-C that landed in a callback whose exceptions Python drops (a gc callback, ``__del__``):
    no "Exception ignored" traceback; the signal is sent again a moment later, from a helper thread,
    to land in ordinary code."""
    if _STATE["phase"] == "run" and info.exc_type is not None and issubclass(info.exc_type, KeyboardInterrupt):
        try:
            _RESEND.set()
        except KeyboardInterrupt:  # another Ctrl-C right here: same answer
            _RESEND.set()
        return
    (_STATE["unraisablehook"] or sys.__unraisablehook__)(info)


_RESEND = threading.Event()


def _resender() -> None:
    """Send SIGINT again a moment after a swallowed one (a daemon thread, started once)."""
    import time

    while True:
        _RESEND.wait()
        _RESEND.clear()
        time.sleep(0.05)
        if _STATE["phase"] == "run" and not _STATE.get("stopping"):
            os.kill(os.getpid(), signal.SIGINT)


def enter_run():
    """Switch to the run phase; returns the handler to restore."""
    from .. import safe_io

    safe_io.CANCELLED.clear()
    _STATE["phase"] = "run"
    _STATE["stopping"] = False
    _STATE["written"] = []
    if sys.unraisablehook is not _unraisable:
        _STATE["unraisablehook"] = sys.unraisablehook
        sys.unraisablehook = _unraisable
    if not _STATE.get("resender"):
        _STATE["resender"] = threading.Thread(target=_resender, name="fitdoctor-sigint", daemon=True)
        _STATE["resender"].start()
    return _set(_handler)


def ignore() -> None:
    """Ignore further Ctrl-C while the interrupted run reports and exits."""
    _STATE["stopping"] = True
    _set(signal.SIG_IGN)


def exit_interrupted(line: str) -> None:
    """Print the interrupt line; a ``fitdoctor`` process then ends at once with 130 (everything
    was cleaned up; the interpreter's slow teardown could only be interrupted again)."""
    sys.stderr.write(f"fitdoctor: {line}\n")
    try:
        sys.stderr.flush()
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - a closed stdout must not hide the exit code
        pass
    if is_cli_process():
        os._exit(130)


def leave_run(previous, written: list[str]) -> None:
    """After ``main``: in a fitdoctor process stay in charge until exit; else restore ``previous``."""
    _STATE["written"] = list(written)
    if sys.unraisablehook is _unraisable and _STATE["unraisablehook"] is not None:
        sys.unraisablehook = _STATE["unraisablehook"]
    if is_cli_process():
        _STATE["phase"] = "done"
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            _set(_handler)
    else:
        _STATE["phase"] = "import"
        if previous is not None:
            _set(previous)


def finish(code: int) -> int:
    """End a ``fitdoctor`` process now with ``code``: the interpreter's teardown (JAX's threads) takes
    long, and a Ctrl-C landing there, after Python reset its handlers, would kill the process
    without a word. Elsewhere (``main`` called from Python) return ``code``."""
    if is_cli_process():
        from .. import safe_io

        _noop()  # a Python call: a Ctrl-C already caught by the C handler runs its handler here
        _set(signal.SIG_IGN)
        if safe_io.CANCELLED.is_set() and code != 130:
            written = _STATE["written"]
            sys.stderr.write("fitdoctor: interrupted; " + (f"wrote {', '.join(written)} completely before stopping"
                                                           if written else "nothing written") + "\n")
            code = 130
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - e.g. a closed pipe: the exit code still matters
            pass
        os._exit(code)
    return code


def _noop() -> None:
    return None


def message(state: dict, written: list[str]) -> str:
    """The one line printed on Ctrl-C, true to what is on disk."""
    if written:
        return f"interrupted; wrote {', '.join(written)} completely before stopping"
    out = state.get("output")
    if out and state.get("output_existed"):
        return f"interrupted; {out} unchanged"
    return "interrupted; nothing written"
