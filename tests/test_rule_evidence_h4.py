"""Data and optimisation rules: each states its minimum evidence, reports nothing below it, and rules whose
advice depends on the loss's kind (outliers, skewed-target -> Huber) leave a custom loss alone (issue 12)."""
import importlib
import pkgutil

import numpy as np
import pytest

from fitdoctor.rules import get_rule
from fitdoctor.rules.base import Rule
from rule_fixtures import dense_model, firing


def my_mse(y_true, y_pred):  # a loss of the user's own: fitdoctor does not know its kind
    import keras

    return keras.ops.mean(keras.ops.square(y_true - y_pred))


def _rule_classes(package):
    mod = importlib.import_module(package)
    for info in pkgutil.iter_modules(mod.__path__):
        sub = importlib.import_module(f"{package}.{info.name}")
        for obj in vars(sub).values():
            if isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule and obj.__module__ == sub.__name__:
                yield obj


@pytest.mark.parametrize("package", ["fitdoctor.rules.data", "fitdoctor.rules.optimization"])
def test_every_rule_docstring_states_its_minimum_evidence(package):
    classes = list(_rule_classes(package))
    assert len(classes) >= 5
    for cls in classes:
        doc = cls.__doc__ or ""
        what = doc.split("## What it does", 1)[1].split("## Why is this bad?", 1)[0]
        assert "Minimum evidence:" in what, cls.__name__


@pytest.mark.parametrize("name", ["outliers", "skewed-target"])
def test_loss_kind_rules_leave_a_custom_loss_alone(name):
    import keras  # noqa: F401

    scenario = firing(name)
    rule = get_rule(name)
    assert rule.detect(scenario.context())  # fires with the built-in MSE
    custom = scenario.with_(model=dense_model(n_inputs=scenario.X.shape[1], loss=my_mse))
    ctx = custom.context()
    assert ctx.config.custom_loss
    assert rule.detect(ctx) == []


def test_custom_loss_is_noted_by_diagnose_when_outliers_stay_silent():
    import keras  # noqa: F401

    from fitdoctor import diagnose

    scenario = firing("outliers")
    model = dense_model(n_inputs=scenario.X.shape[1], loss=my_mse)()
    report = diagnose(model, scenario.X, scenario.y, epochs=5, probe=False)
    assert "outliers" not in [f.name for f in report.findings]
    assert any("custom loss `my_mse`: not judged" in n for n in report.notes)


def test_ill_conditioned_needs_more_rows_than_weights():
    from fitdoctor.diagnosis import build_context

    rng = np.random.default_rng(0)
    rule = get_rule("ill-conditioned")
    X = rng.standard_normal((5, 6)) * np.array([1, 1, 1, 1, 1, 1e4])  # 5 rows, 6 weights + a bias
    y = rng.standard_normal(5)
    assert rule.detect(build_context(None, X, y, optimizer="sgd", learning_rate=0.01, epochs=10)) == []
    X = rng.standard_normal((40, 6)) * np.array([1, 1, 1, 1, 1, 1e4])  # the same scales with enough rows: fires
    y = rng.standard_normal(40)
    assert rule.detect(build_context(None, X, y, optimizer="sgd", learning_rate=0.01, epochs=10))
