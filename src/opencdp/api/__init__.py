"""api slice."""
