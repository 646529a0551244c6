"""Optimisation family (O3xx): learning rate, optimizer, epochs and batch size against the data."""
