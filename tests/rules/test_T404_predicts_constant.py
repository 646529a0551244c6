import numpy as np

from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("predicts-constant")


def test_softmax_on_one_unit_is_constant():
    s = firing("predicts-constant")
    [f] = RULE.detect(s.context())
    assert np.isclose(f.evidence["loss_floor"], np.mean((s.y - 1) ** 2))
    # and the model really does predict 1.0 everywhere
    pred = s.model().predict(s.X[:20].astype("float32"), verbose=0)
    assert np.allclose(pred, 1.0)


def test_quiet_for_a_linear_output():
    assert RULE.detect(healthy("predicts-constant").context()) == []
