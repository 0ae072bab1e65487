"""The processing pipeline: an ordered list of named steps applied to a chunk of batches.

A chunk is the next batches of one partition, in inbox order. All steps run in one transaction
together with marking the batches processed, so a crash at any point either applied a batch
completely or not at all, and a replay never applies anything twice. Later slices (identity,
profiles, calculated attributes, audiences, outputs) join by adding a step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from opencdp.events.schema import Batch


@dataclass(slots=True)
class WorkItem:
    """One inbox batch on its way through the pipeline."""

    batch_id: int
    workspace_id: int
    input_id: int
    kind: str
    received_ms: int
    batch: Batch
    mpid: int | None = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def historical(self) -> bool:
        return self.kind == "historical"


class Step(Protocol):
    """A pipeline step. It joins the caller's transaction and never commits."""

    name: str

    def apply(self, tx: Connection, items: list[WorkItem], now_ms: int) -> None: ...


class Pipeline:
    def __init__(self, steps: list[Step]) -> None:
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate step names: {names}")
        self.steps = list(steps)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def run(self, tx: Connection, items: list[WorkItem], now_ms: int) -> None:
        for step in self.steps:
            step.apply(tx, items, now_ms)
