"""Airflow's worker-side secrets backend for the sandbox: the credential travels with the connection.

Configured as `[workers] secrets_backend`, so it answers where user code runs — task processes (operators,
sensors, hooks, `@task` code), the triggerer's trigger runner (deferrable operators and sensors) and the DAG
file processor's parsing — and never in server processes (API server, scheduler, `airflow connections get`),
which see the metastore's connection: the route, no credential.

For a connection id the sandbox manages (one of the routes file's), it resolves the connection the way the rest
of Airflow's chain would (the `AIRFLOW_CONN_*` variable, then the metastore through the Execution API) and adds
a bearer token of the route's service account: `password` is the token and the extra's `Authorization` header
carries it, which Airflow's HTTP hooks, sync and async, send as a request header. A connection that carries
credentials of its own (a login or a password someone set) is handed back untouched: the sandbox does not
hide that drift, `sandbox doctor` names it. Tokens are fetched with client credentials, cached per process and
refreshed once 80 % of their life has passed. Any other connection id falls through to the rest of the chain.

Within one process, a resolved connection is reused for a few seconds (BASE_TTL) before the chain is asked again:
a task or trigger that resolves its connection in a loop (pagination, a sensor's pokes, many hooks) pays Airflow's
own Execution API round trip (~5 ms here) once, not per lookup. The token is still checked on every lookup.

A token that cannot be had is an authoritative refusal (AirflowSecretsBackendAccessDenied) naming the
connection, the client and the IdP's words — never a silent fallback to the credential-less metastore copy.

The client secret itself is read from the vault (OpenBao's KV v2 mount, `<mount>/data/variables/<key>`, field
`value`, the layout of the HashiCorp provider's VaultBackend) with Airflow's own vault token, which its policy
limits to those paths. A vault that refuses (sealed, the token expired or revoked, a path outside the policy)
is a refusal naming the vault's words, never a fallback. Installed beside `sandbox_auth` in the folder every
Airflow process has on its PYTHONPATH.

A team's own `[secrets] backend` (HashiCorp's VaultBackend, say) keeps working: Airflow's workers use it only when
`[workers] secrets_backend` is unset, and the sandbox sets that to this class, so this one asks the team's backend
in its place — first, as Airflow would — for every connection and variable, with Airflow's own semantics: an error
of the team's backend is Airflow's chain's to handle (logged at DEBUG, the next backend answers), so what a
team's production Airflow does, the sandbox's does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import sandbox_auth as auth  # the copy beside this file
from airflow.sdk.bases.secrets_backend import BaseSecretsBackend

MARK = "sandbox:"  # begins every refusal this backend raises (the smoke's probe tells the token hop by it)
BASE_TTL = 5.0  # seconds a connection resolved from the rest of the chain is reused in this process


class SandboxSecretsBackend(BaseSecretsBackend):
    def __init__(self, vault_url: str = "", vault_token_file: str = "", vault_mount: str = "airflow",
                 routes_file: str = "", **_ignored):
        super().__init__()
        self.vault_url = vault_url.rstrip("/")
        self.vault_token_file = Path(vault_token_file) if vault_token_file else None
        self.vault_mount = vault_mount
        self.routes_file = Path(routes_file) if routes_file else Path(auth.__file__).parent / auth.ROUTES_FILE
        self._bases: dict[str, tuple[float, object]] = {}  # conn id -> (when, the chain's connection)
        self._secrets: dict[str, tuple[float, str]] = {}  # variable -> (when, the vault's value)
        self._team_backend = None  # the team's [secrets] backend once built; False: none is configured

    def _recent(self, conn_id: str):
        hit = self._bases.get(conn_id)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < BASE_TTL else None

    def _remember(self, conn_id: str, base):
        self._bases[conn_id] = (time.monotonic(), base)
        return base

    # ---- what the sandbox keeps ------------------------------------------------------------------
    def _routes(self) -> dict[str, dict]:
        try:  # read per lookup: `sandbox apply` rewrites it while Airflow runs
            return json.loads(self.routes_file.read_text())
        except (OSError, ValueError):
            return {}

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        """A route's client secret (`SandboxAuth` reads it as a Variable); any other key is the chain's."""
        if key not in {r.get("credential_variable") for r in self._routes().values()}:
            team = self._team()  # errors are the chain's, as if the team's backend stood here
            return team.get_variable(key, team_name) if team else None
        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

        try:
            return self._client_secret(key)
        except auth.TokenError as e:
            raise AirflowSecretsBackendAccessDenied(f"{MARK} {e}") from e

    def _client_secret(self, key: str) -> str:
        """The client secret from the vault (reused for BASE_TTL), or a TokenError in the vault's words."""
        hit = self._secrets.get(key)
        if hit is not None and time.monotonic() - hit[0] < BASE_TTL:
            return hit[1]
        value = self._read_vault(key)
        self._secrets[key] = (time.monotonic(), value)
        return value

    def _read_vault(self, key: str) -> str:
        import requests

        if not (self.vault_url and self.vault_token_file):
            # an Airflow process started by an earlier version of the sandbox (its secrets lived in a file then)
            raise auth.TokenError("this Airflow process was started without the sandbox's vault settings (an "
                                  "earlier version of the sandbox started it): run `sandbox down`, then `sandbox up`")
        try:
            token = self.vault_token_file.read_text().strip()
        except OSError as e:
            raise auth.TokenError(f"Airflow's vault token {self.vault_token_file} cannot be read "
                                  f"({e.strerror}; run `sandbox up`)") from e
        url = f"{self.vault_url}/v1/{self.vault_mount}/data/variables/{key}"
        try:
            r = requests.get(url, headers={"X-Vault-Token": token}, timeout=5)
        except requests.RequestException as e:
            raise auth.TokenError(f"the vault at {self.vault_url} unreachable: {type(e).__name__}") from e
        if r.status_code == 404:
            raise auth.TokenError(f"no client secret {key} in the vault (run `sandbox apply`)")
        if not r.ok:
            try:
                words = "; ".join(r.json().get("errors") or []) or r.reason
            except ValueError:
                words = r.reason
            raise auth.TokenError(f"the vault refused Airflow's read of {self.vault_mount}/variables/{key}: "
                                  f"{r.status_code} {words}")
        value = r.json().get("data", {}).get("data", {}).get("value")
        if value is None:
            raise auth.TokenError(f"the vault's {self.vault_mount}/variables/{key} has no field `value`")
        return value

    def _token(self, conn_id: str, route: dict) -> str:
        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

        try:
            return auth.helper(conn_id, route, self._client_secret).token()
        except auth.TokenError as e:
            raise AirflowSecretsBackendAccessDenied(f"{MARK} {conn_id}: {e}") from e

    def _credentialed(self, base, conn_id: str, route: dict):
        if base is None:
            return None
        fields = {k: getattr(base, k, None) for k in ("login", "password", "extra")}
        added = auth.credentialed(fields, lambda: self._token(conn_id, route))
        import attrs

        if added is fields:  # its own credentials: left for Airflow to use as they are (doctor names the drift)
            return attrs.evolve(base)  # a copy: the one remembered for BASE_TTL is not the caller's to change
        return attrs.evolve(base, password=added["password"], extra=added["extra"])

    def _team(self):
        """The team's `[secrets] backend`, built once per process as Airflow builds it (None when unset)."""
        if self._team_backend is None:
            from airflow.sdk.configuration import conf
            from airflow.sdk.definitions.connection import Connection
            from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

            try:
                backend = conf._get_custom_secret_backend(worker_mode=False)
            except Exception as e:  # noqa: BLE001 - a broken setting is a refusal, not a silent skip
                raise AirflowSecretsBackendAccessDenied(
                    f"{MARK} the team's [secrets] backend could not be built: {type(e).__name__}: {e}") from e
            if backend is not None and not isinstance(backend, SandboxSecretsBackend):
                backend._set_connection_class(Connection)
            else:
                backend = False
            self._team_backend = backend
        return self._team_backend or None

    def _others(self) -> list:
        from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

        team = self._team()
        return [*([team] if team else []),
                *(b for b in ensure_secrets_backend_loaded() if not isinstance(b, SandboxSecretsBackend))]

    # ---- connections -----------------------------------------------------------------------------
    def get_connection(self, conn_id: str, team_name: str | None = None):
        route = self._routes().get(conn_id)
        if route is None:  # not the sandbox's: the team's backend, then the rest of the chain answers
            team = self._team()
            return team.get_connection(conn_id) if team else None
        if (base := self._recent(conn_id)) is not None:
            return self._credentialed(base, conn_id, route)
        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

        for backend in self._others():
            try:
                base = backend.get_connection(conn_id)
            except AirflowSecretsBackendAccessDenied:
                raise
            except Exception:  # noqa: BLE001 - as Airflow's own chain does: the next backend answers
                continue
            if base is not None:
                return self._credentialed(self._remember(conn_id, base), conn_id, route)
        return None

    @staticmethod
    async def _ask(backend, conn_id: str):
        """A backend's connection without blocking the event loop (its async method where it has one)."""
        import asyncio
        import inspect

        method = getattr(backend, "aget_connection", None)
        if method is None:
            return await asyncio.to_thread(backend.get_connection, conn_id)
        base = method(conn_id)
        return await base if inspect.isawaitable(base) else base

    async def aget_connection(self, conn_id: str):
        """The triggerer's path: the same, without blocking its event loop."""
        import asyncio

        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

        route = self._routes().get(conn_id)
        if route is None:
            team = self._team()
            return await self._ask(team, conn_id) if team else None
        if (base := self._recent(conn_id)) is not None:
            return await asyncio.to_thread(self._credentialed, base, conn_id, route)
        for backend in self._others():
            try:
                base = await self._ask(backend, conn_id)
            except AirflowSecretsBackendAccessDenied:
                raise
            except Exception:  # noqa: BLE001
                continue
            if base is not None:
                return await asyncio.to_thread(self._credentialed, self._remember(conn_id, base), conn_id, route)
        return None
