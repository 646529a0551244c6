"""A persistent cache of the engine's compiled programs, shared between processes.

The vectorised engine's programs train a grid in milliseconds; what a new grid costs is tracing
and XLA compilation (a tenth to a third of a second each). JAX can keep compiled executables on
disk, keyed by the program and the compiler, so that the next process that builds the same
program (the same model architecture, grid shape and data shape) loads it instead of compiling.

The command line turns the cache on for the verbs that train (``check``, ``compare``, ``lr-find``,
``fix``, ``demo``); the library leaves JAX's global configuration alone unless you call
:func:`enable_compilation_cache` yourself. Where it lives:

* ``$FITDOCTOR_CACHE_DIR`` when set (``off``, ``0``, ``false`` or ``none`` turn the cache off);
* else ``$XDG_CACHE_HOME/fitdoctor/xla``, else ``~/.cache/fitdoctor/xla``.

A JAX compilation cache configured by the user (``jax_compilation_cache_dir``) is kept as it is.
The cache holds compiled programs only, never data or weights; deleting it is always safe.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

#: values of FITDOCTOR_CACHE_DIR that turn the cache off
_OFF = {"", "0", "off", "false", "no", "none"}
#: programs that compile faster than this are not worth a file (JAX's own default is 1 s,
#: which would exclude every program of the engine)
MIN_COMPILE_SECONDS = 0.05


def default_cache_dir() -> Path | None:
    """Where the cache lives (None when ``FITDOCTOR_CACHE_DIR`` turns it off)."""
    env = os.environ.get("FITDOCTOR_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fitdoctor" / "xla"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> str | None:
    """Keep compiled JAX programs in ``path`` (default: :func:`default_cache_dir`) across processes.

    Returns the directory in use, or None when the cache is off, the backend is not JAX, or the
    directory cannot be created. Never raises: a cache is an optimisation, not a requirement.
    """
    keras = sys.modules.get("keras")
    backend = keras.backend.backend() if keras is not None else os.environ.get("KERAS_BACKEND", "jax")
    if backend != "jax":
        return None
    try:
        import jax
    except ImportError:
        return None
    configured = jax.config.values.get("jax_compilation_cache_dir")
    if configured:  # the user's own cache wins
        return str(configured)
    target = Path(path).expanduser() if path is not None else default_cache_dir()
    if target is None:
        return None
    try:
        target.mkdir(parents=True, exist_ok=True)
        if not os.access(target, os.W_OK):
            return None
        jax.config.update("jax_compilation_cache_dir", str(target))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
        # JAX decides once per process whether to use a cache, at its first compilation: let a
        # process that compiled something before this call decide again
        from jax.experimental.compilation_cache import compilation_cache

        compilation_cache.reset_cache()
    except Exception:  # an unwritable home, an old JAX without the options
        return None
    return str(target)
