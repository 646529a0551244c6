"""The conformance suite every rule goes through (scikit-learn's check_estimator, for rules)."""
import json
import re

import numpy as np
import pytest

from fitdoctor.findings import Finding
from fitdoctor.rules import RULES, get_rule, select_rules
from fitdoctor.rules.base import REQUIRED_SECTIONS
from fitdoctor.errors import InputError
from rule_fixtures import STATIC_RULES, firing, fixed, healthy

VOCABULARY = [
    "feature-scale", "target-scale", "adam-large-target", "lr-too-high", "lr-too-low", "output-activation-range",
    "too-few-epochs", "underfit-capacity", "overfit", "outliers", "nan-inf-data", "wrong-loss", "shape-broadcast",
    "dying-relu", "bad-init", "exploding-gradients", "vanishing-gradients", "batch-size", "ill-conditioned",
    "skewed-target", "constant-feature", "predicts-constant", "over-regularization",
]


def test_the_public_vocabulary_exists_with_exact_spellings():
    names = {r.name for r in RULES}
    assert set(VOCABULARY) <= names


def test_codes_and_names_are_unique_and_well_formed():
    codes = [r.code for r in RULES]
    names = [r.name for r in RULES]
    assert len(set(codes)) == len(codes)
    assert len(set(names)) == len(names)
    for r in RULES:
        assert re.fullmatch(r"[DMOT][1-4]\d\d", r.code), r.code
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", r.name), r.name
        assert r.severity in ("error", "warning", "info")


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_docstring_has_every_required_section(rule):
    docs = rule.docs()
    missing = [s for s in REQUIRED_SECTIONS if not docs.get(s)]
    assert not missing, f"{rule.code} lacks {missing}"
    assert docs["summary"]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_every_rule_can_judge_something(rule):
    """Each rule overrides detect (before training) or detect_training (on a run), or both."""
    from fitdoctor.rules.base import Rule

    assert type(rule).detect is not Rule.detect or type(rule).detect_training is not Rule.detect_training


def test_get_rule_by_code_and_name_and_unknown():
    assert get_rule("O301").name == "adam-large-target"
    assert get_rule("o301").name == "adam-large-target"
    assert get_rule("adam-large-target").code == "O301"
    with pytest.raises(InputError, match="did you mean"):
        get_rule("adam-large-targets")


def test_select_and_ignore_by_prefix_code_and_name():
    assert {r.code[0] for r in select_rules(["D"])} == {"D"}
    names = {r.name for r in select_rules(["O"], ["lr-too-low", "O305"])}
    assert "adam-large-target" in names and "lr-too-low" not in names and "batch-size" not in names
    with pytest.raises(InputError, match="pyproject.toml"):
        select_rules(["X999"], source="pyproject.toml [tool.fitdoctor]")


@pytest.mark.parametrize("name", STATIC_RULES)
def test_firing_fixture_fires_and_healthy_stays_quiet(name):
    rule = get_rule(name)
    fired = rule.detect(firing(name).context())
    assert [f.name for f in fired] == [name]
    assert fired[0].code == rule.code and fired[0].evidence
    assert rule.detect(healthy(name).context()) == []


@pytest.mark.parametrize("name", STATIC_RULES)
def test_deterministic_and_does_not_mutate_input(name):
    rule = get_rule(name)
    scen = firing(name)
    X0, y0 = scen.X.copy(), scen.y.copy()
    ctx = scen.context()
    weights_before = [w.copy() for w in ctx.model.get_weights()] if ctx.model is not None else []
    a = [f.to_dict() for f in rule.detect(ctx)]
    b = [f.to_dict() for f in rule.detect(scen.context())]
    assert a == b
    np.testing.assert_array_equal(scen.X, X0)
    np.testing.assert_array_equal(scen.y, y0)
    if ctx.model is not None:
        for w0, w1 in zip(weights_before, ctx.model.get_weights()):
            np.testing.assert_array_equal(w0, w1)


@pytest.mark.parametrize("name", STATIC_RULES)
def test_findings_serialise_to_json_and_back(name):
    for f in get_rule(name).detect(firing(name).context()):
        text = json.dumps(f.to_dict())
        back = Finding.from_dict(json.loads(text))
        assert back.to_dict() == f.to_dict()


@pytest.mark.parametrize("name", STATIC_RULES)
def test_applying_the_fix_silences_the_rule(name):
    scen = fixed(name)
    assert scen is not None
    assert get_rule(name).detect(scen.context()) == []
