"""The components every runtime runs, in the order they are listed to users."""

from __future__ import annotations

from sandbox.runtime.components.airflow import Airflow
from sandbox.runtime.components.base import Component
from sandbox.runtime.components.keycloak import Keycloak
from sandbox.runtime.components.openbao import OpenBao
from sandbox.runtime.components.redis import Redis
from sandbox.runtime.components.tyk import Tyk
from sandbox.runtime.components.upstream import Upstream


def all_components() -> list[Component]:
    return [Keycloak(), Redis(), Tyk(), OpenBao(), Airflow(), Upstream()]


NAMES = tuple(c.name for c in all_components())
