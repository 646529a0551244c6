"""Conformance matrix (issue 11): every kind of model, body, loss, target shape and optimizer runs
through diagnose, compare, find_lr, repair (with a save/load round trip in a fresh process),
the Monitor inside model.fit and ``fitdoctor check --model``, leaves the user's model unchanged,
and repairs the faulty twin (targets x 1e4 + 1e4) to <= 1.1x the healthy twin's training MSE.

A covering subset of the full product (4 x 5 x 4 x 3 x 2 = 480): 64 seeded combinations in which
every value of every factor appears at least 3 times. Functional models with two inputs or two
outputs take X as a list of arrays and y as a list (one per output); the experiments train them as
one flat model (fitdoctor.model.multi_io) and the repaired model has the user's inputs and outputs.
"""
import itertools
import os
import random
import subprocess
import sys

import numpy as np
import pytest

import keras

import conformance_models as cm
import fitdoctor

N_CASES = 64
EPOCHS = 20
FAULTY_SCALE = 1e4


def _cases():
    product = list(itertools.product(cm.MODELS, cm.BODIES, cm.LOSSES, cm.Y_SHAPES, cm.OPTIMIZERS))
    return random.Random(11).sample(product, N_CASES)


def test_the_covering_sample_holds_every_value_of_every_factor_three_times():
    """The sample has >= 60 distinct combinations, each factor's every value at least 3 times."""
    factors = (cm.MODELS, cm.BODIES, cm.LOSSES, cm.Y_SHAPES, cm.OPTIMIZERS)
    cases = _cases()
    assert len(set(cases)) == len(cases) >= 60
    for i, factor in enumerate(factors):
        counts = {v: sum(c[i] == v for c in cases) for v in factor}
        assert min(counts.values()) >= 3, (factor, counts)


def _snapshot(model):
    """Weights, optimizer variables and compile settings of the user's model."""
    weights = [np.array(v.numpy()) for v in model.weights]
    opt = model.optimizer
    opt_vars = [np.array(v.numpy()) for v in getattr(opt, "variables", [])]
    return weights, opt_vars, keras.optimizers.serialize(opt), model.loss


def _assert_unchanged(model, before):
    weights, opt_vars, opt_cfg, loss = _snapshot(model)
    for a, b in zip(before[0], weights):
        np.testing.assert_array_equal(a, b)
    assert len(before[1]) == len(opt_vars)
    for a, b in zip(before[1], opt_vars):
        np.testing.assert_array_equal(a, b)
    assert opt_cfg == before[2] and loss is before[3]


#: a fresh Python process without fitdoctor: for each request line (JSON: model, X, out, kind) it loads the
#: saved model with plain Keras, predicts and answers one line ("ok" or the error); started once per module
_LOADER = """
import json, os, sys, traceback
os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, sys.argv[1])
import numpy as np, keras
import conformance_models  # the user's model class (registered), never the losses
for line in sys.stdin:
    req = json.loads(line)
    try:
        model = keras.saving.load_model(req["model"])
        X = np.load(req["X"])
        pred = model.predict(conformance_models.model_inputs(req["kind"], X), verbose=0)
        np.save(req["out"], conformance_models.side_by_side(pred, len(X)))
        answer = "fitdoctor loaded" if "fitdoctor" in sys.modules else "ok"
    except Exception:
        answer = "error: " + traceback.format_exc()[-1500:].replace("\\n", " | ")
    print(answer, flush=True)
"""


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory):
    """``reload_predict(path, X, kind)``: predictions of ``path`` loaded in a fresh process without fitdoctor."""
    import json

    log = tmp_path_factory.mktemp("loader") / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-u", "-c", _LOADER, os.path.dirname(__file__)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)

    def reload_predict(path, X, where, kind):
        xp, out = str(where / "X.npy"), str(where / "pred.npy")
        np.save(xp, np.asarray(X, np.float32))
        proc.stdin.write(json.dumps({"model": str(path), "X": xp, "out": out, "kind": kind}) + "\n")
        proc.stdin.flush()
        answer = proc.stdout.readline().strip()
        assert answer == "ok", answer or log.read_text()[-2000:]
        return np.load(out)

    yield reload_predict
    proc.stdin.close()
    proc.wait(timeout=60)


