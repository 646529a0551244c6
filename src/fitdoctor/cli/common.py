"""Options and helpers shared by the CLI verbs."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import InputError, UsageError

FORMATS = ("text", "json", "markdown", "html")


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", metavar="DATA", help="CSV (delimiter sniffed), Parquet or .npz (arrays X and y) file")
    p.add_argument("--target", metavar="COL", help="the column to predict (required for CSV and Parquet)")


def add_config_args(p: argparse.ArgumentParser, *, lr_help: str = "learning rate (default: the optimizer's Keras default)") -> None:
    g = p.add_argument_group("training configuration (read from --model when it is compiled)")
    g.add_argument("--model", metavar="FILE.keras", help="your Keras model; without it the seed's linear model (one Dense unit) is assumed")
    g.add_argument("--optimizer", type=optimizer_name, metavar="NAME", help="Keras optimizer name: adam, sgd, rmsprop, adagrad, ... (default: adam)")
    g.add_argument("--lr", type=positive_float, metavar="LR", help=lr_help)
    g.add_argument("--loss", type=loss_name, metavar="NAME", help="Keras loss name: mse, mae, huber, ... (default: mse)")
    g.add_argument("--epochs", type=_positive_int, metavar="N", help="epochs you train for (default: 200)")
    g.add_argument("--batch-size", type=_positive_int, metavar="N", help="batch size (default: 32)")


def add_output_args(p: argparse.ArgumentParser, formats=FORMATS) -> None:
    p.add_argument("--format", choices=formats, default="text", help="output format (default: text)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, received {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, received {text!r}")
    return v


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _positive_int(text)


def seed_int(text: str) -> int:
    """argparse type: a random seed, a whole number from 0 to 2**32 - 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 4294967295, received {text!r}") from None
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 4294967295, received {text!r}")
    return v


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (learning rates, variances)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number above 0 (e.g. 0.01), received {text!r}") from None
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number above 0 (e.g. 0.01), received {text!r}")
    return v


def optimizer_name(text: str) -> str:
    """argparse type: a Keras optimizer name fitdoctor knows (adam, sgd, rmsprop, ...)."""
    from ..model.inspect import DEFAULT_LR

    name = text.strip().lower()
    if name not in DEFAULT_LR:
        raise argparse.ArgumentTypeError(f"unknown optimizer {text!r}: choose from {', '.join(sorted(DEFAULT_LR))}")
    return name


def loss_name(text: str) -> str:
    """argparse type: a Keras loss name (mse, mae, huber, ...)."""
    from ..model.inspect import BUILTIN_LOSSES, canonical_loss

    if canonical_loss(text.strip()) not in BUILTIN_LOSSES:
        raise argparse.ArgumentTypeError(f"unknown loss {text!r}: choose from {', '.join(sorted(BUILTIN_LOSSES))}")
    return text.strip()


def check_output_paths(args) -> None:
    """``-o``/``--output`` must not be an input of the command (DATA, --model, LOG, --data)."""
    from ..safe_io import refuse_inputs

    out = getattr(args, "output", None)
    if not out:
        return
    inputs = [getattr(args, name, None) for name in ("data", "model", "log")]
    refuse_inputs(out, inputs, option="--output")
    if args.command != "fix" and os.path.isdir(out):
        raise InputError(f"--output {out} is a folder: give a file name")


def skip_tensorflow() -> None:
    """Keep TensorFlow unloaded on the JAX and PyTorch backends.

    Keras imports TensorFlow whenever it is installed, to seed it and to serialise layer configs,
    even on a backend that never runs it: that costs ~2 s per command (40% of a ``check``) and
    prints TensorFlow's start-up log lines on stderr. The command line owns its process, so it
    tells Keras that TensorFlow is absent; loading a model that needs it undoes this.
    """
    if os.environ.get("KERAS_BACKEND", "jax") == "tensorflow" or "tensorflow" in sys.modules:
        return
    try:
        from keras.src.utils import module_utils

        if module_utils.tensorflow._available is None:
            module_utils.tensorflow._available = False
    except (ImportError, AttributeError):  # another Keras layout: nothing to skip
        pass


def _unskip_tensorflow() -> bool:
    """Undo :func:`skip_tensorflow`; True when it had taken effect."""
    try:
        from keras.src.utils import module_utils
    except ImportError:
        return False
    if module_utils.tensorflow._available is False and module_utils.tensorflow.module is None:
        module_utils.tensorflow._available = None
        return True
    return False


