"""opencdp: a self-hosted, mParticle-compatible customer data platform."""

__version__ = "0.1.0"
