"""The Hugging Face hub: the API seam, loading by id or path, pins, preflight, prefetch, task data sources."""
