"""What every job shares: devices, logging, atomic writes, records, prompts, provenance."""
