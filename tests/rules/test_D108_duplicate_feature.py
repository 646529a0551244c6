from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("duplicate-feature")


def test_fires_on_a_copied_column():
    [f] = RULE.detect(firing("duplicate-feature").context())
    assert f.evidence["pairs"] == [["x0", "x3"]]


def test_quiet_on_distinct_columns():
    assert RULE.detect(healthy("duplicate-feature").context()) == []
