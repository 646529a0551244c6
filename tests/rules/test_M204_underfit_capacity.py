from fitdoctor.rules import get_rule
from rule_fixtures import dense_model, firing, healthy

RULE = get_rule("underfit-capacity")


def test_linear_model_on_a_sine_fires_with_both_references():
    [f] = RULE.detect(firing("underfit-capacity").context())
    assert f.evidence["least_squares_mse"] > 2 * f.evidence["nonlinear_mse"]
    assert f.fix.intervention == "add_capacity"


def test_quiet_on_linear_data_and_for_a_model_with_hidden_relu_layers():
    assert RULE.detect(healthy("underfit-capacity").context()) == []
    s = firing("underfit-capacity")
    assert RULE.detect(s.with_(model=dense_model(units=(16,), n_inputs=1)).context()) == []
