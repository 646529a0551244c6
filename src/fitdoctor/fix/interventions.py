"""Interventions: small pure values that describe one change to a training run.

A :class:`Recipe` is the full description of a training run (optimizer, learning rate, loss,
preprocessing, architecture changes, callbacks). An intervention is a frozen dataclass with a
stable snake_case ``name``, a one-line ``describe()`` and ``apply(recipe) -> Recipe`` that returns
a NEW recipe (recipes are frozen: nothing is ever mutated). ``chain(*interventions)`` composes
them, like ``optax.chain``::

    fix = chain(ScaleTargets(), SetLearningRate(0.1))
    recipe = fix.apply(Recipe.from_config(config))

The names are the vocabulary of ``Fix.intervention`` in findings; :func:`get_intervention`
builds one from its name.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar


@dataclass(frozen=True)
class Recipe:
    """Everything that defines one training run of a regression model."""

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    loss: str = "mse"
    huber_delta: float = 1.0  # in standardised target units when scale_y is set
    epochs: int = 200
    batch_size: int = 32
    scale_x: bool = False
    scale_y: bool = False
    drop_nonfinite: bool = False
    reshape_y: bool = False
    output_activation: str | None = None  # replacement for the output activation, None keeps it
    kernel_initializer: str | None = None  # replacement initializer for Dense kernels, None keeps it
    hidden_units: tuple[int, ...] | None = None  # added capacity (hidden Dense layers), None keeps the model
    clipnorm: float | None = None
    early_stopping: bool = False  # EarlyStopping(restore_best_weights=True) on the training loss
    reduce_lr_on_plateau: bool = False
    momentum: float = 0.0  # SGD only (also inside optimizer_config when the user set it)
    #: the user's optimizer, fully (keras.optimizers.serialize as JSON); used while ``optimizer`` is its class
    optimizer_config: str | None = None
    #: the user's loss object (function, Loss instance/subclass); used while ``loss`` is its name
    loss_object: Any = None
    #: L2 factor on every Dense kernel (0 removes the model's L1/L2 penalties); None keeps the model's
    l2: float | None = None
    #: dropout rate after each hidden Dense layer (0 removes the model's Dropout layers); None keeps them
    dropout: float | None = None
    #: units of every hidden Dense layer (0: the linear model, the output unit alone); None keeps them
    width: int | None = None

    @classmethod
    def from_config(cls, config, *, epochs: int | None = None) -> "Recipe":
        """The recipe of a :class:`fitdoctor.model.inspect.TrainingConfig` as the user trains it
        (every field taken from the configuration, nothing re-derived)."""
        return cls(
            optimizer=config.optimizer, learning_rate=float(config.learning_rate), loss=config.loss,
            huber_delta=float(getattr(config, "huber_delta", 1.0) or 1.0),
            epochs=int(epochs if epochs is not None else (config.epochs or 200)),
            batch_size=int(config.batch_size or 32), clipnorm=config.clipnorm,
            momentum=float(getattr(config, "momentum", 0.0) or 0.0),
            optimizer_config=getattr(config, "optimizer_config", None),
            loss_object=getattr(config, "loss_object", None),
        )

    @property
    def architecture(self) -> tuple:
        """The part of the recipe that changes the model (runs with equal keys train together)."""
        return (self.output_activation, self.kernel_initializer, self.hidden_units, self.l2, self.dropout, self.width)

    @property
    def needs_callbacks(self) -> bool:
        return self.early_stopping or self.reduce_lr_on_plateau

    def replace(self, **changes) -> "Recipe":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        import json

        from ..model.inspect import loss_display_name

        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if d["hidden_units"] is not None:
            d["hidden_units"] = list(d["hidden_units"])
        d["optimizer_config"] = None if self.optimizer_config is None else json.loads(self.optimizer_config)
        d["loss_object"] = None if self.loss_object is None else loss_display_name(self.loss_object)
        return d


@dataclass(frozen=True)
class Intervention:
    """Base: a named, pure change to a :class:`Recipe`."""

    name: ClassVar[str] = ""
    #: True when it changes the model's layers (a modified clone is trained)
    changes_architecture: ClassVar[bool] = False

    def apply(self, recipe: Recipe) -> Recipe:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.describe(), "params": _plain(self.params)}

    def __str__(self) -> str:
        return self.describe()


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass(frozen=True)
class ScaleInputs(Intervention):
    name: ClassVar[str] = "scale_inputs"

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(scale_x=True)

    def describe(self) -> str:
        return "standardise the inputs (a Normalization layer adapted to the training data in front of the model)"


@dataclass(frozen=True)
class ScaleTargets(Intervention):
    name: ClassVar[str] = "scale_targets"

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(scale_y=True)

    def describe(self) -> str:
        return "standardise the targets for training and invert the predictions (Normalization(invert=True) behind the model)"


@dataclass(frozen=True)
class DropNonfiniteRows(Intervention):
    name: ClassVar[str] = "drop_nonfinite_rows"

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(drop_nonfinite=True)

    def describe(self) -> str:
        return "drop the rows holding NaN or infinite values before training"


@dataclass(frozen=True)
class ReshapeTargets(Intervention):
    name: ClassVar[str] = "reshape_targets"

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(reshape_y=True)

    def describe(self) -> str:
        return "reshape the targets to one column, shape (n, 1), matching the model's output"


@dataclass(frozen=True)
class ReplaceOutputActivation(Intervention):
    activation: str = "linear"
    name: ClassVar[str] = "replace_output_activation"
    changes_architecture: ClassVar[bool] = True

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(output_activation=self.activation)

    def describe(self) -> str:
        return f"use a {self.activation} output activation, which can reach every target value"


@dataclass(frozen=True)
class ReplaceLoss(Intervention):
    loss: str = "mse"
    name: ClassVar[str] = "replace_loss"

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(loss=self.loss, loss_object=None)

    def describe(self) -> str:
        return f"train with the regression loss {self.loss!r}"


@dataclass(frozen=True)
class HuberLoss(Intervention):
    delta: float = 1.0
    name: ClassVar[str] = "huber_loss"

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(loss="huber", huber_delta=float(self.delta), loss_object=None)

    def describe(self) -> str:
        return f"train with the Huber loss (delta {self.delta:g} standard deviations of the target) so outliers weigh less"


@dataclass(frozen=True)
class SetLearningRate(Intervention):
    learning_rate: float = 1e-3
    name: ClassVar[str] = "set_learning_rate"

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(learning_rate=float(self.learning_rate))

    def describe(self) -> str:
        return f"set the learning rate to {self.learning_rate:.3g}"


@dataclass(frozen=True)
class SetOptimizer(Intervention):
    optimizer: str = "adam"
    learning_rate: float | None = None
    name: ClassVar[str] = "set_optimizer"

    def apply(self, recipe: Recipe) -> Recipe:
        lr = recipe.learning_rate if self.learning_rate is None else float(self.learning_rate)
        return recipe.replace(optimizer=self.optimizer, learning_rate=lr)

    def describe(self) -> str:
        lr = "" if self.learning_rate is None else f" at learning rate {self.learning_rate:.3g}"
        return f"train with the {self.optimizer} optimizer{lr}"


@dataclass(frozen=True)
class MoreEpochs(Intervention):
    epochs: int = 1000
    early_stopping: bool = True
    reduce_lr_on_plateau: bool = True
    name: ClassVar[str] = "more_epochs"

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(epochs=max(int(self.epochs), recipe.epochs), early_stopping=self.early_stopping,
                              reduce_lr_on_plateau=self.reduce_lr_on_plateau)

    def describe(self) -> str:
        extras = [n for n, on in (("early stopping that restores the best weights", self.early_stopping),
                                  ("ReduceLROnPlateau", self.reduce_lr_on_plateau)) if on]
        return f"train for up to {self.epochs} epochs" + (f" with {' and '.join(extras)}" if extras else "")


@dataclass(frozen=True)
class SaneInitializer(Intervention):
    initializer: str = "glorot_uniform"
    name: ClassVar[str] = "sane_initializer"
    changes_architecture: ClassVar[bool] = True

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(kernel_initializer=self.initializer)

    def describe(self) -> str:
        return f"re-initialise the Dense kernels with {self.initializer} (zero biases)"


@dataclass(frozen=True)
class AddCapacity(Intervention):
    hidden_units: tuple[int, ...] = (32,)
    activation: str = "tanh"
    name: ClassVar[str] = "add_capacity"
    changes_architecture: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_units", tuple(int(u) for u in self.hidden_units))

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(hidden_units=self.hidden_units)

    def describe(self) -> str:
        layers = " + ".join(f"Dense({u}, {self.activation})" for u in self.hidden_units)
        return f"add capacity: {layers} before the output unit"


@dataclass(frozen=True)
class ClipGradients(Intervention):
    clipnorm: float = 1.0
    name: ClassVar[str] = "clip_gradients"

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(clipnorm=float(self.clipnorm))

    def describe(self) -> str:
        return f"clip each gradient to norm {self.clipnorm:g}"


@dataclass(frozen=True)
class Chain(Intervention):
    """Several interventions applied in order (``chain(a, b).apply(r) == b.apply(a.apply(r))``)."""

    interventions: tuple[Intervention, ...] = field(default_factory=tuple)
    name: ClassVar[str] = "chain"

    @property
    def changes_architecture(self) -> bool:  # type: ignore[override]
        return any(i.changes_architecture for i in self.interventions)

    def apply(self, recipe: Recipe) -> Recipe:
        for step in self.interventions:
            recipe = step.apply(recipe)
        return recipe

    def describe(self) -> str:
        return "; ".join(i.describe() for i in self.interventions) or "no change"

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.interventions]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.describe(),
                "interventions": [i.to_dict() for i in self.interventions]}


def chain(*interventions: Intervention) -> Chain:
    """Compose interventions (nested chains are flattened)."""
    flat: list[Intervention] = []
    for i in interventions:
        if isinstance(i, Chain):
            flat.extend(i.interventions)
        elif isinstance(i, Intervention):
            flat.append(i)
        else:
            raise TypeError(f"chain() takes interventions. Received {i!r}")
    return Chain(tuple(flat))


INTERVENTIONS: dict[str, type[Intervention]] = {
    cls.name: cls
    for cls in (ScaleInputs, ScaleTargets, DropNonfiniteRows, ReshapeTargets, ReplaceOutputActivation,
                ReplaceLoss, HuberLoss, SetLearningRate, SetOptimizer, MoreEpochs, SaneInitializer,
                AddCapacity, ClipGradients)
}


def get_intervention(name: str, **params) -> Intervention:
    """Build an intervention from its stable name, e.g. ``get_intervention("set_learning_rate", learning_rate=0.1)``."""
    try:
        cls = INTERVENTIONS[name]
    except KeyError:
        raise KeyError(f"unknown intervention {name!r}; choose one of {', '.join(INTERVENTIONS)}") from None
    known = {f.name for f in fields(cls)}
    unknown = set(params) - known
    if unknown:
        raise TypeError(f"{name} takes {sorted(known) or 'no parameters'}. Received {sorted(unknown)}")
    return cls(**params)


# -- small-data and regularisation interventions (issue 12) ------------------------------------
@dataclass(frozen=True)
class L2Penalty(Intervention):
    """An L2 penalty on every Dense kernel (0 removes the model's weight penalties)."""

    l2: float = 1e-2
    name: ClassVar[str] = "l2_penalty"
    changes_architecture: ClassVar[bool] = True

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(l2=float(self.l2))

    def describe(self) -> str:
        if self.l2 == 0:
            return "remove the L1/L2 weight penalties"
        return f"an L2 penalty of {self.l2:g} on every Dense kernel"


@dataclass(frozen=True)
class RemoveRegularization(Intervention):
    """Remove the weight penalties and the Dropout layers (over-regularisation)."""

    name: ClassVar[str] = "remove_regularization"
    changes_architecture: ClassVar[bool] = True

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(l2=0.0, dropout=0.0)

    def describe(self) -> str:
        return "remove the L1/L2 weight penalties and the Dropout layers"


@dataclass(frozen=True)
class AddDropout(Intervention):
    rate: float = 0.2
    name: ClassVar[str] = "add_dropout"
    changes_architecture: ClassVar[bool] = True

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(dropout=float(self.rate))

    def describe(self) -> str:
        return f"Dropout({self.rate:g}) after each hidden Dense layer"


@dataclass(frozen=True)
class NarrowNetwork(Intervention):
    units: int = 8
    name: ClassVar[str] = "narrow_network"
    changes_architecture: ClassVar[bool] = True

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(width=int(self.units))

    def describe(self) -> str:
        return f"a narrower network: {self.units} units in every hidden Dense layer"


@dataclass(frozen=True)
class LinearModel(Intervention):
    name: ClassVar[str] = "linear_model"
    changes_architecture: ClassVar[bool] = True

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(width=0)

    def describe(self) -> str:
        return "the linear model: the hidden layers removed, the output unit alone"


@dataclass(frozen=True)
class EarlyStoppingOnValidation(Intervention):
    """EarlyStopping on the validation loss with the best weights restored (the user's epochs stay
    the maximum); ``epochs`` records where the best validation loss was, for retraining on all rows."""

    epochs: int | None = None
    name: ClassVar[str] = "early_stopping"

    def apply(self, recipe: Recipe) -> Recipe:
        return recipe.replace(early_stopping=True, **({"epochs": int(self.epochs)} if self.epochs else {}))

    def describe(self) -> str:
        where = f" (best at epoch {self.epochs})" if self.epochs else ""
        return f"stop early on the validation loss, best weights restored{where}"


INTERVENTIONS.update({cls.name: cls for cls in (L2Penalty, RemoveRegularization, AddDropout, NarrowNetwork,
                                                LinearModel, EarlyStoppingOnValidation)})
