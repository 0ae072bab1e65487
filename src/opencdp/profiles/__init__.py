"""profiles slice."""
