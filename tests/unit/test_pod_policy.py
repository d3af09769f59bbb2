"""The task pods' policy (kubernetes runtime) on plain data shaped as the Kubernetes client's models: what a DAG's
`pod_override` may not bring into a task's pod, and what stays."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace as NS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox" / "systems" / "airflow" / "lib"))

import sandbox_pod_policy  # noqa: E402


def _pod():
    """A task pod as Airflow makes it from the sandbox's template, with a DAG's override merged in: the seal key's
    Secret mounted, a variable and a whole Secret in the environment, another account, a host path."""
    base = NS(name="base", env=[NS(name="AIRFLOW__CORE__EXECUTOR", value="KubernetesExecutor", value_from=None),
                                NS(name="SEAL", value=None, value_from=NS(secret_key_ref=NS(name="openbao-secrets",
                                                                                            key="unseal")))],
              env_from=[NS(secret_ref=NS(name="keycloak-secrets"), config_map_ref=None),
                        NS(secret_ref=None, config_map_ref=NS(name="team-settings"))],
              volume_mounts=[NS(name="dags", mount_path="/opt/airflow/dags"), NS(name="seal", mount_path="/seal"),
                             NS(name="host", mount_path="/host")])
    volumes = [NS(name="dags", secret=None, host_path=None, projected=None, persistent_volume_claim=NS()),
               NS(name="seal", secret=NS(secret_name="openbao-secrets"), host_path=None, projected=None),
               NS(name="host", secret=None, host_path=NS(path="/"), projected=None),
               NS(name="token", secret=None, host_path=None,
                  projected=NS(sources=[NS(secret=None, service_account_token=NS(path="token"))]))]
    spec = NS(containers=[base], init_containers=None, volumes=volumes, service_account_name="airflow-scheduler",
              service_account=None, automount_service_account_token=True, host_network=True, host_pid=None,
              host_ipc=None)
    return NS(metadata=NS(name="task-pod"), spec=spec)


def test_a_pod_override_loses_every_secret_host_path_and_account():
    pod = _pod()
    removed = sandbox_pod_policy.strip(pod)
    assert removed == ["volume 'seal' (Secret openbao-secrets)", "volume 'host' (host path /)",
                       "volume 'token' (a service account token (projected))",
                       "base's variable SEAL (from Secret openbao-secrets)",
                       "base's variables from Secret keycloak-secrets", "service account 'airflow-scheduler'",
                       "host network"]
    spec = pod.spec
    assert [v.name for v in spec.volumes] == ["dags"]
    (base,) = spec.containers
    assert [m.name for m in base.volume_mounts] == ["dags"]
    assert [e.name for e in base.env] == ["AIRFLOW__CORE__EXECUTOR"]
    assert [s.config_map_ref.name for s in base.env_from] == ["team-settings"]
    assert spec.service_account_name is None and spec.automount_service_account_token is False
    assert spec.host_network is False


def test_the_sandboxs_own_task_pod_is_left_as_it_is():
    pod = _pod()
    sandbox_pod_policy.strip(pod)
    assert sandbox_pod_policy.strip(pod) == []  # what it leaves is what every task gets


def test_the_reason_reaches_the_tasks_own_log(monkeypatch, caplog):
    monkeypatch.setenv(sandbox_pod_policy.REASON_VARIABLE, "the sandbox removed from this task's pod: volume 'seal'")
    with caplog.at_level("WARNING"):
        sandbox_pod_policy.on_task_instance_running(None, None)
    assert "the sandbox removed from this task's pod: volume 'seal'" in caplog.text
