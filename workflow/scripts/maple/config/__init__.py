"""Planning: the study grid, config validation, stage versions."""
