"""Ingestion benchmark for opencdp (``python -m bench.run``; see bench/README.md).

The package is deliberately separate from ``src/``: it drives the real CLI as subprocesses over
loopback HTTP, so what it measures is what a deployment gets, not an in-process shortcut.
"""
