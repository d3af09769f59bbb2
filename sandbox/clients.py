"""The live clients of Keycloak, Airflow, Tyk and Redis, and the OIDC URLs, each made once per command.

`Clients(endpoints)` logs in to a system the first time it is asked for it and reuses that login after;
apply, doctor, call and the test handle all get theirs here. The URL builders are pure.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import redis
import requests

from sandbox.errors import SandboxError
from sandbox.runtime.base import Endpoints
from sandbox.vault import Vault

if TYPE_CHECKING:  # the library takes half a second to load: only commands that talk to Keycloak load it
    from keycloak import KeycloakAdmin


# ---- OIDC URLs of a Keycloak realm (pure) ------------------------------------------------------------
def issuer(keycloak_url: str, realm: str) -> str:
    return f"{keycloak_url}/realms/{realm}"


def token_url(keycloak_url: str, realm: str) -> str:
    return f"{issuer(keycloak_url, realm)}/protocol/openid-connect/token"


def jwks_url(keycloak_url: str, realm: str) -> str:
    return f"{issuer(keycloak_url, realm)}/protocol/openid-connect/certs"


# ---- the live clients ------------------------------------------------------------------------------
def keycloak_admin(url: str, password: str) -> KeycloakAdmin:
    """The master realm's admin, logged in (and checked) once."""
    from keycloak import KeycloakAdmin, KeycloakOpenIDConnection
    from keycloak.exceptions import KeycloakError

    try:
        admin = KeycloakAdmin(connection=KeycloakOpenIDConnection(
            server_url=url, username="admin", password=password, realm_name="master", user_realm_name="master",
            verify=True, timeout=30))
        admin.get_realms()
        return admin
    except KeycloakError as e:
        raise SandboxError(f"Keycloak at {url} refused the sandbox's admin login ({e.response_code}).",
                           "check `sandbox status`; if Keycloak was reset, run `sandbox down` and `sandbox up`.") from e


class AirflowApi:
    """Airflow's REST API v2 as the sandbox's admin."""

    def __init__(self, url: str, password: str):
        self.url = url.rstrip("/")
        r = requests.post(f"{self.url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        if not r.ok:
            raise SandboxError(f"Airflow at {url} refused the sandbox's admin login (HTTP {r.status_code}).",
                               "check `sandbox status`; `sandbox up` restarts a broken Airflow.")
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    @property
    def base(self) -> str:
        return f"{self.url}/api/v2"

    def call(self, method: str, path: str, *, ok404: bool = False, **kw) -> requests.Response:
        r = self.s.request(method, f"{self.base}{path}", timeout=30, **kw)
        if not r.ok and not (ok404 and r.status_code == 404):
            raise SandboxError(f"Airflow {method} {path} failed: HTTP {r.status_code} {r.text[:300]}")
        return r

    def reparse(self, dag_id_pattern: str) -> bool:
        """Ask the dag-processor to parse the file of the DAGs matching the pattern now (rather than at its next
        periodic parse, up to 30 s away). False when no such DAG is known yet (a new file is found on its own)."""
        dags = self.call("GET", "/dags", params={"dag_id_pattern": dag_id_pattern, "limit": 1}).json()["dags"]
        if not dags:
            return False
        self.call("PUT", f"/parseDagFile/{dags[0]['file_token']}")
        return True

    def connections(self) -> list[dict]:
        out, offset = [], 0
        while True:
            page = self.call("GET", "/connections", params={"limit": 100, "offset": offset}).json()
            out += page["connections"]
            offset += 100
            if offset >= page["total_entries"]:
                return out


class TykGateway:
    """The Gateway API (`/tyk/…`), authenticated with the gateway secret.

    A replicated gateway (`replicas`: each replica's pod -> its URL) keeps APIs and policies per replica, in its own
    folder: a write, a reload and a cache flush go to every replica (Tyk's POST of an existing id replaces it, so a
    create is safe where a replica has it already; a delete where one lacks it is not an error); `apis()`/`policies()`
    list what every replica holds alike, so apply re-creates what a replica started again without."""

    def __init__(self, url: str, secret: str, replicas: dict[str, str] | None = None):
        self.url = url.rstrip("/")
        self.replicas = {name: u.rstrip("/") for name, u in (replicas or {}).items()}
        self.s = requests.Session()
        self.s.headers["x-tyk-authorization"] = secret

    def call(self, method: str, path: str, *, ok404: bool = False, every: bool | None = None,
             **kw) -> requests.Response:
        """`every`: to every replica (default: for anything but a GET)."""
        every = method != "GET" if every is None else every
        fan_out = every and bool(self.replicas)
        for name, url in (self.replicas.items() if fan_out else [("", self.url)]):
            r = self.s.request(method, f"{url}/tyk{path}", timeout=30, **kw)
            if not r.ok and not ((ok404 or (fan_out and method == "DELETE")) and r.status_code == 404):
                where = f" (replica {name} at {url})" if fan_out else ""
                raise SandboxError(f"Tyk {method} /tyk{path} failed{where}: HTTP {r.status_code} {error_text(r)}",
                                   "check `sandbox logs tyk`; then run the command again.")
        return r

    def apis(self) -> dict[str, dict]:
        """Every OAS API the gateway serves, by API id."""
        return self._alike("/apis/oas", lambda a: a.get("x-tyk-api-gateway", {}).get("info", {}).get("id", ""))

    def policies(self) -> dict[str, dict]:
        return self._alike("/policies", lambda p: p["id"])

    def _alike(self, path: str, key) -> dict[str, dict]:
        """id -> object, of what every replica serves the same (one gateway: what it serves)."""
        views = [{key(o): o for o in self.one(url).call("GET", path).json() or []}
                 for url in list(self.replicas.values()) or [self.url]]
        return {k: v for k, v in views[0].items() if all(view.get(k) == v for view in views[1:])}

    def one(self, url: str) -> TykGateway:
        """The Gateway API of one replica."""
        gw = TykGateway(url, "")
        gw.s = self.s
        return gw

    def reload(self) -> None:
        # `/reload/group` only signals through Redis and returns at once, whatever `block` says; the local
        # reload waits until the new APIs and policies are live.
        self.call("GET", "/reload", every=True, params={"block": "true"})

    def forget_jwks(self, api_id: str) -> None:
        self.call("DELETE", f"/cache/jwks/{api_id}", ok404=True)

    def forget_all_jwks(self) -> None:
        """Every API fetches its JWKS again at its next call (Tyk does not on an unknown `kid`)."""
        for api_id in self.apis():
            if api_id:
                self.forget_jwks(api_id)


def error_text(r: requests.Response) -> str:
    """The gateway's own words for a refusal: the `error` (or `message`) of its JSON body."""
    try:
        body = r.json()
    except ValueError:
        return r.text[:200].strip()
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or "")
    return ""


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
        return AirflowApi(self.endpoints.url("airflow"), self.endpoints.secret("airflow") or "")

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
