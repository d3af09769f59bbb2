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

It also serves the Variables file (the client secrets kept out of the metastore), as LocalFilesystemBackend
did. Installed beside `sandbox_auth` in the folder every Airflow process has on its PYTHONPATH.
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
    def __init__(self, variables_file: str = "", routes_file: str = "", **_ignored):
        super().__init__()
        self.variables_file = Path(variables_file) if variables_file else None
        self.routes_file = Path(routes_file) if routes_file else Path(auth.__file__).parent / auth.ROUTES_FILE
        self._bases: dict[str, tuple[float, object]] = {}  # conn id -> (when, the chain's connection)

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
        if self.variables_file is None:
            return None
        try:
            return json.loads(self.variables_file.read_text()).get(key)
        except (OSError, ValueError):
            return None

    def _token(self, conn_id: str, route: dict) -> str:
        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

        try:
            secret = self.get_variable(route["credential_variable"])
            if secret is None:
                raise auth.TokenError(f"no client secret for {route['client_id']} in {self.variables_file} "
                                      "(run `sandbox apply`)")
            return auth.helper(conn_id, route, lambda _key: secret).token()
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

    def _others(self) -> list:
        from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

        return [b for b in ensure_secrets_backend_loaded() if not isinstance(b, SandboxSecretsBackend)]

    # ---- connections -----------------------------------------------------------------------------
    def get_connection(self, conn_id: str, team_name: str | None = None):
        route = self._routes().get(conn_id)
        if route is None:
            return None  # not the sandbox's: the rest of the chain answers
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

    async def aget_connection(self, conn_id: str):
        """The triggerer's path: the same, without blocking its event loop."""
        import asyncio
        import inspect

        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

        route = self._routes().get(conn_id)
        if route is None:
            return None
        if (base := self._recent(conn_id)) is not None:
            return await asyncio.to_thread(self._credentialed, base, conn_id, route)
        for backend in self._others():
            try:
                method = getattr(backend, "aget_connection", None)
                if method is not None:
                    base = method(conn_id)
                    base = await base if inspect.isawaitable(base) else base
                else:
                    base = await asyncio.to_thread(backend.get_connection, conn_id)
            except AirflowSecretsBackendAccessDenied:
                raise
            except Exception:  # noqa: BLE001
                continue
            if base is not None:
                return await asyncio.to_thread(self._credentialed, self._remember(conn_id, base), conn_id, route)
        return None
