from fitdoctor.monitor import Sample, Trace
from fitdoctor.rules import get_rule

RULE = get_rule("exploding-gradients")


def _trace(norms):
    samples = [Sample(epoch=i // 4, step=i, grad_norm=g, grad_norms={"dense": g}, loss=1.0) for i, g in enumerate(norms)]
    return Trace(loss=[1.0] * (len(norms) // 4 + 1), samples=samples, steps_per_epoch=4)


def test_gradient_norm_growing_by_orders_of_magnitude_fires():
    findings = RULE.detect_training(_trace([1.0, 1.2, 1.1, 3.0, 40.0, 900.0, 2e4, 5e5]))
    assert [f.name for f in findings] == ["exploding-gradients"]
    assert findings[0].step is not None


def test_steady_gradients_are_quiet():
    assert RULE.detect_training(_trace([1.0, 0.9, 1.1, 0.8, 0.7, 0.75, 0.6, 0.5])) == []
