"""What the HTTP layer is given by the composition root (opencdp.app)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opencdp.core.clock import Clock, SystemClock
from opencdp.core.config import Settings
from opencdp.core.metrics import Metrics
from opencdp.ingestion.processing import ProcessingService
from opencdp.ingestion.service import IngestionService
from opencdp.tenancy.service import TenancyService


@dataclass
class ApiContext:
    settings: Settings
    metrics: Metrics
    tenancy: TenancyService
    ingestion: IngestionService
    processing: ProcessingService
    services: dict[str, Any] = field(default_factory=dict)
    """Services of later slices (identity, profiles, oauth...), by name."""
    clock: Clock = field(default_factory=SystemClock)
    """Time for checks made at the edge (IDSync HMAC Date window, alias default end time)."""

    def count_error(self, family: Any, code: str) -> None:
        self.metrics.http_errors.labels(family.name, code).inc()
