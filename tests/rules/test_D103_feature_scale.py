import numpy as np

from fitdoctor.rules import get_rule
from fitdoctor.examples import load_example
from rule_fixtures import Scenario, firing, healthy

RULE = get_rule("feature-scale")


def test_fires_with_the_ratio_of_column_magnitudes():
    s = firing("feature-scale")
    [f] = RULE.detect(s.context())
    rms = np.sqrt((s.X ** 2).mean(axis=0))
    assert np.isclose(f.evidence["scale_ratio"], rms.max() / rms.min())
    assert f.fix.intervention == "scale_inputs" and f.fix.safe


def test_fires_on_seed_000_example_1():
    ex = load_example("scaling")
    [f] = RULE.detect(Scenario(ex.X, ex.y).context())
    assert f.evidence["scale_ratio"] > 100


def test_quiet_on_standardised_inputs():
    assert RULE.detect(healthy("feature-scale").context()) == []
