from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("outliers")


def test_fires_on_three_far_targets_with_their_share_of_squared_error():
    [f] = RULE.detect(firing("outliers").context())
    assert f.evidence["rows"] == [5, 50, 150]
    assert f.evidence["share_of_squared_deviation"] > 0.5
    assert f.fix.intervention == "huber_loss"


def test_quiet_on_gaussian_targets():
    assert RULE.detect(healthy("outliers").context()) == []
