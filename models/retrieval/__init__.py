"""models/retrieval."""
