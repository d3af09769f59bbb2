"""The live clients of a running stack, each made once per command.

`Clients(endpoints)` logs in to a system the first time it is asked for it and reuses that login after;
apply, doctor, call and the test handle all get theirs here. Each client is its system's own
(`sandbox/systems/<name>/client.py`).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import redis

from sandbox.errors import SandboxError
from sandbox.plan import token_endpoint
from sandbox.runtime.base import Endpoints
from sandbox.systems.airflow.client import SIGN_IN, AirflowApi
from sandbox.systems.keycloak.client import keycloak_admin
from sandbox.systems.openbao.client import Vault
from sandbox.systems.tyk.client import TykGateway

if TYPE_CHECKING:
    from keycloak import KeycloakAdmin


def why_not_running(endpoints: Endpoints, name: str) -> str | None:
    """Why `name` cannot be used now, or None when it runs healthy."""
    st = endpoints.components[name]
    if st.state != "running" or not st.healthy:
        return f"{name} is {st.state if st.state != 'running' else 'not healthy'}"
    return None


class Clients:
    """One login per system and command: made on first use, reused after."""

    def __init__(self, endpoints: Endpoints, allow_unhealthy: set[str] = frozenset()):
        self.endpoints = endpoints
        self.allow_unhealthy = allow_unhealthy  # used although not healthy (doctor, on a partly-down Airflow)

    def _require(self, name: str) -> None:
        if name in self.allow_unhealthy:
            return
        if why := why_not_running(self.endpoints, name):
            raise SandboxError(f"{name} is needed here, and {why}.", "run `sandbox up`, then the command again.")

    @cached_property
    def keycloak(self) -> KeycloakAdmin:
        self._require("keycloak")
        return keycloak_admin(self.endpoints.url("keycloak"), self.endpoints.secret("keycloak") or "")

    @cached_property
    def airflow(self) -> AirflowApi:
        self._require("airflow")
        st = self.endpoints.components["airflow"]
        return AirflowApi(st.url, token_endpoint(st.urls[SIGN_IN]), st.username or "", st.secret or "",
                          self.endpoints.airflow_token)

    def sign_in_to_airflow(self, realm_issuer: str) -> AirflowApi:
        """Airflow's client anew through the realm given (apply, once it moved Airflow's sign-in there)."""
        st = self.endpoints.components["airflow"]
        self.__dict__["airflow"] = AirflowApi(st.url, token_endpoint(realm_issuer), st.username or "", st.secret or "",
                                              self.endpoints.airflow_token)
        return self.airflow

    @cached_property
    def tyk(self) -> TykGateway:
        self._require("tyk")
        tyk = self.endpoints.components["tyk"]
        return TykGateway(tyk.url, tyk.secret or "", tyk.replicas)

    @cached_property
    def vault(self) -> Vault:
        """The sandbox's own vault login (the root token of its one-time initialisation)."""
        self._require("openbao")
        token = self.endpoints.secret("openbao")
        if not token:
            raise SandboxError("The vault has no root token on record.", "run `sandbox up` (its first start "
                               "initialises the vault).")
        return Vault(self.endpoints.url("openbao"), token)

    @cached_property
    def redis(self) -> redis.Redis:
        self._require("redis")
        return redis.Redis(host="127.0.0.1", port=self.endpoints.components["redis"].ports["redis"],
                           password=self.endpoints.secret("redis"), socket_timeout=30)
