import numpy as np

from fitdoctor.rules import get_rule
from rule_fixtures import dense_model, firing, healthy

RULE = get_rule("output-activation-range")


def test_sigmoid_on_incomes_reports_the_loss_floor():
    s = firing("output-activation-range")
    [f] = RULE.detect(s.context())
    assert f.evidence["activation"] == "sigmoid" and f.evidence["fraction_outside"] == 1.0
    # nothing in [0, 1] gets closer than clipping the targets to 1
    assert np.isclose(f.evidence["mse_floor"], np.mean((s.y - 1.0) ** 2))


def test_relu_output_with_negative_targets_fires():
    s = healthy("output-activation-range").with_(model=dense_model(out_activation="relu"))
    [f] = RULE.detect(s.context())
    assert 0.3 < f.evidence["fraction_outside"] < 0.7


def test_quiet_for_a_linear_output_and_for_a_sigmoid_on_targets_in_0_1():
    assert RULE.detect(healthy("output-activation-range").context()) == []
    s = healthy("output-activation-range")
    y01 = (s.y - s.y.min()) / (s.y.max() - s.y.min())
    assert RULE.detect(s.with_(y=y01, model=dense_model(out_activation="sigmoid")).context()) == []
