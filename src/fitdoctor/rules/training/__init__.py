"""Training-dynamics family (T4xx): what gradients, activations and curves show during training."""
