
from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("wrong-loss")


def test_crossentropy_on_continuous_targets_fires():
    [f] = RULE.detect(firing("wrong-loss").context())
    assert f.evidence["loss"] == "binary_crossentropy" and f.evidence["distinct_targets"] == 200


def test_quiet_for_mse_and_for_crossentropy_on_0_1_targets():
    assert RULE.detect(healthy("wrong-loss").context()) == []
    s = healthy("wrong-loss")
    assert RULE.detect(s.with_(y=(s.y > 0).astype(float), config={"loss": "binary_crossentropy"}).context()) == []
