"""The systems every runtime runs, in the order they are listed to users: each one folder (its component, applier,
client). A new system adds its folder and its line below.

Loaded on first use: importing one system's module (its client, say) does not load every system."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.runtime.component import Component


def all_components() -> list[Component]:
    from sandbox.systems.airflow.component import Airflow
    from sandbox.systems.keycloak.component import Keycloak
    from sandbox.systems.openbao.component import OpenBao
    from sandbox.systems.redis.component import Redis
    from sandbox.systems.tyk.component import Tyk
    from sandbox.systems.upstream.component import Upstream

    return [Keycloak(), Redis(), Tyk(), OpenBao(), Airflow(), Upstream()]


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "NAMES":  # every system's name, in order
        return tuple(c.name for c in all_components())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
