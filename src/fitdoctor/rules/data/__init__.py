"""Data family (D1xx): checks on the features and targets themselves."""
