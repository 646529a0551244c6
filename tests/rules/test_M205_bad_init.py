from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("bad-init")


def test_constant_kernel_fires():
    [f] = RULE.detect(firing("bad-init").context())
    layer = f.evidence["layers"][0]
    assert layer["layer"] == "hidden_0" and layer["constant"]


def test_huge_random_kernel_fires():
    import keras
    from rule_fixtures import dense_model
    s = healthy("bad-init").with_(model=dense_model(units=(16,), kernel_initializer=keras.initializers.RandomNormal(stddev=50.0)))
    [f] = RULE.detect(s.context())
    assert max(l["ratio"] for l in f.evidence["layers"]) > 10


def test_quiet_with_default_initialisation():
    assert RULE.detect(healthy("bad-init").context()) == []
