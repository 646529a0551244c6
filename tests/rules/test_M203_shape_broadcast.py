from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("shape-broadcast")


def test_custom_loss_that_broadcasts_is_measured():
    [f] = RULE.detect(firing("shape-broadcast").context())
    assert f.evidence["y_shape"] == [200]
    assert f.evidence["loss_as_given"] != f.evidence["loss_aligned"]


def test_more_target_columns_than_outputs_fires():
    s = healthy("shape-broadcast")
    import numpy as np
    [f] = RULE.detect(s.with_(y=np.c_[s.y, s.y]).context())
    assert f.evidence["y_shape"] == [200, 2]


def test_quiet_for_builtin_losses_and_for_reshaped_targets():
    assert RULE.detect(healthy("shape-broadcast").context()) == []
    s = firing("shape-broadcast")
    assert RULE.detect(s.with_(y=s.y.reshape(-1, 1)).context()) == []
