"""Airflow's KubernetesExecutor on the kubernetes runtime: every task in a pod of its own. Pure: dicts in, dicts out.

On a cluster the scheduler does not fork its workers: it asks the API server for a pod per task, made from a pod
template. So a task does not inherit the scheduler's environment — it has exactly what the template gives it. The
template is derived from the scheduler's own pod (same image, user, worker environment, DAGs, lib, vault token and
worker HOME), less what a task must not hold: the keys that mint the execution API's tokens and decrypt the
metastore (the `_CMD` secrets), the UI's passwords, and the metastore itself (only the claim's `logs` folder, which
the API server reads the task's log from). The scheduler gets a service account allowed to manage pods in the
sandbox's namespace and nothing else.

What a task pod runs with is the template's environment; `with_env` changes it (a scenario's difference), and the
scheduler reads the template file again for every pod it makes.
"""

from __future__ import annotations

import copy

import yaml

from sandbox.runtime.kubernetes import manifests as km
from sandbox.runtime.kubernetes.forms import PodPerTask

EXECUTOR = "KubernetesExecutor"
LAUNCHER = "airflow-scheduler"  # the unit that runs the executor
TASK_UNIT = "airflow-task"  # the label task pods carry, and the unit `restart` names them by
SERVICE_ACCOUNT = "airflow-scheduler"
TEMPLATE = "airflow-pod-template"  # its ConfigMap
TEMPLATE_DIR = "/opt/airflow/pod-template"
TEMPLATE_FILE = "pod_template.yaml"
HOME_CLAIM_TARGET = "/opt/airflow"
# A task runs user code: it gets none of the keys of Airflow's own trust (minting execution-API tokens, decrypting
# the metastore, the UI's sessions and passwords). The task SDK asks the API server for what it needs.
NOT_FOR_TASKS = ("AIRFLOW__CORE__FERNET_KEY_CMD", "AIRFLOW__API_AUTH__JWT_SECRET_CMD", "AIRFLOW__API__SECRET_KEY_CMD",
                 "AIRFLOW__KEYCLOAK_AUTH_MANAGER__CLIENT_SECRET_CMD", "SANDBOX_LOOPBACK_FORWARD")
NOT_MOUNTED_FOR_TASKS = ("/opt/airflow/sandbox",)  # Airflow's own configuration folder


def executor_env(namespace: str) -> dict[str, str]:
    """What every Airflow process of the sandbox reads on a cluster (the same configuration everywhere)."""
    return {"AIRFLOW__CORE__EXECUTOR": EXECUTOR,
            "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE": namespace,
            "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": f"{TEMPLATE_DIR}/{TEMPLATE_FILE}",
            # a succeeded task's pod goes, a failed one stays for `kubectl logs` (down deletes it)
            "AIRFLOW__KUBERNETES_EXECUTOR__DELETE_WORKER_PODS": "True",
            "AIRFLOW__KUBERNETES_EXECUTOR__DELETE_WORKER_PODS_ON_FAILURE": "False"}


def for_airflow(objects: list[dict], namespace: str) -> list[dict]:
    """Airflow's Jobs and Deployments on the executor: each container its configuration; the scheduler its
    service account and the template."""
    out = copy.deepcopy(objects)
    for obj in out:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        spec = obj["spec"]["template"]["spec"]
        for c in spec["containers"]:
            km.set_env(c, executor_env(namespace))
        if obj["metadata"]["name"] == LAUNCHER:
            spec["serviceAccountName"] = SERVICE_ACCOUNT
            _account_in_secrets(spec)
            spec["volumes"].append({"name": "pod-template", "configMap": {"name": TEMPLATE}})
            spec["containers"][0]["volumeMounts"].append(
                {"name": "pod-template", "mountPath": TEMPLATE_DIR, "readOnly": True})
    return out


def _account_in_secrets(spec: dict) -> None:
    """The service account's token where the Kubernetes client looks (/var/run/secrets/kubernetes.io/…), inside
    the /run/secrets volume the compose file's secrets are in: the automatic mount would have to make a folder in
    that read-only volume, and the container would not start. One projected volume holds both."""
    vol = next(v for v in spec["volumes"] if v["name"] == "secrets")
    sa = "kubernetes.io/serviceaccount"
    secret = vol.pop("secret")
    vol["projected"] = {"defaultMode": secret.get("defaultMode", 0o444), "sources": [
        {"secret": {"name": secret["secretName"], "items": secret["items"]}},
        {"serviceAccountToken": {"path": f"{sa}/token", "expirationSeconds": 3607}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": f"{sa}/ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": f"{sa}/namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}
    spec["automountServiceAccountToken"] = False


def task_pod(launcher: dict, namespace: str, extra_env: dict[str, str] | None = None) -> dict:
    """The pod template: the scheduler's pod (`launcher`: its Deployment, as translated) less what tasks must not
    hold, plus `extra_env`."""
    spec = copy.deepcopy(launcher["spec"]["template"]["spec"])
    base = spec["containers"][0]
    volumes, mounts = [], []
    for m in base["volumeMounts"]:
        vol = next(v for v in spec["volumes"] if v["name"] == m["name"])
        if "secret" in vol or "projected" in vol or m["mountPath"] in NOT_MOUNTED_FOR_TASKS:
            continue
        if m["mountPath"] == HOME_CLAIM_TARGET:  # the metastore's claim: only its logs folder
            m = {**m, "mountPath": f"{HOME_CLAIM_TARGET}/logs", "subPath": "logs"}
        mounts.append(m)
        if vol not in volumes:
            volumes.append(vol)
    env = {e["name"]: e["value"] for e in base["env"] if e["name"] not in NOT_FOR_TASKS}
    env.update(executor_env(namespace))
    env.update(extra_env or {})
    container = {"name": "base", "image": base["image"], "imagePullPolicy": base.get("imagePullPolicy", "IfNotPresent"),
                 "env": [{"name": k, "value": v} for k, v in env.items()], "volumeMounts": mounts}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "placeholder", "labels": km.labels("airflow", TASK_UNIT)},
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
                     "securityContext": spec.get("securityContext", {}), "containers": [container],
                     "volumes": volumes}}


def task_env(template: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in template["spec"]["containers"][0]["env"]}


def objects(launcher: dict, namespace: str, extra_env: dict[str, str] | None = None) -> list[dict]:
    """The scheduler's account and rights (pods in this namespace: what Airflow's chart gives its pod launcher)
    and the template, as a ConfigMap."""
    meta = {"namespace": namespace, "labels": km.labels("airflow")}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "airflow-pod-launcher", **meta},
         "rules": [{"apiGroups": [""], "resources": ["pods"],
                    "verbs": ["create", "list", "get", "patch", "watch", "delete"]},
                   {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                   {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "airflow-pod-launcher", **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "airflow-pod-launcher"},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": TEMPLATE, **meta},
         "data": {TEMPLATE_FILE: yaml.safe_dump(task_pod(launcher, namespace, extra_env), sort_keys=False)}},
    ]


# what the kubernetes runtime asks of Airflow's component: its tasks in pods of their own
FORM = PodPerTask(launcher=LAUNCHER, task_unit=TASK_UNIT, template_configmap=TEMPLATE, template_file=TEMPLATE_FILE,
                  configure=for_airflow, rights=objects, task_env=task_env)
