"""identity slice."""
