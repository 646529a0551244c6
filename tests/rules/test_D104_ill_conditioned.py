from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("ill-conditioned")


def test_fires_on_a_year_like_offset_and_shows_the_gain_of_standardising():
    [f] = RULE.detect(firing("ill-conditioned").context())
    assert f.evidence["condition_number"] > 1e5
    assert f.evidence["condition_number_standardized"] < 10
    assert not f.evidence["collinear"]


def test_reports_collinearity_that_standardising_cannot_fix():
    s = healthy("ill-conditioned")
    import numpy as np
    X = np.c_[s.X, s.X[:, 0] + 1e-3 * s.X[:, 1]]
    [f] = RULE.detect(s.with_(X=X).context())
    assert f.evidence["collinear"] and not f.fix.safe


def test_quiet_on_standardised_inputs():
    assert RULE.detect(healthy("ill-conditioned").context()) == []
