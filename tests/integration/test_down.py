"""`sandbox down` on a whole stack of its own (own home, own ports), so it depends on no test order."""

from __future__ import annotations

import json
import os
import subprocess

import psutil
import pytest

from sandbox.host.ports import is_free
from sandbox.host.supervisor import OWNER_VAR
from tests.integration.conftest import sandbox

pytestmark = pytest.mark.integration
PORTS = {"keycloak": 29581, "keycloak-management": 29591, "redis": 29579, "tyk": 29582, "airflow": 29580,
         "upstream": 29583, "openbao": 29584, "ui": 29590}


def test_down_leaves_no_process_and_frees_every_port(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "SANDBOX_HOME": str(home), "SANDBOX_PORTS": ",".join(f"{k}={v}" for k, v in PORTS.items())}
    env.pop("SANDBOX_WITHOUT", None)
    try:
        sandbox("up", "--no-smoke", "-o", "json", env=env)  # seeded: the sandbox's page runs too
        status = json.loads(sandbox("status", "-o", "json", env=env).stdout)
        pids = {pid for row in status for pid in row["pids"]}
        assert {row["name"] for row in status if row["state"] == "running"} == {
            "keycloak", "redis", "tyk", "openbao", "airflow", "upstream", "ui"}
        # bystanders that look like a title-rewritten sandbox process (no environment at all): one working in the
        # home (not a component's folder), one of another uid in Airflow's data folder — neither is the sandbox's
        bystanders = [subprocess.Popen(["env", "-i", "/bin/sleep", "300"], cwd=home, start_new_session=True),
                      subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "-i",
                                        "/bin/sleep", "300"], cwd=home / "data" / "airflow", start_new_session=True)]
        out = json.loads(sandbox("down", "-o", "json", env=env).stdout)
        assert set(out["stopped"]) == {"keycloak", "redis", "tyk", "openbao", "airflow", "upstream", "ui"}
        assert [b.poll() for b in bystanders] == [None, None]  # both alive
        for b in bystanders:
            b.kill()
            b.wait()
        assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        marked = []
        for p in psutil.process_iter():
            try:
                if p.environ().get(OWNER_VAR) == str(home):
                    marked.append(p.pid)
            except psutil.Error:
                pass
        assert marked == []
        assert [n for n, port in PORTS.items() if not is_free(port)] == []
        assert {r["state"] for r in json.loads(sandbox("status", "-o", "json", env=env).stdout)} == {"stopped"}
        # down again: nothing to do, still fine
        assert json.loads(sandbox("down", "-o", "json", env=env).stdout)["stopped"] == []
    finally:
        sandbox("down", "--force", env=env, check=False)
