from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("skewed-target")


def test_fires_on_lognormal_targets_and_reports_log_skew():
    [f] = RULE.detect(firing("skewed-target").context())
    assert f.evidence["skewness"] > 1
    assert abs(f.evidence["skewness_after_log"]) < 0.5


def test_quiet_with_a_robust_loss_and_on_symmetric_targets():
    assert RULE.detect(firing("skewed-target").with_(config={"loss": "huber"}).context()) == []
    assert RULE.detect(healthy("skewed-target").context()) == []
