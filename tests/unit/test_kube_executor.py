"""Airflow's KubernetesExecutor on the kubernetes runtime: the task pods' template and the scheduler's rights,
held to the scheduler's own translated pod."""

import yaml

from sandbox.runtime.kubernetes import manifests as km
from sandbox.systems.airflow import kube_executor as kx
from tests.unit.test_kube_manifests import SECRETS, rt, tr  # noqa: F401 (fixtures)

NS = "sandbox-test"


def launcher(tr):  # noqa: F811
    return next(w for w in tr.workloads("airflow") if w["metadata"]["name"] == kx.LAUNCHER)


def template(tr, extra=None):  # noqa: F811
    (cm,) = [o for o in kx.objects(launcher(tr), NS, extra) if o["kind"] == "ConfigMap"]
    return yaml.safe_load(cm["data"][kx.TEMPLATE_FILE])


def test_every_airflow_process_runs_the_executor_and_only_the_scheduler_holds_an_account(tr):  # noqa: F811
    patched = kx.for_airflow(tr.jobs("airflow") + tr.workloads("airflow"), NS)
    for obj in (o for o in patched if o["kind"] in ("Deployment", "Job")):
        spec = obj["spec"]["template"]["spec"]
        env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
        assert env["AIRFLOW__CORE__EXECUTOR"] == kx.EXECUTOR, obj["metadata"]["name"]
        assert env["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"] == NS
        assert spec.get("serviceAccountName") == (kx.SERVICE_ACCOUNT if obj["metadata"]["name"] == kx.LAUNCHER
                                                  else None)
        assert spec["automountServiceAccountToken"] is False  # the scheduler's token comes in its projected volume


def test_the_schedulers_token_lies_where_the_client_looks_inside_its_secrets_volume(tr):  # noqa: F811
    (sched,) = [o for o in kx.for_airflow(tr.workloads("airflow"), NS) if o["metadata"]["name"] == kx.LAUNCHER]
    spec = sched["spec"]["template"]["spec"]
    (vol,) = [v for v in spec["volumes"] if v["name"] == "secrets"]
    sources = vol["projected"]["sources"]
    paths = {i["path"] for s in sources for i in (s.get("secret") or s.get("configMap") or s.get("downwardAPI")
                                                   or {"items": [s["serviceAccountToken"]]})["items"]}
    assert {"kubernetes.io/serviceaccount/token", "kubernetes.io/serviceaccount/ca.crt",
            "kubernetes.io/serviceaccount/namespace", "airflow_fernet_key"} <= paths
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "secrets")
    assert mount["mountPath"] == km.SECRETS_DIR  # /var/run is /run: the client reads /var/run/secrets/kubernetes.io/…


def test_a_task_pod_holds_what_a_worker_needs_and_none_of_airflows_own_keys(tr):  # noqa: F811
    pod = template(tr)
    (c,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    (patched,) = kx.for_airflow([launcher(tr)], NS)
    sched = {e["name"]: e["value"] for e in patched["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert c["name"] == "base" and c["image"] == launcher(tr)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert not set(kx.NOT_FOR_TASKS) & set(env)
    assert {k: v for k, v in sched.items() if k not in kx.NOT_FOR_TASKS} == {
        k: v for k, v in env.items() if k in sched}  # the worker's settings, as the scheduler has them
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert {"/opt/airflow/dags", "/opt/airflow/sandbox-lib", "/opt/airflow/secrets", "/opt/airflow/worker-home",
            "/opt/airflow/logs"} == set(mounts)
    assert mounts["/opt/airflow/logs"]["subPath"] == "logs"  # the claim's logs, not the metastore beside them
    assert not any("secret" in v or "projected" in v for v in pod["spec"]["volumes"])
    assert pod["spec"]["automountServiceAccountToken"] is False and pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"][km.UNIT] == kx.TASK_UNIT  # `down` finds what a failed task left


def test_a_difference_for_the_tasks_goes_into_their_template_only(tr):  # noqa: F811
    env = kx.task_env(template(tr, {"AIRFLOW__WORKERS__SECRETS_BACKEND": ""}))
    assert env["AIRFLOW__WORKERS__SECRETS_BACKEND"] == ""
    assert kx.task_env(template(tr))["AIRFLOW__WORKERS__SECRETS_BACKEND"]


def test_the_schedulers_rights_are_pods_in_its_own_namespace(tr):  # noqa: F811
    objs = {o["kind"]: o for o in kx.objects(launcher(tr), NS)}
    assert set(objs) == {"ServiceAccount", "Role", "RoleBinding", "ConfigMap"}  # no ClusterRole: nothing cluster-wide
    assert {r for rule in objs["Role"]["rules"] for r in rule["resources"]} == {"pods", "pods/log", "events"}
    assert objs["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": kx.SERVICE_ACCOUNT, "namespace": NS}]
    assert all(o["metadata"]["namespace"] == NS and o["metadata"]["labels"][km.PART_OF] == km.PROJECT
               for o in objs.values())
