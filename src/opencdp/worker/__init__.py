"""worker slice."""
