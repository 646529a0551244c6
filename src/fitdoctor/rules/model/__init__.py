"""Model family (M2xx): checks on the architecture, the loss and the initial weights."""
