"""`sandbox up --runtime kubernetes` on a real cluster: every component Ready, the gateway's two replicas on two
nodes, each task in a pod of its own (and DAG code as Airflow documents it passing the gateway there with nothing
but its connection id), the commands on top (audit, the map, up again, doctor, the plugin, logs -f), the two
scenarios only a cluster shows, and `down` leaving the cluster as it was. Runs in file order: the last test takes
the sandbox down."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sandbox.spec import fixture_path
from sandbox.systems.airflow import dag_runs
from tests.cli_checks import kept_fault_is_named_and_reverted, logs_follow_the_upstream
from tests.kube.conftest import PART_OF

COMPONENTS = ("keycloak", "redis", "tyk", "openbao", "airflow", "upstream", "ui")


def test_up_runs_every_component_ready_and_two_gateway_replicas_on_two_nodes(kube):
    assert {c["name"]: c["action"] for c in kube.up_report["components"]} == {n: "started" for n in COMPONENTS}
    assert kube.up_report["smoke"]["ok"], kube.up_report["smoke"]
    rows = kube.status()
    assert all(r["runtime"] == "kubernetes" and r["state"] == "running" and r["healthy"] for r in rows.values()), rows
    for d in kube.items("deployments", "-n", kube.namespace, "-l", PART_OF):
        assert d["status"].get("readyReplicas") == d["spec"]["replicas"], d["metadata"]["name"]
    gateways = kube.items("pods", "-n", kube.namespace, "-l", "app=gateway-tyk")
    assert len(gateways) == 2 and len({p["spec"]["nodeName"] for p in gateways}) == 2, \
        [(p["metadata"]["name"], p["spec"].get("nodeName")) for p in gateways]
    # each forwarded to the host (apply writes to both), named by its pod
    assert set(rows["tyk"]["replicas"]) == {p["metadata"]["name"] for p in gateways}, rows["tyk"]["replicas"]


def test_the_smoke_is_green_and_each_task_ran_in_a_pod_of_its_own(kube):
    report = json.loads(kube.cli("smoke", "-o", "json").stdout)
    assert report["ok"], report
    api = kube.airflow()
    airflow_pods = {p["metadata"]["name"] for p in kube.items("pods", "-n", kube.namespace, "-l",
                                                              "sandbox/component=airflow,sandbox/unit!=airflow-task")}
    for dag_id in ("sandbox_smoke_dev", "sandbox_smoke_prod"):
        (run,) = api.s.get(f"{api.base}/dags/{dag_id}/dagRuns", params={"order_by": "-start_date", "limit": 1},
                           timeout=30).json()["dag_runs"]
        tis = api.s.get(f"{api.base}/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances",
                        timeout=30).json()["task_instances"]
        hosts = {ti["task_id"]: ti["hostname"] for ti in tis if ti["state"] == "success"}
        assert hosts and len(set(hosts.values())) == len(hosts), hosts  # one pod per task
        for task, host in hosts.items():
            # the executor names a task's pod after its DAG and task; none of Airflow's own pods ran it
            assert host not in airflow_pods and host.startswith(dag_id.replace("_", "-")), (task, host)


def test_audit_counts_the_smokes_calls_and_the_map_checks_every_edge_on_the_cluster(kube):
    def counts() -> dict:
        return {(r["dag"], r["task"], r["api"], r["status"]): r["count"]
                for r in json.loads(kube.cli("audit", "-o", "json").stdout)}

    before = counts()
    report = json.loads(kube.cli("smoke", "-o", "json").stdout)
    after = counts()
    made = {(f"sandbox_smoke_{r['env']}", r["service"], f"{r['env']}-{r['service']}", 200) for r in report["rows"]}
    # both replicas write their records to the one Redis: each call counted once, whichever replica served it
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {k: 1 for k in made}
    m = json.loads(kube.cli("map", "-o", "json").stdout)
    by_conn = {e["connection"]: e for e in m["edges"] if e["connection"]}
    assert len(by_conn) == 4 and all(e["state"] == "ok" and e["smoke"] == "ok" and not e["drift"]
                                     for e in by_conn.values()), by_conn
    assert {d["dag"] for d in by_conn["tyk_dev_orders"]["dags"]} >= {"sandbox_smoke_dev"}


def test_a_second_up_changes_nothing(kube):
    before = {d["metadata"]["name"]: d["metadata"]["generation"]
              for d in kube.items("deployments", "-n", kube.namespace, "-l", PART_OF)}
    again = json.loads(kube.cli("up", "-o", "json", "--no-smoke").stdout)
    assert {c["action"] for c in again["components"]} == {"already-running"}
    assert [c for c in again["apply"]["changes"] if c["system"] in ("keycloak", "tyk", "airflow")] == []
    after = {d["metadata"]["name"]: d["metadata"]["generation"]
             for d in kube.items("deployments", "-n", kube.namespace, "-l", PART_OF)}
    assert after == before


def test_doctor_is_green(kube):
    p = kube.cli("doctor", "-o", "json", check=False)
    assert p.returncode == 0, p.stdout
    assert all(d["ok"] for d in json.loads(p.stdout)), p.stdout


def test_dag_code_as_airflow_documents_it_passes_in_task_pods_with_only_the_connection_id(kube):
    path = Path(shutil.copy(fixture_path("dags/http_provider_paths.py"), kube.paths.dags))
    try:
        kube.cli("apply")  # what a team does after changing its DAG folder: the folder goes to the cluster
        result = dag_runs.run_dag(kube.airflow(), "http_provider_paths", None, timeout=900)
        bad = {t: s for t, s in result["tasks"].items() if s != "success"}
        assert result["state"] == "success" and not bad and len(result["tasks"]) == 48, bad
    finally:
        path.unlink(missing_ok=True)
        kube.cli("apply")


def test_the_pytest_plugin_attaches(kube, pytester):
    pytester.makepyfile(test_user="""
