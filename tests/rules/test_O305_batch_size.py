import numpy as np

from fitdoctor.rules import get_rule
from rule_fixtures import Scenario, firing, healthy

RULE = get_rule("batch-size")


def test_full_batch_with_few_epochs_fires():
    [f] = RULE.detect(firing("batch-size").context())
    assert f.evidence["steps_per_epoch"] == 1 and f.severity == "info"


def test_batch_of_two_on_large_data_fires():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, 2))
    [f] = RULE.detect(Scenario(X, X.sum(1), config={"batch_size": 2}).context())
    assert f.evidence["steps_per_epoch"] == 1000


def test_quiet_with_batch_32():
    assert RULE.detect(healthy("batch-size").context()) == []
