"""ingestion slice."""
