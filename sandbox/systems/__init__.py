"""The components every runtime runs, in the order they are listed to users."""

from __future__ import annotations

from sandbox.runtime.component import Component
from sandbox.systems.airflow.component import Airflow
from sandbox.systems.keycloak.component import Keycloak
from sandbox.systems.openbao.component import OpenBao
from sandbox.systems.redis.component import Redis
from sandbox.systems.tyk.component import Tyk
from sandbox.systems.upstream.component import Upstream


def all_components() -> list[Component]:
    return [Keycloak(), Redis(), Tyk(), OpenBao(), Airflow(), Upstream()]


NAMES = tuple(c.name for c in all_components())
