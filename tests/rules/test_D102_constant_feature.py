from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("constant-feature")


def test_fires_on_a_column_of_fours():
    [f] = RULE.detect(firing("constant-feature").context())
    assert f.evidence["columns"] == ["x3"] and f.evidence["values"] == [4.0]


def test_quiet_when_every_column_varies():
    assert RULE.detect(healthy("constant-feature").context()) == []
