"""Monitor's Keras contract, diagnose_history's inputs, and the check-log verb."""
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import fitdoctor  # noqa: E402
from fitdoctor.cli import main  # noqa: E402


def _income():
    ex = fitdoctor.load_example("income")
    ok = np.isfinite(ex.X).all(axis=1)
    X = ex.X[ok]
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32), ex.y[ok].astype(np.float32)


def _fit_income(opt, epochs, callbacks):
    X, y = _income()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=opt, loss="mse")
    return model.fit(X, y, epochs=epochs, verbose=0, callbacks=callbacks), X, y


def test_params_stored_verbatim_and_state_reset_between_fits():
    X, y = _income()
    mon = fitdoctor.Monitor(patience=3, X_sample=X, y_sample=y, sample_every=2)
    assert mon.patience == 3 and mon.sample_every == 2 and mon.X_sample is X
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(X, y, epochs=6, verbose=0, callbacks=[mon])
    assert len(mon.history_.loss) == 6
    model.fit(X, y, epochs=4, verbose=0, callbacks=[mon])
    assert len(mon.history_.loss) == 4  # reset in on_train_begin
    assert all(isinstance(f, fitdoctor.Finding) for f in mon.findings_)
    assert mon.report_.findings == mon.findings_


def test_missing_metric_warns_with_available_keys():
    X, y = _income()
    mon = fitdoctor.Monitor(monitor="val_mae")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    with pytest.warns(UserWarning, match="Available metrics are: .*loss"):
        model.fit(X, y, epochs=2, verbose=0, callbacks=[mon])


def test_monitor_and_diagnose_history_agree_on_adam_large_target():
    mon = fitdoctor.Monitor()
    hist, X, y = _fit_income(keras.optimizers.Adam(0.01), 30, [mon])
    # curve only, no data: the Monitor still runs the curve rules (loss >= 10x var y needs y)
    assert mon.history_.samples == []
    rep = fitdoctor.diagnose_history(hist, y=y)
    f = rep.get("adam-large-target")[0]
    assert f.evidence["epochs_needed"] > 1e5
    assert rep.config["optimizer"] == "adam" and rep.config["learning_rate"] == pytest.approx(0.01)
    # the same curve as a dict, a list and a DataFrame gives the same finding
    import pandas as pd

    for form in (hist.history, hist.history["loss"], pd.DataFrame(hist.history)):
        r = fitdoctor.diagnose_history(form, y=y, optimizer="adam", learning_rate=0.01)
        assert r.get("adam-large-target")[0].evidence["epochs_needed"] == pytest.approx(f.evidence["epochs_needed"])


def test_sgd_on_income_is_not_adam_large_target():
    hist, X, y = _fit_income(keras.optimizers.SGD(0.01), 30, [])
    rep = fitdoctor.diagnose_history(hist, X=X, y=y)
    assert "adam-large-target" not in rep.names


def test_check_log_reads_a_csvlogger_file(tmp_path, capsys):
    log = tmp_path / "train.log"
    _fit_income(keras.optimizers.Adam(0.01), 25, [keras.callbacks.CSVLogger(str(log))])
    data = tmp_path / "income.csv"
    X, y = _income()
    import pandas as pd

    pd.DataFrame({"age": X[:, 0], "experience": X[:, 1], "income": y}).to_csv(data, index=False)
    code = main(["check-log", str(log), "--data", str(data), "--target", "income", "--optimizer", "adam",
                 "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert "adam-large-target" in [f["name"] for f in out["findings"]]
    assert main(["check-log", str(tmp_path / "missing.log")]) == 2


def test_check_log_healthy_curve_exits_0(tmp_path, capsys):
    log = tmp_path / "ok.csv"
    losses = 1.0 + 9.0 * np.exp(-np.arange(60) / 5.0)  # converged long before the end
    log.write_text("epoch,loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(losses)))
    assert main(["check-log", str(log), "--target-var", "10"]) == 0
    assert "All checks passed" in capsys.readouterr().out
