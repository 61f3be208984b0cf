"""Data backends: each turns the config of one dataset into instruction and evaluation records."""
