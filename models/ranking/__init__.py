"""models/ranking."""
