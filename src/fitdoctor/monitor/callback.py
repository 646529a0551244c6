"""Monitor: a Keras callback that diagnoses the training it watches."""
from __future__ import annotations

import math
import warnings

import keras
import numpy as np

from ..model.inspect import optimizer_name_of, canonical_loss, describe_model
from ..model.multi_io import is_multi_io, layout_of
from ..signals.trace import Sample, Trace

#: rows of X_sample used for the gradient / activation statistics
SAMPLE_ROWS = 256
#: a sample rows' prediction within this fraction of the activation's range from a bound is saturated
SATURATION_MARGIN = 1e-3
#: initial weights larger than this (in absolute value) come from no standard initialiser: Glorot
#: uniform's limit sqrt(6 / (fan_in + fan_out)) is at most sqrt(6) ~ 2.45, He normal truncated at 2
#: sigma at most 2 sqrt(2) ~ 2.83
SANE_WEIGHT = 3.0


def _keras_print(message: str) -> None:
    """Print the way Keras's own callbacks do (``EarlyStopping``, ``ReduceLROnPlateau`` with verbose=1).

    Keras writes to stdout when interactive logging is on (the default) and to absl's log when a
    user turned it off with ``keras.utils.disable_interactive_logging()``. Its printer is private
    (``keras.src.utils.io_utils.print_msg``), so this follows the same public switch,
    ``keras.utils.is_interactive_logging_enabled()``, which both backends provide.
    """
    if keras.utils.is_interactive_logging_enabled():
        import sys

        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    else:
        from absl import logging as absl_logging

        absl_logging.info(message)


