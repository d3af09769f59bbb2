"""Airflow's REST API v2, the only code of the sandbox that speaks it."""

from __future__ import annotations

import requests

from sandbox.errors import SandboxError


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
