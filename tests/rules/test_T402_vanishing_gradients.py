from fitdoctor.monitor import Sample, Trace
from fitdoctor.rules import get_rule

RULE = get_rule("vanishing-gradients")


def _trace(first_layer_ratio):
    samples = [Sample(epoch=e, step=4 * e + 1, grad_norm=1.0,
                      grad_norms={"dense": first_layer_ratio, "dense_1": 1.0},
                      weight_norms={"dense": 1.0, "dense_1": 1.0},
                      update_ratios={"dense": first_layer_ratio, "dense_1": 1e-2}) for e in range(10)]
    return Trace(loss=[1.0] * 10, samples=samples, steps_per_epoch=4, y_var=0.1)


def test_first_layer_updates_a_million_times_smaller_fire():
    findings = RULE.detect_training(_trace(1e-9))
    assert [f.name for f in findings] == ["vanishing-gradients"]


def test_comparable_updates_are_quiet():
    assert RULE.detect_training(_trace(5e-3)) == []