def test_user(sandbox, sandbox_session):
    assert sandbox.attached
    assert sandbox.endpoints.components["tyk"].healthy and len(sandbox.endpoints.components["tyk"].replicas) == 2
    r = sandbox_session("dev", "orders").get("/get")
    assert r.status_code == 200, r.text
""")
    result = pytester.runpytest_subprocess(f"--sandbox-home={kube.home}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert kube.status()["airflow"]["state"] == "running"  # an attached session leaves the sandbox running


def test_logs_follow_a_pod(kube):
    logs_follow_the_upstream(kube.env, kube.status()["upstream"]["url"], settle=5, within=30)


@pytest.mark.parametrize("name", ["split-gateway-cache", "task-pod-missing-config"])
def test_a_cluster_scenario_shows_its_symptom_is_named_by_doctor_and_reverts_to_green(kube, name):
    # once here; three times each in bench/bench_repro.py --runtime kubernetes
    kept_fault_is_named_and_reverted(kube, name)


def test_a_task_pod_cannot_take_the_sandboxs_secrets_and_its_log_says_why(kube):
    path = Path(shutil.copy(fixture_path("dags/pod_override_secret.py"), kube.paths.dags))
    try:
        kube.cli("apply")
        api = kube.airflow()
        result = dag_runs.run_dag(api, "pod_override_secret", None, timeout=600)
        assert result["state"] == "failed" and result["tasks"] == {"read_the_seal_key": "failed"}, result
        r = api.s.get(f"{api.base}/dags/pod_override_secret/dagRuns/{result['dag_run_id']}/taskInstances/"
                      "read_the_seal_key/logs/1", params={"full_content": "true"},
                      headers={"Accept": "application/json"}, timeout=30)
        text = json.dumps(r.json())
        assert "the sandbox removed from this task's pod: volume 'seal' (Secret openbao-secrets)" in text, text[-3000:]
        assert "service account 'airflow-scheduler'" in text
        assert "No such file or directory: '/seal/openbao_unseal_key'" in text, text[-3000:]
    finally:
        path.unlink(missing_ok=True)
        kube.cli("apply")


def test_down_leaves_nothing_of_the_sandbox_in_the_cluster_and_another_namespace_untouched(kube):
    # another namespace's object, even one that carries the sandbox's label, is not the sandbox's to delete
    key, value = PART_OF.split("=")
    kube.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "sandbox-test-bystander", "namespace": "default", "labels": {key: value}}}))
    try:
        out = json.loads(kube.cli("down", "-o", "json").stdout)
        assert set(out["stopped"]) == set(COMPONENTS), out
        claims = kube.items("persistentvolumeclaims", "-n", kube.namespace)
        assert claims and all(c["metadata"]["labels"]["sandbox/component"] for c in claims)  # kept without --volumes
        kept = [o for o in labelled(kube) if o != ("ConfigMap", "default", "sandbox-test-bystander")]
        assert {o[0] for o in kept} == {"PersistentVolumeClaim", "Namespace"}, kept  # what holds the claims
        kube.cli("down", "--volumes")
        assert labelled(kube) == [("ConfigMap", "default", "sandbox-test-bystander")]
        assert not kube.kubectl("get", "namespace", kube.namespace, "--ignore-not-found", "-o", "name").strip()
        assert not [p for p in psutil_processes() if str(kube.home) in " ".join(p)]  # no forward left
    finally:
        kube.kubectl("delete", "configmap", "sandbox-test-bystander", "-n", "default", "--ignore-not-found")


def labelled(kube) -> list[tuple[str, str, str]]:
    """Every object of every kind the cluster lists (namespaced and cluster-scoped) that carries the sandbox's
    label: (kind, namespace, name) — but another sandbox's namespace and what it holds (a shared cluster; the CI
    machine's kind cluster keeps an interrupted run's sandbox, whose home was elsewhere)."""
    kinds = [k for k in kube.kubectl("api-resources", "--verbs=list", "-o", "name").split() if k
             and not k.startswith("events")]
    found = [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
             for o in kube.items(",".join(kinds), "-A", "-l", PART_OF)]
    others = {name for kind, _, name in found if kind == "Namespace" and name != kube.namespace}
    return sorted(o for o in found if o[1] not in others and not (o[0] == "Namespace" and o[2] in others))


def psutil_processes() -> list[list[str]]:
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline"]):
        out.append(p.info["cmdline"] or [])
    return out

