"""Interventions are pure values: apply returns a new recipe, chain composes, names are stable."""
import dataclasses

import pytest

from fitdoctor.fix.interventions import (INTERVENTIONS, Recipe, chain, get_intervention, AddCapacity,
                                             ScaleTargets, SetLearningRate, MoreEpochs, ReplaceOutputActivation)

NAMES = ["scale_inputs", "scale_targets", "drop_nonfinite_rows", "reshape_targets", "replace_output_activation",
         "replace_loss", "huber_loss", "set_learning_rate", "set_optimizer", "more_epochs", "sane_initializer",
         "add_capacity", "clip_gradients", "l2_penalty", "remove_regularization", "add_dropout", "narrow_network",
         "linear_model", "early_stopping"]


def test_vocabulary_is_exactly_the_documented_names():
    assert sorted(INTERVENTIONS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_apply_returns_a_new_recipe_and_leaves_the_old_one(name):
    base = Recipe(optimizer="sgd", learning_rate=0.5, loss="binary_crossentropy", output_activation=None)
    snapshot = dataclasses.asdict(base)
    i = get_intervention(name)
    new = i.apply(base)
    assert dataclasses.asdict(base) == snapshot  # never mutated
    assert new is not base and new != base, f"{name} changed nothing"
    assert i.name == name and i.describe() and "\n" not in i.describe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(i, "name", "other")


def test_chain_composes_in_order_and_flattens():
    r = Recipe(learning_rate=0.01)
    c = chain(ScaleTargets(), chain(SetLearningRate(0.1), SetLearningRate(0.3)))
    out = c.apply(r)
    assert out.scale_y and out.learning_rate == 0.3
    assert c.names == ["scale_targets", "set_learning_rate", "set_learning_rate"]
    assert r.learning_rate == 0.01 and not r.scale_y


def test_architecture_key_separates_model_changes_from_training_changes():
    r = Recipe()
    assert ScaleTargets().apply(r).architecture == r.architecture
    assert AddCapacity((16,)).apply(r).architecture != r.architecture
    assert ReplaceOutputActivation().apply(r).output_activation == "linear"
    assert AddCapacity((16,)).changes_architecture and not ScaleTargets().changes_architecture


def test_more_epochs_never_shortens_and_turns_on_callbacks():
    r = Recipe(epochs=5000)
    out = MoreEpochs(epochs=300).apply(r)
    assert out.epochs == 5000 and out.early_stopping and out.reduce_lr_on_plateau


def test_get_intervention_rejects_unknown_names_and_params():
    assert get_intervention("set_learning_rate", learning_rate=0.2).apply(Recipe()).learning_rate == 0.2
    with pytest.raises(KeyError, match="unknown intervention"):
        get_intervention("scale_target")
    with pytest.raises(TypeError):
        get_intervention("scale_targets", factor=2)


def test_rule_fixes_name_known_interventions():
    from fitdoctor.rules import RULES  # the rules' Fix.intervention must be in the vocabulary
    import inspect
    import re

    for rule in RULES:
        src = inspect.getsource(type(rule) if not inspect.isclass(rule) else rule)
        for name in re.findall(r'intervention="([a-z_]+)"', src):
            assert name in INTERVENTIONS, f"{rule}: unknown intervention {name!r}"
