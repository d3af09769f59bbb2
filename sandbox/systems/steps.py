"""Apply: compare live systems with the plan and converge them. Each system's module yields Steps.

A Step is a Change (what would happen, shown by `sandbox plan`) plus the call that makes it (run by
`sandbox apply`). Diffing reads only; running twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    system: str  # keycloak | tyk | airflow
    action: str  # create | update | delete
    kind: str  # realm | scope | client | api | policy | connection
    name: str
    detail: str = ""


@dataclass
class Step:
    change: Change
    run: Callable[[], None]
