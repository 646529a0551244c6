from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("over-regularization")


def test_strong_l2_raises_the_achievable_mse():
    [f] = RULE.detect(firing("over-regularization").context())
    assert f.evidence["l2"] == 10.0
    assert f.evidence["penalised_mse"] > 1.1 * f.evidence["least_squares_mse"]


def test_quiet_without_penalty():
    assert RULE.detect(healthy("over-regularization").context()) == []
