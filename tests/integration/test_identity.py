"""Identity in the connection: DAG code written as Airflow's HTTP provider documents it — operators and sensors,
sync and deferrable, hooks and plain requests — passes the gateway with nothing but `http_conn_id`; a trigger the
triggerer cannot build fails its own task and nothing else; and no lookup shows a secret."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from sandbox.spec import fixture_path
from tests.integration.conftest import airflow_session

pytestmark = pytest.mark.integration
CONNECTIONS = ("tyk_dev_billing", "tyk_dev_orders", "tyk_prod_billing", "tyk_prod_orders")
KINDS = ("get", "post_json", "post_form", "put", "delete", "paginate", "deferrable", "sensor", "sensor_deferrable",
         "http_hook", "async_hook", "plain_requests")
JWT = re.compile(r"eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}")


@pytest.fixture(scope="module")
def path_dags(stack):
    path = Path(shutil.copy(fixture_path("dags/http_provider_paths.py"), stack.handle.handoff.dag_folder))
    yield stack
    path.unlink(missing_ok=True)


def airflow_processes(stack) -> list[psutil.Process]:
    return [psutil.Process(pid) for pid in stack.status()["airflow"]["pids"] if psutil.pid_exists(pid)]


def family(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            out += [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    return out


def environ(p: psutil.Process) -> dict[str, str]:
    try:
        return p.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}


def task_logs(stack, dag_id: str, run_id: str) -> str:
    base, s = airflow_session(stack)
    tis = s.get(f"{base}/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 200}, timeout=30).json()
    text = []
    for ti in tis["task_instances"]:
        ti_url = f"{base}/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}"
        r = s.get(f"{ti_url}/logs/{max(ti['try_number'], 1)}", params={"full_content": "true"},
                  headers={"Accept": "application/json"}, timeout=30)
        text.append(r.text)
    return "\n".join(text)


def assert_airflow_up(stack) -> None:
    row = stack.status()["airflow"]
    assert row["state"] == "running" and row["healthy"], row


def test_every_http_path_passes_with_only_the_connection_id(path_dags, sandbox_run_dag):
    result = sandbox_run_dag("http_provider_paths", timeout=600)
    want = {f"{c}.{k}": "success" for c in CONNECTIONS for k in KINDS}
    assert result["tasks"] == want, {t: s for t, s in result["tasks"].items() if s != "success"}
    assert result["state"] == "success"
    logs = task_logs(path_dags, "http_provider_paths", result["dag_run_id"])
    assert not JWT.findall(logs), "a token reached a task log"
    secrets = json.loads(path_dags.paths.client_secrets.read_text()).values()
    assert not [v for v in secrets if v in logs]
    assert_airflow_up(path_dags)


def test_the_same_with_sandbox_auth_on_every_operator_including_deferrable(path_dags, sandbox_run_dag):
    result = sandbox_run_dag("http_provider_paths_sandbox_auth", timeout=600)
    bad = {t: s for t, s in result["tasks"].items() if s != "success"}
    assert not bad and len(result["tasks"]) == len(CONNECTIONS) * len(KINDS), bad
    assert_airflow_up(path_dags)  # the triggerer imported sandbox_auth.SandboxAuth and lives on


@pytest.fixture
def unloadable(stack):
    """The DAG of a deferrable task whose auth class lives in its DAG file, removed after (doctor names such a
    class as a fault, and later tests expect a clean DAG folder)."""
    path = Path(shutil.copy(fixture_path("dags/unloadable_trigger.py"), stack.handle.handoff.dag_folder))
    yield stack
    path.unlink(missing_ok=True)


def test_a_trigger_that_cannot_be_built_fails_its_task_and_nothing_else(unloadable, sandbox_run_dag):
    stack = unloadable
    result = sandbox_run_dag("unloadable_trigger", timeout=300)
    assert result["tasks"] == {"team_auth": "failed", "plain": "success"}, result
    logs = task_logs(stack, "unloadable_trigger", result["dag_run_id"])
    assert "the triggerer could not build airflow.providers.http.triggers.http.HttpTrigger" in logs
    assert f"for unloadable_trigger.team_auth, run {result['dag_run_id']}" in logs  # the DAG, task and run
    assert "ModuleNotFoundError" in logs
    assert_airflow_up(stack)
    up = stack.cli(*stack.up_args(), "--no-apply")
    assert up.returncode == 0
    assert_airflow_up(stack)


def test_no_lookup_shows_a_secret(path_dags):
    secrets = list(json.loads(path_dags.paths.client_secrets.read_text()).values())
    base, s = airflow_session(path_dags)
    for conn_id in CONNECTIONS:
        c = s.get(f"{base}/connections/{conn_id}", timeout=10).json()
        assert c["password"] is None and not c["extra"] and not JWT.search(json.dumps(c))
    # `airflow connections get` where the API server runs, with its environment: the route, no credential
    # (Airflow's processes share one environment; a process-title rewrite hides it in some of them)
    env = next(e for p in family(airflow_processes(path_dags)) if (e := environ(p)).get("AIRFLOW__API__PORT"))
    airflow = os.path.join(env["PATH"].split(":")[0], "airflow")
    p = subprocess.run([airflow, "connections", "get", "tyk_dev_orders", "-o", "json"], env=env,
                       capture_output=True, text=True, timeout=120, cwd=env["AIRFLOW_HOME"])
    assert p.returncode == 0, p.stderr
    shown = json.loads(p.stdout)[0]
    assert shown["host"].endswith("/dev/orders") and shown["password"] is None
    assert not JWT.search(p.stdout) and not [v for v in secrets if v in p.stdout]
    # no command line of any Airflow process (workers and task runners included) carries one
    for proc in family(airflow_processes(path_dags)):
        try:
            line = " ".join(proc.cmdline())
        except psutil.NoSuchProcess:
            continue
        assert not JWT.search(line) and not [v for v in secrets if v in line], proc.pid
