"""Pure tests of identity resolution: name tables, strategies, and their properties."""
