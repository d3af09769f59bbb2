"""The plugin's function fixtures against the session's real stack."""

from __future__ import annotations

import shutil

import pytest

from sandbox.spec import fixture_path
from sandbox.systems.airflow.token_helper import decode_claims

pytestmark = pytest.mark.integration

def test_sandbox_token_fixture(sandbox_token):
    claims = decode_claims(sandbox_token("airflow", env="dev"))
    assert "orders.read" in claims["scope"].split() and claims["aud"] == "sandbox-gateway"


def test_sandbox_run_dag_fixture(sandbox, sandbox_run_dag):
    shutil.copy(fixture_path("dags/fixture_probe.py"), sandbox.handoff.dag_folder)
    ok = sandbox_run_dag("fixture_probe", conf={"word": "hello"}, timeout=240)
    assert ok["state"] == "success" and ok["tasks"] == {"echo": "success", "fail_if_asked": "success"}
    bad = sandbox_run_dag("fixture_probe", conf={"word": "hello", "fail": True}, timeout=240)
    assert bad["state"] == "failed" and bad["tasks"]["fail_if_asked"] == "failed"

