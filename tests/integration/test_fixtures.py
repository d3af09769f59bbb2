"""The plugin's function fixtures against the session's real stack."""

from __future__ import annotations

import textwrap

import pytest

from sandbox.auth import decode_claims

pytestmark = pytest.mark.integration

DAG = textwrap.dedent('''
    from airflow.sdk import dag, task

    @dag(dag_id="fixture_probe", schedule=None, catchup=False)
    def fixture_probe():
        @task
        def echo(**context):
            assert context["dag_run"].conf["word"] == "hello"
            return "ok"

        @task
        def fail_if_asked(**context):
            if context["dag_run"].conf.get("fail"):
                raise RuntimeError("asked to fail")

        echo() >> fail_if_asked()

    fixture_probe()
''')


def test_sandbox_token_fixture(sandbox_token):
    claims = decode_claims(sandbox_token("airflow", env="dev"))
    assert "orders.read" in claims["scope"].split() and claims["aud"] == "sandbox-gateway"


def test_sandbox_run_dag_fixture(sandbox, sandbox_run_dag):
    (sandbox.home / "dags" / "fixture_probe.py").write_text(DAG)
    ok = sandbox_run_dag("fixture_probe", conf={"word": "hello"}, timeout=240)
    assert ok["state"] == "success" and ok["tasks"] == {"echo": "success", "fail_if_asked": "success"}
    bad = sandbox_run_dag("fixture_probe", conf={"word": "hello", "fail": True}, timeout=240)
    assert bad["state"] == "failed" and bad["tasks"]["fail_if_asked"] == "failed"