def _check_cli(model, kind, X, yin, tmp_path, capsys):
    """``fitdoctor check --model`` on the rows: a CSV for tables, an .npz for sequences.

    Several inputs: their columns (tables) or channels (sequences) side by side (the CLI feeds them
    in order); several outputs: every output's target columns named in ``--target`` (CSV) or as the
    .npz's ``y`` columns. A model compiled with an unregistered loss loads uncompiled, with a note.
    """
    import json

    import pandas as pd

    from fitdoctor.cli import main

    Y = cm.side_by_side(yin, len(X))
    if X.ndim == 2:
        X = cm.side_by_side(cm.model_inputs(kind, X), len(X))
        names = [f"t{j}" for j in range(Y.shape[1])]
        frame = pd.DataFrame(np.c_[X, Y], columns=[f"f{j}" for j in range(X.shape[1])] + names)
        data = tmp_path / "data.csv"
        frame.to_csv(data, index=False)
        target = ",".join(names)
    else:
        data = tmp_path / "data.npz"
        np.savez(data, X=np.concatenate(cm.model_inputs(kind, X), axis=-1) if kind == "two_inputs" else X, y=Y)
        target = "y"
    path = tmp_path / "user_model.keras"
    model.save(path)
    capsys.readouterr()
    code = main(["check", str(data), "--target", target, "--model", str(path), "--no-probe", "--format", "json"])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    report = json.loads(captured.out)
    assert report["data"]["target_name"] == (target if X.ndim == 2 or Y.shape[1] == 1 else
                                             ",".join(f"y{j}" for j in range(Y.shape[1])))
    if getattr(model.loss, "__module__", None) == "conformance_models":  # an unregistered loss
        assert any("Keras cannot find" in n for n in report["notes"]), report["notes"]


def _user_model(kind, body, loss_kind, y_shape, opt_kind):
    X, y = cm.make_data(body, y_shape)
    k = 1 if y_shape != "n3" else 3
    model = cm.make_model(kind, body, X, k, loss=cm.make_loss(loss_kind), optimizer=cm.make_optimizer(opt_kind))
    return model, X, y, k


@pytest.mark.slow  # 5-15 s a case on a quiet machine (diagnose with its probe, compare, find_lr, a fit, repair)
@pytest.mark.parametrize("kind, body, loss_kind, y_shape, opt_kind", [pytest.param(*c, id="-".join(c)) for c in _cases()])
def test_conformance(kind, body, loss_kind, y_shape, opt_kind, tmp_path, capsys, fresh_process):
    model, X, y, k = _user_model(kind, body, loss_kind, y_shape, opt_kind)
    Xin, yin = cm.model_inputs(kind, X), cm.model_targets(kind, y)
    before = _snapshot(model)
    report = fitdoctor.diagnose(model, Xin, yin, epochs=EPOCHS)
    replica = report.probe.get("replica")
    assert replica is None or replica["agrees"] is not False, replica  # the engine reproduced model.fit
    cmp = fitdoctor.compare(model, Xin, yin, epochs=EPOCHS, batch_size=32)
    assert len(cmp.results_) == 1
    healthy_mse = float(cmp.results_["final_loss"].iloc[0])
    lr = fitdoctor.find_lr(model, Xin, yin, steps=12)
    assert lr.suggestion_ > 0
    _assert_unchanged(model, before)
    # the Monitor inside the user's own fit (a fresh twin of the model: fitting changes it)
    twin, *_ = _user_model(kind, body, loss_kind, y_shape, opt_kind)
    monitor = fitdoctor.Monitor()
    twin.fit(Xin, yin, epochs=3, batch_size=32, verbose=0, callbacks=[monitor])
    assert monitor.history_ is not None and len(monitor.history_.loss) == 3
    _check_cli(model, kind, X, yin, tmp_path, capsys)
    _assert_unchanged(model, before)

    # the faulty twin: targets x 1e4 + 1e4, repaired to the healthy twin's training MSE (in its units)
    y_faulty = np.asarray(y) * FAULTY_SCALE + FAULTY_SCALE
    rep = fitdoctor.repair(model, Xin, cm.model_targets(kind, y_faulty), epochs=EPOCHS)
    _assert_unchanged(model, before)
    assert rep.after_loss / FAULTY_SCALE**2 <= 1.1 * healthy_mse, (rep.message, healthy_mse)
    paths = rep.save(tmp_path / "out")
    in_memory = cm.side_by_side(rep.model.predict(Xin, verbose=0), len(X))
    reloaded = fresh_process(paths["model"], X, tmp_path, kind)
    assert reloaded.shape == in_memory.shape
    rel = np.abs(in_memory.reshape(-1) - reloaded.reshape(-1)) / np.maximum(np.abs(in_memory.reshape(-1)), 1e-6)
    assert rel.max() <= 1e-5
