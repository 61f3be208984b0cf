"""Experiment tracking (docs/tracking.md): TensorBoard event files under results/ by default, an MLflow tracking
server by choice; a tracker that fails makes a job warn, never fail."""
