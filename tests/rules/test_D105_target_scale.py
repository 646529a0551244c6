import pandas as pd

from fitdoctor.rules import get_rule
from conftest import INCOME_CSV
from rule_fixtures import Scenario, firing, healthy

RULE = get_rule("target-scale")


def test_fires_on_targets_in_the_millions():
    [f] = RULE.detect(firing("target-scale").context())
    assert f.severity == "warning" and f.evidence["rms"] > 1e5
    assert f.fix.intervention == "scale_targets"


def test_fires_on_the_seed_003_incomes():
    df = pd.read_csv(INCOME_CSV)
    [f] = RULE.detect(Scenario(df[["age", "experience"]].to_numpy(float), df["income"].to_numpy(float)).context())
    assert f.evidence["min"] == 27840 and f.evidence["max"] == 63600


def test_offset_targets_are_a_note_not_a_warning():
    s = healthy("target-scale")
    [f] = RULE.detect(s.with_(y=s.y + 6.0).context())
    assert f.severity == "info"


def test_quiet_on_standardised_targets():
    assert RULE.detect(healthy("target-scale").context()) == []
