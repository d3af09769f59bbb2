"""What a test gets from the `sandbox` fixture: where the stack is, the spec, what apply did, and helpers that
go through the real stack (tokens, a gateway session, DAG runs)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import requests

from sandbox.accounts import auth_for
from sandbox.auth import ClientCredentialsAuth
from sandbox.clients import AirflowApi, Clients
from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths
from sandbox.reconcile import Report
from sandbox.runtime.base import AirflowHandoff, Endpoints
from sandbox.spec import Spec


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

    def run_dag(self, dag_id: str, conf: dict | None = None, timeout: float = 180) -> dict:
        """Trigger `dag_id` through the REST API, wait for it to finish; its state and its tasks' states."""
        return run_dag(self.clients.airflow, dag_id, conf, timeout)


def run_dag(api: AirflowApi, dag_id: str, conf: dict | None, timeout: float) -> dict:
    s, base = api.s, api.base
    deadline = time.monotonic() + timeout
    while (r := s.patch(f"{base}/dags/{dag_id}", json={"is_paused": False}, timeout=30)).status_code == 404:
        if time.monotonic() > deadline:
            raise SandboxError(f"Airflow does not know DAG {dag_id!r}.",
                               "check the DAG folder and its import errors.")
        time.sleep(1)  # the dag-processor has not parsed it yet
    r.raise_for_status()
    run = s.post(f"{base}/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}, timeout=30)
    run.raise_for_status()
    run_id = run.json()["dag_run_id"]
    while True:
        state = s.get(f"{base}/dags/{dag_id}/dagRuns/{run_id}", timeout=30).json()["state"]
        if state in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            raise SandboxError(f"DAG run {run_id} of {dag_id} is still {state} after {timeout:.0f}s.",
                               "look at its task logs in the Airflow UI, or pass a longer timeout.")
        time.sleep(0.5)
    tis = s.get(f"{base}/dags/{dag_id}/dagRuns/{run_id}/taskInstances", timeout=30).json()["task_instances"]
    return {"dag_run_id": run_id, "state": state, "tasks": {t["task_id"]: t["state"] for t in tis}}


class _BaseUrlSession(requests.Session):
    def __init__(self, base: str):
        super().__init__()
        self.base = base

    def request(self, method, url, *a, **kw):
        return super().request(method, url if "://" in url else self.base + url.lstrip("/"), *a, **kw)
