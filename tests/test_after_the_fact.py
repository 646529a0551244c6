"""After a sigmoid-output training on targets in the hundreds, the Monitor and diagnose_history name it (issue 12)."""
import numpy as np


def test_monitor_and_history_name_a_sigmoid_output_that_cannot_reach_the_targets():
    import keras
    from fitdoctor import Monitor, diagnose_history

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = np.clip(180 + 60 * X[:, 0] + 20 * X[:, 1] + 5 * rng.standard_normal(200), 25, 346)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="mse")
    mon = Monitor(X_sample=X, y_sample=y)
    history = model.fit(X, y, epochs=10, batch_size=32, verbose=0, callbacks=[mon])
    assert "output-activation-range" in [f.name for f in mon.findings_]
    report = diagnose_history(history, y=y)
    assert report.findings and report.findings[0].name == "output-activation-range"
    assert report.findings[0].evidence["final_loss"] > report.findings[0].evidence["target_var"]


def test_a_healthy_linear_run_is_not_blamed_on_its_output():
    from fitdoctor import diagnose_history

    rng = np.random.default_rng(1)
    y = rng.uniform(0.1, 0.9, 100)
    losses = list(np.geomspace(0.05, 0.001, 30))
    report = diagnose_history({"loss": losses}, y=y)
    assert "output-activation-range" not in report.names


def test_check_log_with_data_reports_a_final_loss_above_the_variance(tmp_path, capsys):
    """The curve of a sigmoid output on targets in the hundreds, read back by check-log --data."""
    import json

    import keras
    import pandas as pd

    from fitdoctor.cli import main

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = np.clip(180 + 60 * X[:, 0] + 20 * X[:, 1] + 5 * rng.standard_normal(200), 25, 346)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="mse")
    log = tmp_path / "train.log"
    model.fit(X, y, epochs=8, batch_size=32, verbose=0, callbacks=[keras.callbacks.CSVLogger(str(log))])
    data = tmp_path / "data.csv"
    pd.DataFrame({**{f"x{i}": X[:, i] for i in range(4)}, "y": y}).to_csv(data, index=False)
    code = main(["check-log", str(log), "--data", str(data), "--target", "y", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    found = [f for f in out["findings"] if f["name"] == "predicts-constant"]
    assert found and found[0]["evidence"]["loss_over_var_y"] > 1.0


def test_a_curve_below_the_variance_is_not_called_constant():
    from fitdoctor import diagnose_history

    rng = np.random.default_rng(2)
    y = rng.standard_normal(100)
    report = diagnose_history({"loss": [1.2, 0.9, 0.7, 0.6, 0.55, 0.52, 0.5]}, y=y)
    assert "predicts-constant" not in report.names


def test_a_crawl_over_three_epochs_is_not_enough_evidence_over_five_it_is():
    """Issue 12 item 5: a trend needs the minimum the rule's docstring states (5 finite epochs for a crawl):
    the same straight-line crawl, far above var(y), says nothing after 3 or 4 epochs."""
    from fitdoctor import diagnose_history
    from fitdoctor.signals.curves import MIN_TAIL

    rng = np.random.default_rng(0)
    y = 50 + 10 * rng.standard_normal(200)  # var(y) ~ 100, mean 50: Adam at 1e-3 crawls towards it

    def names(n):
        crawl = list(np.linspace(2600, 2500, n))
        return diagnose_history({"loss": crawl}, y=y, optimizer="adam", learning_rate=1e-3).names

    assert MIN_TAIL == 5
    assert names(3) == [] and names(4) == []
    assert "adam-large-target" in names(5) and "adam-large-target" in names(20)


def test_every_data_and_optimization_rule_states_its_minimum_evidence():
    from fitdoctor.rules import RULES

    missing = [r.name for r in RULES if r.code[0] in "DO" and "Minimum evidence:" not in (type(r).__doc__ or "")]
    assert missing == []