class Monitor(keras.callbacks.Callback):
    """Diagnose a training run while it happens (Keras callback).

    Records per epoch the loss, validation loss and learning rate, and every ``sample_every``
    steps, on a fixed small sample batch (``X_sample``/``y_sample``), per-layer gradient norms,
    update-to-weight ratios, dead-ReLU fractions, saturation of a bounded output activation and
    the spread of the predictions. At the end of training it runs every rule's
    ``detect_training`` on that trace.

    Parameters (keyword-only, stored as given)
    ------------------------------------------
    monitor : str, default "loss"
        The quantity whose curve is diagnosed (``val_<monitor>`` is used for overfitting).
    mode : "min"
        Only minimised losses are diagnosed.
    min_delta, patience : float, int
        A validation loss must rise above its minimum by more than ``min_delta`` (and 10%) for
        ``patience`` epochs to count as overfitting.
    verbose : 0 or 1
        1 prints the findings through the text reporter when training ends.
    X_sample, y_sample : array-like or None
        Rows to measure gradients and predictions on (the first 256 finite rows are used), and
        from which the reference losses (least squares, nonlinear) are computed when
        ``reference`` is not given. Without them only the loss curves are diagnosed.
    reference : fitdoctor.Reference or None
        Precomputed reference losses of the training data.
    sample_every : int or None
        Steps between two samples; None picks about 100 samples per run (at least 4 an epoch).
    stop_on_nan, restore_on_nan : bool
        On a non-finite loss, stop training, and put back the weights of the last epoch that
        ended with a finite loss.
    select, ignore : rule codes, prefixes or names.

    Attributes
    ----------
    findings_ : list of fitdoctor.Finding
    history_ : fitdoctor.monitor.Trace
    report_ : fitdoctor.Report
    """

    async_safe = True  # on_train_batch_end only stores the batch's logs

    def __init__(self, *, monitor="loss", mode="min", min_delta=0.0, patience=10, verbose=0, X_sample=None,
                 y_sample=None, reference=None, sample_every=None, stop_on_nan=True, restore_on_nan=True,
                 select=None, ignore=None):
        super().__init__()
        self.monitor = monitor
        self.mode = mode
        self.min_delta = min_delta
        self.patience = patience
        self.verbose = verbose
        self.X_sample = X_sample
        self.y_sample = y_sample
        self.reference = reference
        self.sample_every = sample_every
        self.stop_on_nan = stop_on_nan
        self.restore_on_nan = restore_on_nan
        self.select = select
        self.ignore = ignore
        self._reference_cache = None

    # -- Keras hooks ----------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if self.mode not in ("min", "auto"):
            raise ValueError(f"Monitor diagnoses minimised losses only: mode must be 'min'. Received mode={self.mode!r}")
        model = self.model
        params = self.params or {}
        opt = getattr(model, "optimizer", None)
        try:
            info = describe_model(model)
            is_linear, out_act = info.is_linear, info.output_activation
        except Exception:
            is_linear, out_act = None, None
        self.findings_ = []
        self.report_ = None
        self._warned = False
        self._epoch = 0
        self._raw = []          # per step: the running-mean loss Keras logs at the batch's end
        self._epoch_start = 0   # index into _raw where the current epoch began
        self._good_weights = None
        self._good_epoch = None
        self._prev = None       # (step, weights by layer) of the previous sample
        spe = params.get("steps")
        epochs = params.get("epochs")
        Xs, ys, data_bad = self._sample_rows()
        reference = self._get_reference(nonlinear=bool(is_linear))
        yv = ym = None
        if self.y_sample is not None:
            yall = np.asarray(self._flat_samples()[1], dtype=np.float64).reshape(-1)
            yall = yall[np.isfinite(yall)]
            if len(yall):
                yv, ym = float(np.var(yall)), float(np.mean(yall))
        weights = [np.asarray(w) for w in model.get_weights()]
        wmax = max((float(np.nanmax(np.abs(w))) for w in weights if w.size), default=0.0)
        self.history_ = Trace(
            loss=[], val_loss=[], lr=[], steps_per_epoch=spe, epochs_planned=epochs,
            optimizer=optimizer_name_of(opt) if opt is not None else None,
            learning_rate=_current_lr(opt), loss_name=canonical_loss(getattr(model, "loss", None)),
            reference=reference, y_var=yv if yv is not None else (reference.mean_mse if reference else None),
            y_mean=ym, is_linear=is_linear, output_activation=out_act, monitor=self.monitor,
            patience=int(self.patience), min_delta=float(self.min_delta), initial_weight_max=wmax,
            step_loss=[],
        )
        if data_bad:
            self.history_.nonfinite_inputs_evidence = data_bad
        self.history_.inputs_checked = (Xs is not None or is_multi_io(model)) and self.y_sample is not None
        every = self.sample_every
        if every is None and spe:
            every = max(1, spe // 4, (spe * (epochs or 1)) // 100)
        self._every = int(every) if every else 0
        self._sampler = None
        if Xs is not None and len(Xs):
            try:
                self._sampler = _Sampler(model, Xs, ys)
            except Exception as exc:  # a model we cannot probe: curves only
                warnings.warn(f"fitdoctor.Monitor cannot sample gradients of this model ({type(exc).__name__}: {exc}); "
                              "only the loss curves are diagnosed", stacklevel=2)
        self._take_sample(0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = len(self._raw)

    def on_train_batch_begin(self, batch, logs=None):
        if not self._every or self._sampler is None:
            return
        step = self._global_step(batch)
        if step > 0 and step % self._every == 0:
            self._take_sample(step)

    def on_train_batch_end(self, batch, logs=None):
        self._raw.append((logs or {}).get(self.monitor))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        tr = self.history_
        value = logs.get(self.monitor)
        if value is None:
            if not self._warned:
                warnings.warn(f"fitdoctor.Monitor: the metric {self.monitor!r} is not available. "
                              f"Available metrics are: {','.join(sorted(logs))}", stacklevel=2)
                self._warned = True
            return
        value = float(value)
        tr.loss.append(value)
        val_key = "val_loss" if self.monitor == "loss" else "val_" + self.monitor
        if val_key in logs:
            tr.val_loss.append(float(logs[val_key]))
        lr = logs.get("learning_rate", logs.get("lr"))
        tr.lr.append(float(lr) if lr is not None else _current_lr(getattr(self.model, "optimizer", None)))
        tr.step_loss.extend(_batch_losses(self._raw[self._epoch_start:]))
        if math.isfinite(value):
            if self.restore_on_nan:
                self._good_weights = self.model.get_weights()
                self._good_epoch = epoch
            return
        if tr.nonfinite_epoch is None:
            self._current_recorded = True
            self._on_nonfinite(epoch)

    def on_train_end(self, logs=None):
        tr = self.history_
        if not tr.val_loss:
            tr.val_loss = None
        if tr.nonfinite_epoch is None and self._sampler is not None:
            steps = len(self._raw)
            if not tr.samples or tr.samples[-1].step != steps:
                self._take_sample(steps)
        from .history import report_from_trace, run_training_rules

        self.findings_ = run_training_rules(tr, select=self.select, ignore=self.ignore)
        self.report_ = report_from_trace(tr, self.findings_, source="monitor")
        if self.verbose:
            from ..reporting.text import render_report_text

            _keras_print("fitdoctor.Monitor:\n" + render_report_text(self.report_).rstrip("\n"))

    # -- helpers --------------------------------------------------------------------------------
    def _global_step(self, batch: int) -> int:
        spe = self.history_.steps_per_epoch
        return self._epoch * spe + batch if spe else len(self._raw)

    def _flat_samples(self):
        """X_sample and y_sample as arrays; a model with several inputs or outputs: side by side."""
        model = getattr(self, "model", None)
        if is_multi_io(model):
            layout = layout_of(model)
            X = None if self.X_sample is None else layout.flat_X(self.X_sample)
            y = None if self.y_sample is None else layout.flat_y(self.y_sample)
            return X, y
        return self.X_sample, self.y_sample

    def _sample_rows(self):
        if self.X_sample is None:
            return None, None, {}
        if is_multi_io(getattr(self, "model", None)):
            # gradient and activation samples feed the model its own inputs: not for several inputs/outputs;
            # the rows still give the references and the NaN check
            X, y = self._flat_samples()
            X = X.reshape(len(X), -1)
            y = None if y is None else np.asarray(y, dtype=np.float64).reshape(len(X), -1)
            ok = np.isfinite(X).all(axis=1) & (True if y is None else np.isfinite(y).all(axis=1))
            bad = {} if ok.all() else {
                "reason": f"{int((~ok).sum())} of {len(X)} rows of the data passed as X_sample/y_sample hold NaN or inf",
                "nonfinite_rows": [int(i) for i in np.flatnonzero(~ok)[:50]], "n_nonfinite_rows": int((~ok).sum())}
            return None, None, bad
        X = np.asarray(self.X_sample, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        y = None if self.y_sample is None else np.asarray(self.y_sample, dtype=np.float64).reshape(len(X), -1)
        ok = np.isfinite(X).reshape(len(X), -1).all(axis=1)
        if y is not None:
            ok &= np.isfinite(y).all(axis=1)
        bad = {}
        if not ok.all():
            bad = {"reason": f"{int((~ok).sum())} of {len(X)} rows of the data passed as X_sample/y_sample hold NaN or inf",
                   "nonfinite_rows": [int(i) for i in np.flatnonzero(~ok)[:50]], "n_nonfinite_rows": int((~ok).sum())}
        idx = np.flatnonzero(ok)[:SAMPLE_ROWS]
        return X[idx].astype(np.float32), (None if y is None else y[idx].astype(np.float32)), bad

    def _get_reference(self, nonlinear: bool):
        """Reference losses of X_sample/y_sample. The nonlinear reference (a cross-validated
        gradient boosting fit, seconds) is computed only for linear models, where underfit-capacity
        needs it; other models are judged against least squares, an upper bound of their optimum."""
        if self.reference is not None:
            return self.reference
        if self.X_sample is None or self.y_sample is None:
            return None
        key = (id(self.X_sample), id(self.y_sample), nonlinear)
        if self._reference_cache is None or self._reference_cache[0] != key:
            from ..reference import compute_reference

            Xf, yf = self._flat_samples()
            X = np.asarray(Xf, dtype=np.float64)
            self._reference_cache = (key, compute_reference(X.reshape(len(X), -1), np.asarray(yf, dtype=np.float64),
                                                            nonlinear=nonlinear))
        return self._reference_cache[1]

    def _take_sample(self, step: int) -> None:
        if self._sampler is None:
            return
        tr = self.history_
        try:
            s, weights = self._sampler.measure(self._epoch, step, self._prev)
        except Exception as exc:  # never break the user's training
            warnings.warn(f"fitdoctor.Monitor stopped sampling ({type(exc).__name__}: {exc})", stacklevel=2)
            self._sampler = None
            return
        self._prev = (step, weights)
        tr.samples.append(s)
        if s.loss is not None and not math.isfinite(s.loss) and tr.nonfinite_epoch is None and step > 0:
            # the weights are already non-finite: no need to wait for the epoch's end
            self._current_recorded = False
            self._on_nonfinite(self._epoch, sampled_step=step)

    def _on_nonfinite(self, epoch: int, sampled_step: int | None = None) -> None:
        tr = self.history_
        raw = _batch_means(self._raw[self._epoch_start:])
        bad = np.flatnonzero(~np.isfinite(raw))
        spe = tr.steps_per_epoch or max(len(raw), 1)
        tr.nonfinite_epoch = epoch
        tr.nonfinite_step = epoch * spe + int(bad[0]) if len(bad) else sampled_step
        tr.nonfinite_inputs = self._nonfinite_inputs()
        if self.stop_on_nan:
            self.model.stop_training = True
            tr.stopped_on_nan = True
            if self.restore_on_nan and self._good_weights is not None:
                self.model.set_weights(self._good_weights)
                tr.restored_epoch = self._good_epoch

    def _nonfinite_inputs(self) -> bool | None:
        """Did the NaN come from the data? True: the data held non-finite values, or the loss jumped
        from a steady finite level to NaN in one step with sane weights; False: it grew first."""
        tr = self.history_
        if tr.nonfinite_inputs_evidence:
            return True
        losses = np.asarray(tr.step_loss + ([] if self._current_recorded else _batch_losses(self._raw[self._epoch_start:])),
                            dtype=np.float64)
        n_bad = np.flatnonzero(~np.isfinite(losses))
        before = losses[: n_bad[0]] if len(n_bad) else losses
        sane = tr.initial_weight_max is not None and tr.initial_weight_max <= SANE_WEIGHT
        var = tr.variance
        if not sane:
            return False
        if len(before) == 0:
            first = tr.samples[0] if tr.samples else None
            if first is not None and first.loss is not None and math.isfinite(first.loss):
                tr.nonfinite_inputs_evidence = {
                    "reason": "the first batch gave NaN although the initial weights are small and finite and the "
                              "finite sample rows give a finite loss: the batch held non-finite inputs or targets"}
                return True
            return None
        growth = gradient_growth_before(tr)
        level = float(np.median(before))
        jump = float(before[-1]) / max(level, 1e-300)
        steady = jump <= 10.0 and not growth and (var is None or level <= 100.0 * var or not tr.mse_comparable)
        if steady:
            tr.nonfinite_inputs_evidence = {
                "reason": f"the loss jumped from a steady {before[-1]:.4g} to NaN in one step, without growing first: "
                          "the batch held non-finite inputs or targets",
                "last_finite_batch_loss": float(before[-1]), "median_batch_loss_before": level}
            return True
        return False


def gradient_growth_before(trace) -> bool:
    from ..signals.curves import gradient_growth

    return gradient_growth(trace) is not None


def _current_lr(opt) -> float | None:
    if opt is None:
        return None
    try:
        return float(np.asarray(opt.learning_rate))
    except Exception:
        return None


def _to_float(v) -> float:
    if v is None:
        return math.nan
    try:
        return float(np.asarray(v))
    except (TypeError, ValueError):
        return math.nan


def _batch_means(raw) -> np.ndarray:
    return np.asarray([_to_float(v) for v in raw], dtype=np.float64)


def _batch_losses(raw) -> list[float]:
    """Per-batch losses from Keras' running epoch means: ``l_k = k m_k - (k-1) m_(k-1)``."""
    m = _batch_means(raw)
    if not len(m):
        return []
    k = np.arange(1, len(m) + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        s = k * m
        out = np.r_[s[:1], s[1:] - s[:-1]]
    return out.tolist()


#: jitted sample functions by architecture (see _Sampler._cached_jax_fn)
_JAX_FN_CACHE: dict = {}


class _Sampler:
    """Gradients, activations and predictions on a fixed batch, for the JAX, TensorFlow and
    PyTorch backends (gradients need one of them; activations work everywhere)."""

    def __init__(self, model, X, y):
        self.model = model
        self.X = X
        self.backend = keras.backend.backend()
        # which layer each trainable variable belongs to
        self.var_layer = {}
        for layer in _flat_layers(model):
            for v in layer.trainable_weights:
                self.var_layer.setdefault(id(v), layer.name)
        self.tvars = list(model.trainable_variables)
        self.names = [self.var_layer.get(id(v), v.path.split("/")[0]) for v in self.tvars]
        # Dense, convolution, Activation("relu") and ReLU layers (rules.model.layer_kinds)
        from ..rules.model.layer_kinds import is_relu_layer

        self.relu_layers = [l for l in _flat_layers(model) if is_relu_layer(l)]
        out_layer = next((l for l in reversed(_flat_layers(model)) if hasattr(l, "activation")), None)
        act = str(getattr(getattr(out_layer, "activation", None), "__name__", "") or "")
        from ..model.inspect import ACTIVATION_RANGE

        self.bounds = ACTIVATION_RANGE.get(act)
        if self.bounds and not all(math.isfinite(b) for b in self.bounds):
            self.bounds = None
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        self.probe = keras.Model(inputs, [l.output for l in self.relu_layers] + [model.outputs[0]])
        self.probe_index = [self._index(v) for v in self.probe.trainable_variables]
        self.ntv_index = [self._nt_index(v) for v in self.probe.non_trainable_variables]
        self.y = None if y is None else y.reshape((len(y),) + tuple(model.outputs[0].shape[1:]))
        self.y_std = None if y is None else float(np.std(y))
        self.loss_fn = _loss_function(model)
        self._jax_fn = None

    def _cached_jax_fn(self, has_y: bool):
        """The jitted sample function, shared by every model of the same architecture (one compile
        per architecture and process, not one per fit)."""
        import jax

        from ..model.inspect import architecture_signature

        try:
            key = (architecture_signature(self.model), has_y, tuple(np.shape(self.X)),
                   getattr(self.model, "loss", None).__class__.__name__, str(getattr(self.model, "loss", "")))
        except Exception:
            key = None
        if key is not None and key in _JAX_FN_CACHE:
            return _JAX_FN_CACHE[key]
        probe, pidx, nidx, loss_fn = self.probe, self.probe_index, self.ntv_index, self.loss_fn

        def f(tv_, ntv_, x_, y_):
            outs, _ = probe.stateless_call([tv_[i] for i in pidx], [ntv_[i] for i in nidx], x_, training=False)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            loss = loss_fn(y_, outs[-1]) if has_y else jax.numpy.zeros(())
            return loss, outs

        fn = jax.jit(jax.value_and_grad(f, has_aux=True)) if has_y else jax.jit(f)
        if key is not None:
            _JAX_FN_CACHE[key] = fn
            while len(_JAX_FN_CACHE) > 16:
                _JAX_FN_CACHE.pop(next(iter(_JAX_FN_CACHE)))
        return fn

    def _index(self, v):
        for i, w in enumerate(self.tvars):
            if w is v:
                return i
        raise ValueError(f"variable {v.path} not found in the model")

    def _nt_index(self, v):
        for i, w in enumerate(self.model.non_trainable_variables):
            if w is v:
                return i
        raise ValueError(f"variable {v.path} not found in the model")

    def _values(self):
        m = self.model
        state = getattr(m, "_jax_state", None)
        if self.backend == "jax" and state and not getattr(m, "_jax_state_synced", True):
            return list(state["trainable_variables"]), list(state["non_trainable_variables"] or [])
        return [v.value for v in self.tvars], [v.value for v in m.non_trainable_variables]

    def _compute(self, tv, ntv):
        """(loss, grads or None, outputs) on the sample batch."""
        x, y = self.X, self.y
        if self.backend == "jax":
            if self._jax_fn is None:
                self._jax_fn = self._cached_jax_fn(y is not None)
            if y is None:
                loss, outs = self._jax_fn(tv, ntv, x, None)
                return None, None, [np.asarray(o) for o in outs]
            (loss, outs), grads = self._jax_fn(tv, ntv, x, y)
            return float(loss), [np.asarray(g) for g in grads], [np.asarray(o) for o in outs]
        if self.backend == "tensorflow" and y is not None:
            import tensorflow as tf

            with tf.GradientTape() as tape:
                outs = self.probe(x, training=False)
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                loss = self.loss_fn(tf.constant(y), outs[-1])
            grads = tape.gradient(loss, [v.value for v in self.tvars])
            return float(loss), [np.zeros(v.shape) if g is None else np.asarray(g) for v, g in zip(self.tvars, grads)], \
                [np.asarray(o) for o in outs]
        if self.backend == "torch" and y is not None:
            import torch

            outs = self.probe(x, training=False)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            loss = self.loss_fn(torch.as_tensor(y, device=outs[-1].device), outs[-1])
            grads = torch.autograd.grad(loss, [v.value for v in self.tvars], allow_unused=True)
            return float(loss.detach().cpu()), [np.zeros(v.shape) if g is None else g.detach().cpu().numpy()
                                                for v, g in zip(self.tvars, grads)], \
                [o.detach().cpu().numpy() for o in outs]
        outs = self.probe(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        outs = [keras.ops.convert_to_numpy(o) for o in outs]
        loss = None if y is None else float(np.mean((outs[-1] - y) ** 2))
        return loss, None, outs

    def measure(self, epoch, step, prev):
        tv, ntv = self._values()
        loss, grads, outs = self._compute(tv, ntv)
        # a diverging run has huge finite weights and predictions: their squares overflow to inf,
        # which the rules read as such; numpy's overflow warnings would only clutter the user's log
        with np.errstate(over="ignore", invalid="ignore"):
            return self._summarise(epoch, step, prev, loss, grads, outs, tv)

    def _summarise(self, epoch, step, prev, loss, grads, outs, tv):
        from ..rules.model.layer_kinds import dead_unit_fraction, unit_axis

        weights = {}
        for name, w in zip(self.names, tv):
            weights.setdefault(name, []).append(np.asarray(w, dtype=np.float64).ravel())
        weights = {k: np.concatenate(v) for k, v in weights.items()}
        s = Sample(epoch=int(epoch), step=int(step), loss=loss)
        for name, w in weights.items():
            s.weight_norms[name] = float(np.linalg.norm(w))
        if grads is not None:
            gsq = {}
            for name, g in zip(self.names, grads):
                gsq[name] = gsq.get(name, 0.0) + float(np.sum(np.asarray(g, dtype=np.float64) ** 2))
            s.grad_norms = {k: math.sqrt(v) if math.isfinite(v) else math.inf for k, v in gsq.items()}
            total = sum(gsq.values())
            s.grad_norm = math.sqrt(total) if math.isfinite(total) else math.inf
        if prev is not None and step > prev[0]:
            for name, w in weights.items():
                if name in prev[1] and s.weight_norms[name] > 0:
                    s.update_ratios[name] = float(np.linalg.norm(w - prev[1][name])) / s.weight_norms[name] / (step - prev[0])
        for layer, out in zip(self.relu_layers, outs[:-1]):
            # a unit is a Dense unit or a convolution's filter, dead when <= 0 at every row and position
            s.dead_relu[layer.name] = dead_unit_fraction(out, unit_axis(layer))
            s.sample_rows = int(len(out))
        pred = np.asarray(outs[-1], dtype=np.float64).reshape(len(outs[-1]), -1)
        if np.isfinite(pred).all():
            s.pred_std = float(pred.std(axis=0).mean())
            s.pred_mean = float(pred.mean())
            if self.y_std:
                s.pred_spread = s.pred_std / self.y_std
            if self.bounds:
                lo, hi = self.bounds
                margin = SATURATION_MARGIN * (hi - lo)
                s.saturation = float(((pred <= lo + margin) | (pred >= hi - margin)).mean())
        return s, weights


def _flat_layers(model):
    out = []
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and layer.layers:
            out.extend(_flat_layers(layer))
        else:
            out.append(layer)
    return out


def _loss_function(model):
    """The compiled loss as ``f(y_true, y_pred) -> scalar`` (MSE when it cannot be read)."""
    loss = getattr(model, "loss", None)
    fn = None
    if loss is not None:
        try:
            fn = keras.losses.get(loss) if isinstance(loss, str) else loss
        except Exception:
            fn = None
    if fn is None or not callable(fn):
        fn = keras.losses.mean_squared_error

    def scalar(y_true, y_pred):
        return keras.ops.mean(fn(y_true, y_pred))

    return scalar
