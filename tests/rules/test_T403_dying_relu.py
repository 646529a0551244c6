from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("dying-relu")


def test_very_negative_biases_kill_every_unit_before_training():
    [f] = RULE.detect(firing("dying-relu").context())
    assert f.evidence["dead_fraction_by_layer"] == {"hidden_0": 1.0}


def test_quiet_with_default_initialisation():
    assert RULE.detect(healthy("dying-relu").context()) == []
