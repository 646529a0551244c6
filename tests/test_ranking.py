"""Findings are ranked by what the measurements prove (issue 12)."""
import numpy as np

from fitdoctor.findings import Finding, sort_findings


def _f(name, severity="error", confirmed=None, improvement=None, code="X100"):
    ev = {"probe": {"improvement": improvement}} if improvement is not None else {}
    return Finding(code=code, name=name, severity=severity, message="m", evidence=ev, confirmed=confirmed)


def test_a_loss_bounding_cause_outranks_a_confirmed_slowdown():
    found = sort_findings([_f("adam-large-target", confirmed=True, improvement=50.0, code="O301"),
                           _f("output-activation-range", code="M201")])
    assert [f.name for f in found] == ["output-activation-range", "adam-large-target"]


def test_confirmed_before_predicted_and_larger_improvement_first():
    found = sort_findings([_f("lr-too-low", severity="warning", code="O303"),
                           _f("too-few-epochs", severity="warning", confirmed=True, improvement=2.0, code="O304"),
                           _f("feature-scale", severity="warning", confirmed=True, improvement=30.0, code="D103")])
    assert [f.name for f in found] == ["feature-scale", "too-few-epochs", "lr-too-low"]


def test_sigmoid_output_on_targets_in_the_hundreds_ranks_first_and_is_confirmed():
    import keras
    from fitdoctor import diagnose

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = 180 + 60 * X[:, 0] + 20 * X[:, 1] + 5 * rng.standard_normal(200)
    y = np.clip(y, 25, 346)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="mse")
    report = diagnose(model, X, y, epochs=50, batch_size=32)
    first = report.findings[0]
    assert first.name == "output-activation-range"
    assert first.confirmed is True
    assert first.evidence["probe"]["with_fix_mse"] < first.evidence["probe"]["baseline_mse"]


def test_bad_init_needs_more_than_two_weights():
    import keras
    from fitdoctor import diagnose

    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 2))
    y = X @ np.array([1.0, -1.0])
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant([[0.001], [2.0]]))])
    model.compile(optimizer="adam", loss="mse")
    assert "bad-init" not in diagnose(model, X, y, probe=False).names
