"""Aggregation, summary tables and figures."""
