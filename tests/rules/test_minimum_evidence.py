"""Issue 12 item 5 for the model and training rules: below the minimum evidence their docstring
states, a rule reports nothing; just above it, the same pattern is reported."""
import pytest

from fitdoctor.rules import RULES, get_rule
from fitdoctor.signals.trace import Sample, Trace


@pytest.mark.parametrize("rule", [r for r in RULES if r.code[0] in "MT"], ids=lambda r: r.name)
def test_docstring_states_the_minimum_evidence(rule):
    assert "Minimum evidence:" in type(rule).__doc__


def _overfit_trace(n_val):
    val = [1.0, 0.5, 0.9, 1.2, 1.5][:n_val]
    return Trace(loss=[1.0, 0.6, 0.4, 0.3, 0.2][:n_val], val_loss=val, patience=1)


def test_overfit_needs_three_validation_epochs():
    rule = get_rule("overfit")
    assert rule.detect_training(_overfit_trace(2)) == []
    assert [f.name for f in rule.detect_training(_overfit_trace(3))] == ["overfit"]


def _dead_trace(rows):
    samples = [Sample(epoch=e, step=10 * e, dead_relu={"hidden": 1.0}, sample_rows=rows) for e in range(3)]
    return Trace(loss=[1.0, 1.0, 1.0], samples=samples)


def test_dying_relu_live_needs_eight_sample_rows():
    rule = get_rule("dying-relu")
    assert rule.detect_training(_dead_trace(4)) == []
    assert [f.name for f in rule.detect_training(_dead_trace(8))] == ["dying-relu"]
