"""Reading a user's Keras model and training configuration without changing them."""
from .inspect import LayerInfo, ModelInfo, TrainingConfig, describe_model, read_training_config

__all__ = ["LayerInfo", "ModelInfo", "TrainingConfig", "describe_model", "read_training_config"]
