"""Repair: confirm each suspected cause by experiment, apply the fixes that help, hand back a plain Keras model."""
from .interventions import INTERVENTIONS, Chain, Intervention, Recipe, chain, get_intervention
from .repair import AppliedIntervention, Repair, repair

__all__ = ["AppliedIntervention", "Chain", "INTERVENTIONS", "Intervention", "Recipe", "Repair", "chain",
           "get_intervention", "repair"]