def _compile_config(path: str) -> dict:
    """The ``compile_config`` a ``.keras`` file holds ({} when it holds none)."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("config.json")).get("compile_config") or {}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}


def _load_without_loss(keras, path: str, notes: list | None):
    """Load a model whose loss Keras cannot find (an unregistered function or Loss subclass).

    The model is loaded uncompiled and compiled again with its own optimizer (every setting the file
    holds) and the mean squared error in place of the loss; ``notes`` says so.
    """
    model = keras.saving.load_model(path, compile=False)
    cfg = _compile_config(path)
    loss = cfg.get("loss")
    loss_name = (loss.get("config") if isinstance(loss, dict) and isinstance(loss.get("config"), str)
                 else (loss or {}).get("class_name", "?") if isinstance(loss, dict) else str(loss))
    optimizer = "adam"
    if cfg.get("optimizer"):
        try:
            optimizer = keras.optimizers.deserialize(cfg["optimizer"])
        except Exception:  # an unregistered optimizer or schedule: Keras's default Adam, said below
            optimizer = None
    model.compile(optimizer=optimizer or "adam", loss="mse")
    if notes is not None:
        said = "its optimizer settings kept" if optimizer is not None else "its optimizer could not be read either: Adam assumed"
        notes.append(f"{path} was compiled with loss {loss_name!r}, which Keras cannot find in this process (not "
                     f"registered with keras.saving.register_keras_serializable): loaded uncompiled, {said}, trained "
                     "with --loss (default mse) instead")
    return model


def load_model_file(path: str, notes: list | None = None):
    """Load a ``.keras`` file, or raise a one-line InputError.

    A model compiled with a loss Keras cannot locate is loaded uncompiled (its optimizer kept, the
    loss replaced by MSE or ``--loss``); ``notes``, when given, receives a line that says so.
    """
    if not os.path.exists(path):
        raise InputError(f"model file {path} does not exist: check the path given to --model")
    import zipfile

    if not path.endswith((".keras", ".h5")) or (path.endswith(".keras") and not zipfile.is_zipfile(path)):
        raise InputError(f"{path} is not a Keras model file: save your model with model.save('model.keras') and pass that file")
    import keras

    try:
        try:
            return keras.saving.load_model(path, compile=True)
        except Exception as exc:
            if "Could not locate" in str(exc) and _compile_config(path).get("loss") is not None:
                try:
                    return _load_without_loss(keras, path, notes)
                except Exception:
                    pass
            if not _unskip_tensorflow():
                raise
            return keras.saving.load_model(path, compile=True)  # a layer that needs TensorFlow
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot load {path} as a Keras model ({msg}): save it with model.save('model.keras') in Keras 3") from None


def write_output(text_or_bytes, path: str | None) -> None:
    """Write to ``path`` (parents created, atomically), or stdout when path is None."""
    if path is None:
        if isinstance(text_or_bytes, bytes):
            sys.stdout.buffer.write(text_or_bytes)
        else:
            sys.stdout.write(text_or_bytes)
        return
    from ..safe_io import atomic_write

    atomic_write(path, text_or_bytes)  # a temporary file renamed into place: never half-written


def progress(total: int | None = None, desc: str = "", *, disable: bool | None = None):
    """A tqdm progress bar on stderr, hidden when stderr is not a terminal (unless forced)."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = not sys.stderr.isatty() and not os.environ.get("FITDOCTOR_PROGRESS")
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=disable, leave=False)


def check_usage(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def write_result(result, output: str | None, *, text: str, plot_hint: str) -> None:
    """Write a compare / lr-find result where ``--output`` says, by its extension.

    ``.png``: the result's plot; ``.html``/``.htm``: its HTML page; ``.json``: its JSON; no
    ``--output`` (or another extension): ``text`` to stdout (or to that file).
    """
    ext = os.path.splitext(output)[1].lower() if output else ""
    if ext == ".png":
        from .compare import save_figure

        save_figure(result, output)
    elif ext in (".html", ".htm"):
        try:
            page = result.to_html()
        except ImportError:
            raise InputError(f"the HTML report is not available in this build: use {plot_hint}") from None
        write_output(page, output)
    elif ext == ".json":
        write_output(result.to_json() + "\n", output)
    else:
        write_output(text, output)
        return
    sys.stderr.write(f"fitdoctor: wrote {output}\n")
