"""tenancy slice."""
