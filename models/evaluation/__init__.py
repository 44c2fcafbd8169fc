"""models/evaluation."""
