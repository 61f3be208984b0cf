"""Shared code of the maple-workflow scripts: pure functions, no work at import time."""
