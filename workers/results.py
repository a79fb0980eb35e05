"""What a pipeline step returns for one message: keep it, drop it, or park it in dead_letter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    value: T


@dataclass(frozen=True, slots=True)
class Drop:
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str  # short machine-readable code, e.g. "invalid_json"
    error: str  # human-readable detail


Result = Ok[T] | Drop | DeadLetter
