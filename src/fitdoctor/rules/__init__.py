"""The rule registry: one explicit list, families as code prefixes.

* D1xx data, M2xx model, O3xx optimisation, T4xx training dynamics.

Users select or ignore rules by code ("O301"), prefix ("O", "O3") or name ("adam-large-target").
"""
from __future__ import annotations

from ..errors import InputError
from .base import FAMILIES, Rule
from .data.constant_feature import ConstantFeature
from .data.duplicate_feature import DuplicateFeature
from .data.feature_scale import FeatureScale
from .data.ill_conditioned import IllConditioned
from .data.nan_inf_data import NanInfData
from .data.outliers import Outliers
from .data.skewed_target import SkewedTarget
from .data.target_scale import TargetScale
from .model.bad_init import BadInit
from .model.output_activation_range import OutputActivationRange
from .model.over_regularization import OverRegularization
from .model.shape_broadcast import ShapeBroadcast
from .model.underfit_capacity import UnderfitCapacity
from .model.wrong_loss import WrongLoss
from .optimization.adam_large_target import AdamLargeTarget
from .optimization.batch_size import BatchSize
from .optimization.lr_too_high import LrTooHigh
from .optimization.lr_too_low import LrTooLow
from .optimization.too_few_epochs import TooFewEpochs
from .training.dying_relu import DyingRelu
from .training.exploding_gradients import ExplodingGradients
from .training.overfit import Overfit
from .training.predicts_constant import PredictsConstant
from .training.vanishing_gradients import VanishingGradients

RULES: tuple[Rule, ...] = (
    NanInfData(),
    ConstantFeature(),
    FeatureScale(),
    IllConditioned(),
    TargetScale(),
    SkewedTarget(),
    Outliers(),
    DuplicateFeature(),
    OutputActivationRange(),
    WrongLoss(),
    ShapeBroadcast(),
    UnderfitCapacity(),
    BadInit(),
    OverRegularization(),
    AdamLargeTarget(),
    LrTooHigh(),
    LrTooLow(),
    TooFewEpochs(),
    BatchSize(),
    ExplodingGradients(),
    VanishingGradients(),
    DyingRelu(),
    PredictsConstant(),
    Overfit(),
)

_BY_KEY = {r.code: r for r in RULES} | {r.name: r for r in RULES}


def get_rule(code_or_name: str) -> Rule:
    """The rule with this code ("O301", case-insensitive) or name ("adam-large-target")."""
    key = code_or_name.strip()
    rule = _BY_KEY.get(key) or _BY_KEY.get(key.upper()) or _BY_KEY.get(key.lower())
    if rule is None:
        import difflib

        close = difflib.get_close_matches(key.lower(), [r.name for r in RULES], n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "run 'fitdoctor rules' to list them"
        raise InputError(f"unknown rule {code_or_name!r}: {hint}")
    return rule


def _matches(rule: Rule, selector: str) -> bool:
    s = selector.strip()
    return rule.name == s.lower() or rule.code.startswith(s.upper())


def select_rules(select=None, ignore=None, *, source: str = "arguments") -> list[Rule]:
    """Rules chosen by code, prefix or name; an unknown selector is an error naming its source."""
    select = [s for s in (select or []) if s.strip()]
    ignore = [s for s in (ignore or []) if s.strip()]
    for s in select + ignore:
        if s.upper() != "ALL" and not any(_matches(r, s) for r in RULES):
            raise InputError(f"unknown rule selector {s!r} in {source}: use a code (O301), a prefix (O, D1) or a name (adam-large-target)")
    chosen = [r for r in RULES if not select or any(s.upper() == "ALL" or _matches(r, s) for s in select)]
    return [r for r in chosen if not any(_matches(r, s) for s in ignore)]


__all__ = ["FAMILIES", "RULES", "Rule", "get_rule", "select_rules"]
