import pandas as pd

from fitdoctor.rules import get_rule
from conftest import INCOME_CSV
from rule_fixtures import Scenario, firing, healthy

RULE = get_rule("adam-large-target")


def _income(**config):
    df = pd.read_csv(INCOME_CSV).dropna()
    return Scenario(df[["age", "experience"]].to_numpy(float), df["income"].to_numpy(float),
                    config={"epochs": 200, "batch_size": 32, **config})


def test_seed_003_adam_needs_millions_of_steps_for_200_given():
    [f] = RULE.detect(_income(optimizer="adam", learning_rate=0.01).context())
    assert f.evidence["steps_given"] == 200
    assert f.evidence["steps_needed"] > 1e6            # the bias must reach ~30,000 at 0.01 a step
    assert f.evidence["parameter"] == "bias"
    assert f.evidence["steps_needed_with_standardized_targets"] < 1000


def test_lower_learning_rate_needs_ten_times_more():
    [a] = RULE.detect(_income(optimizer="adam", learning_rate=0.01).context())
    [b] = RULE.detect(_income(optimizer="adam", learning_rate=0.001).context())
    assert 9.9 < b.evidence["steps_needed"] / a.evidence["steps_needed"] < 10.1


def test_quiet_for_sgd_and_for_standardised_targets():
    assert RULE.detect(_income(optimizer="sgd", learning_rate=0.01).context()) == []
    assert RULE.detect(firing("adam-large-target").with_(y=healthy("adam-large-target").y).context()) == []
