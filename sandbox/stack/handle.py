"""What a test gets from the `sandbox` fixture: where the stack is, the spec, what apply did, and helpers that
go through the real stack (tokens, a gateway session, DAG runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import requests

from sandbox.clients import Clients
from sandbox.commands import smoke
from sandbox.commands.accounts import auth_for
from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths
from sandbox.reconcile import Report
from sandbox.runtime.base import AirflowHandoff, Endpoints
from sandbox.spec import Spec
from sandbox.systems.airflow import dag_runs
from sandbox.systems.airflow.token_helper import ClientCredentialsAuth


@dataclass
class Handle:
    paths: SandboxPaths
    spec: Spec
    endpoints: Endpoints
    handoff: AirflowHandoff  # where apply writes what the runtime's Airflow reads
    apply_report: Report | None
    attached: bool  # True when the stack was already running
    left_out: dict[str, str] = field(default_factory=dict)  # component -> why
    setup_seconds: float = 0.0
    runtime: str = "local"  # the runtime it runs on (a snapshot says it)
    _auths: dict = field(default_factory=dict, repr=False)

    @property
    def home(self) -> Path:
        return self.paths.home

    @cached_property
    def clients(self) -> Clients:
        return Clients(self.endpoints)

    def _auth(self, account: str, env: str) -> ClientCredentialsAuth:
        """One cached token helper per (account, env): tokens are reused until close to expiry."""
        key = (account, env)
        if key not in self._auths:
            self._auths[key] = auth_for(self.spec, self.endpoints, self.paths, account, env)
        return self._auths[key]

    def token(self, account: str, env: str = "dev") -> str:
        return self._auth(account, env).token()

    def session(self, env: str, service: str, as_: str | None = None) -> requests.Session:
        """A requests.Session whose relative paths go to the gateway route of `service` in `env`."""
        if "tyk" in self.left_out or self.endpoints.components["tyk"].state != "running":
            raise SandboxError(f"No gateway session: tyk is not running ({self.left_out.get('tyk', 'stopped')}).")
        s = _BaseUrlSession(f"{self.endpoints.url('tyk')}/{env}/{service}/")
        s.auth = self._auth(as_ or self.spec.airflow_account, env)
        return s

    @property
    def last_smoke(self) -> smoke.SmokeReport | None:
        """The last smoke's report (`sandbox up`, `sandbox smoke` or `smoke()`), or None."""
        return smoke.last(self.paths)

    def smoke(self, env: str | None = None, service: str | None = None) -> smoke.SmokeReport:
        """Run the smoke DAGs now: every connection (of `env`, of `service`) through the gateway."""
        return smoke.run(self.spec, self.endpoints, self.paths, env, service)

    def run_dag(self, dag_id: str, conf: dict | None = None, timeout: float = 180) -> dict:
        """Trigger `dag_id` through the REST API, wait for it to finish; its state and its tasks' states."""
        return dag_runs.run_dag(self.clients.airflow, dag_id, conf, timeout)


class _BaseUrlSession(requests.Session):
    def __init__(self, base: str):
        super().__init__()
        self.base = base

    def request(self, method, url, *a, **kw):
        return super().request(method, url if "://" in url else self.base + url.lstrip("/"), *a, **kw)
