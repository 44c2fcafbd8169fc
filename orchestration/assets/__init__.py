"""orchestration/assets."""
