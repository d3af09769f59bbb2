"""A test session's hold on a sandbox: start it or attach to it, seed it, and stop it when the last user leaves.

Used by the pytest plugin; kept free of pytest so the rules are plain code. Several processes (pytest-xdist
workers, or two test runs) may hold one sandbox: the first starts it, the others attach, and the last one
out stops it, unless asked to keep it or it was already running before any of them came.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from sandbox import reconcile
from sandbox.apply.airflow import AirflowApi
from sandbox.auth import ClientCredentialsAuth
from sandbox.errors import SandboxError
from sandbox.provision import file_lock
from sandbox.reconcile import Report
from sandbox.runtime.base import Endpoints
from sandbox.runtime.local import LocalRuntime
from sandbox.spec import Spec
from sandbox.spec import load as load_spec

USERS_FILE = ".session-users.json"
LEFT_OUT_FILE = ".session-left-out.json"  # read by the test report (also of an xdist controller)


@dataclass
class Handle:
    """What a test gets: endpoints, the spec, what apply did, and helpers that go through the real stack."""

    home: Path
    spec: Spec
    endpoints: Endpoints
    apply_report: Report | None
    attached: bool  # True when the stack was already running
    left_out: dict[str, str] = field(default_factory=dict)  # component -> why
    setup_seconds: float = 0.0
    _auths: dict = field(default_factory=dict, repr=False)

    def _auth(self, account: str, env: str) -> ClientCredentialsAuth:
        """One cached token helper per (account, env): tokens are reused until close to expiry."""
        key = (account, env)
        if key not in self._auths:
            url = reconcile.token_url(self.spec, self.endpoints, account, env)
            self._auths[key] = ClientCredentialsAuth(url, account, reconcile.client_secret(self.home, env, account))
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
        af = self.endpoints.components["airflow"]
        api = AirflowApi(af.url, af.secret or "")
        with api.s:
            return _run(api.s, api.url + "/api/v2", dag_id, conf, timeout)


def _run(s: requests.Session, base: str, dag_id: str, conf: dict | None, timeout: float) -> dict:
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


def _holders(home: Path) -> tuple[list[int], bool]:
    """(live holder pids, whether a session started the stack); the flag only counts while someone holds it."""
    try:
        raw = json.loads((home / USERS_FILE).read_text())
        pids, started = [p for p in raw["users"] if psutil.pid_exists(p)], bool(raw.get("started"))
    except (OSError, ValueError, KeyError, TypeError):
        return [], False
    return pids, started and bool(pids)


def _write_users(home: Path, users: list[int], started: bool) -> None:
    (home / USERS_FILE).write_text(json.dumps({"users": users, "started": started}))


def unavailable(rt: LocalRuntime) -> dict[str, str]:
    """Components that cannot be provisioned on this machine, with the reason (provisions the others)."""
    return {r.name: r.detail for r in rt.provision([], lambda *_: None) if not r.ok}


def acquire(home: Path, spec_path: Path | None, without: list[str], progress) -> Handle:
    """Start (or attach to) the sandbox at `home` and converge it to the spec."""
    t0 = time.monotonic()
    spec = load_spec(spec_path)  # fails before anything starts
    home.mkdir(parents=True, exist_ok=True)
    rt = LocalRuntime(home=home)
    left_out: dict[str, str] = {}
    if "unavailable" in without:
        left_out = unavailable(rt)
        without = [w for w in without if w != "unavailable"] + list(left_out)
    left_out.update({w: "left out by option" for w in without if w not in left_out})
    with file_lock(home / ".session.lock"):
        wanted = [n for n in rt.components if n not in without]
        status = {s.name: s for s in rt.status()}
        attached = all(status[n].state == "running" and status[n].healthy for n in wanted)
        # "started": a session brought it up, so the last holder stops it; a stack that was already running
        # when the first holder came (someone's `sandbox up`) is left running.
        users, started = _holders(home)
        try:
            if not attached:
                rt.up(without, {}, progress)
                started = True
            endpoints = rt.endpoints()
            report = reconcile.apply(spec, endpoints, home)
        except BaseException:
            if not attached:  # it was not running before us: leave nothing behind a failed setup
                rt.down()
            raise
        _write_users(home, users + [os.getpid()], started)
        (home / LEFT_OUT_FILE).write_text(json.dumps(left_out))
    return Handle(home, spec, endpoints, report, attached, left_out, time.monotonic() - t0)


def left_out(home: Path) -> dict[str, str]:
    """What the last session start left out, and why."""
    try:
        return json.loads((home / LEFT_OUT_FILE).read_text())
    except (OSError, ValueError):
        return {}


def hold(home: Path) -> None:
    """Hold the sandbox without starting it: the pytest-xdist controller does, so the stack outlives every worker
    (a worker that finishes early would otherwise be the last holder and stop it under the others)."""
    home.mkdir(parents=True, exist_ok=True)
    with file_lock(home / ".session.lock"):
        users, started = _holders(home)
        _write_users(home, users + [os.getpid()], started)


def release(home: Path, keep: bool) -> bool:
    """Drop this process's hold; the last holder stops the sandbox if a session started it. True if stopped."""
    with file_lock(home / ".session.lock"):
        holders, started = _holders(home)
        users = [p for p in holders if p != os.getpid()]
        _write_users(home, users, started and bool(users))
        if users or keep or not started:
            return False
        LocalRuntime(home=home).down()
        return True
