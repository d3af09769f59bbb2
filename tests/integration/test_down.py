"""Runs last (file order): stops the shared stack and checks nothing is left behind."""

from __future__ import annotations

import json

import psutil
import pytest

from sandbox.ports import is_free
from sandbox.supervisor import OWNER_VAR
from tests.integration.conftest import TEST_PORTS

pytestmark = pytest.mark.integration


def test_down_leaves_no_process_and_frees_every_port(stack):
    pids = {pid for row in stack.status().values() for pid in row["pids"]}
    assert pids
    out = json.loads(stack.cli("down", "-o", "json").stdout)
    assert set(out["stopped"]) >= {"keycloak", "redis", "airflow", "upstream"}
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    marked = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(OWNER_VAR) == str(stack.home):
                marked.append(p.pid)
        except psutil.Error:
            pass
    assert marked == []
    assert [n for n, port in TEST_PORTS.items() if not is_free(port)] == []
    assert {r["state"] for r in stack.status().values()} <= {"stopped", "disabled"}
    # down again: nothing to do, still fine
    assert json.loads(stack.cli("down", "-o", "json").stdout)["stopped"] == []
