from fitdoctor.rules import get_rule
from fitdoctor.examples import load_example
from rule_fixtures import Scenario, firing, healthy

RULE = get_rule("lr-too-low")


def test_tiny_adam_learning_rate_fires_with_a_rate_that_fits():
    [f] = RULE.detect(firing("lr-too-low").context())
    assert f.evidence["steps_needed"] > f.evidence["steps_given"]
    assert f.evidence["learning_rate"] < f.evidence["learning_rate_needed"] < f.evidence["learning_rate_ceiling"]


def test_seed_000_example_2_at_0_001_fires_but_0_01_does_not():
    ex = load_example("learning-rate")
    cfg = {"optimizer": "adam", "epochs": 100, "batch_size": 32}
    assert [f.name for f in RULE.detect(Scenario(ex.X, ex.y, config={**cfg, "learning_rate": 0.001}).context())] == ["lr-too-low"]
    assert RULE.detect(Scenario(ex.X, ex.y, config={**cfg, "learning_rate": 0.01}).context()) == []


def test_quiet_with_enough_steps():
    assert RULE.detect(healthy("lr-too-low").context()) == []
