from fitdoctor.rules import get_rule
from rule_fixtures import firing, healthy

RULE = get_rule("too-few-epochs")


def test_two_full_batch_sgd_steps_are_not_enough():
    [f] = RULE.detect(firing("too-few-epochs").context())
    assert f.evidence["steps_given"] == 2
    assert f.evidence["epochs_needed"] > 2
    # the quadratic model predicts the loss the run will end at: above the optimum
    assert f.evidence["predicted_final_loss"] > 0


def test_left_to_adam_large_target_when_the_targets_are_the_cause():
    assert RULE.detect(firing("adam-large-target").context()) == []


def test_quiet_with_enough_epochs():
    assert RULE.detect(healthy("too-few-epochs").context()) == []
