"""events slice."""
