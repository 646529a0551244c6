import numpy as np

from fitdoctor.rules import get_rule
from fitdoctor.examples import load_example
from rule_fixtures import Scenario, firing, healthy

RULE = get_rule("lr-too-high")


def test_sgd_above_two_over_lambda_max_fires():
    s = firing("lr-too-high")
    [f] = RULE.detect(s.context())
    A = np.c_[s.X, np.ones(len(s.X))]
    lam = np.linalg.eigvalsh(2 * A.T @ A / len(A)).max()
    assert np.isclose(f.evidence["lr_max_stable"], 2 / lam)


def test_seed_000_example_2_lr_0_1_is_not_too_high():
    """Measured: Adam at 0.1 ends at 0.734 against the optimum 0.726 (better than 0.01)."""
    ex = load_example("learning-rate")
    assert RULE.detect(Scenario(ex.X, ex.y, config={"optimizer": "adam", "learning_rate": 0.1, "epochs": 100}).context()) == []


def test_adam_steps_larger_than_the_weights_fire():
    [f] = RULE.detect(healthy("lr-too-high").with_(config={"optimizer": "adam", "learning_rate": 10.0}).context())
    assert f.severity == "warning" and f.evidence["ratio"] > 1


def test_quiet_below_the_limit():
    assert RULE.detect(healthy("lr-too-high").with_(config={"optimizer": "sgd", "learning_rate": 0.1}).context()) == []
