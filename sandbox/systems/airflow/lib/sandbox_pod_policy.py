"""What a task's pod may not take on a cluster, whatever its DAG asks for (`executor_config={"pod_override": …}`).

Airflow's scheduler may create any pod in the sandbox's namespace, so a DAG's documented pod override could mount
the vault's seal key, Keycloak's or Airflow's secrets, a host path, or run as another service account. Airflow calls
`pod_mutation_hook` (through `airflow_local_settings`) on every pod it makes, after the override is merged: this
strips those from the pod and names what it took in the pod's environment, and the listener below says so in the
task's own log. The task runs with what the sandbox gives every task: its connections and nothing else.

Plain attribute access on the Kubernetes client's models (V1Pod, V1Volume, V1EnvVar…): no import of them here.
"""

from __future__ import annotations

import logging
import os

REASON_VARIABLE = "SANDBOX_POD_POLICY"
log = logging.getLogger(__name__)


def _volume_kind(volume) -> str | None:
    """Why a volume may not be mounted in a task's pod, or None."""
    if getattr(volume, "secret", None) is not None:
        return f"Secret {getattr(volume.secret, 'secret_name', '')}"
    if getattr(volume, "host_path", None) is not None:
        return f"host path {getattr(volume.host_path, 'path', '')}"
    projected = getattr(volume, "projected", None)
    for source in (getattr(projected, "sources", None) or []) if projected is not None else []:
        if getattr(source, "secret", None) is not None:
            return f"Secret {getattr(source.secret, 'name', '')} (projected)"
        if getattr(source, "service_account_token", None) is not None:
            return "a service account token (projected)"
    return None


def strip(pod) -> list[str]:
    """Remove from `pod` (in place) every secret or host-path volume and its mounts, every environment value or
    source taken from a Secret, another service account, its API token and the host's namespaces. What was
    removed, as phrases."""
    removed: list[str] = []
    spec = getattr(pod, "spec", None)
    if spec is None:
        return removed
    banned = set()
    kept = []
    for v in getattr(spec, "volumes", None) or []:
        kind = _volume_kind(v)
        if kind:
            banned.add(v.name)
            removed.append(f"volume {v.name!r} ({kind})")
        else:
            kept.append(v)
    if banned:
        spec.volumes = kept
    for c in [*(getattr(spec, "init_containers", None) or []), *(getattr(spec, "containers", None) or [])]:
        mounts = getattr(c, "volume_mounts", None) or []
        if any(m.name in banned for m in mounts):
            c.volume_mounts = [m for m in mounts if m.name not in banned]
        env = getattr(c, "env", None) or []
        from_secret = [e for e in env if getattr(getattr(e, "value_from", None), "secret_key_ref", None) is not None]
        if from_secret:
            c.env = [e for e in env if e not in from_secret]
            removed += [f"{c.name}'s variable {e.name} (from Secret {e.value_from.secret_key_ref.name})"
                        for e in from_secret]
        sources = getattr(c, "env_from", None) or []
        secret_sources = [s for s in sources if getattr(s, "secret_ref", None) is not None]
        if secret_sources:
            c.env_from = [s for s in sources if s not in secret_sources] or None
            removed += [f"{c.name}'s variables from Secret {s.secret_ref.name}" for s in secret_sources]
    for field in ("service_account_name", "service_account"):
        if getattr(spec, field, None):
            removed.append(f"service account {getattr(spec, field)!r}")
            setattr(spec, field, None)
    if getattr(spec, "automount_service_account_token", None) is not False:
        spec.automount_service_account_token = False
    for field in ("host_network", "host_pid", "host_ipc"):
        if getattr(spec, field, None):
            removed.append(f"{field.replace('_', ' ')}")
            setattr(spec, field, False)
    return removed


def pod_mutation_hook(pod) -> None:
    removed = strip(pod)
    if not removed:
        return
    why = ("the sandbox removed from this task's pod: " + "; ".join(removed) + " (a task gets its connections, "
           "not the sandbox's secrets or accounts)")
    log.warning("%s: %s", getattr(getattr(pod, "metadata", None), "name", "a task pod"), why)
    containers = getattr(pod.spec, "containers", None) or []
    if containers:
        from kubernetes.client import V1EnvVar

        base = containers[0]
        base.env = [e for e in (base.env or []) if e.name != REASON_VARIABLE] + [V1EnvVar(REASON_VARIABLE, why)]


# ---- the task's own log: a listener in the task's process (sandbox_pod_policy_plugin registers it) -----------
try:
    from airflow.listeners import hookimpl
except ImportError:  # outside Airflow (the sandbox's own tests)
    def hookimpl(f):
        return f


@hookimpl
def on_task_instance_running(previous_state, task_instance) -> None:
    why = os.environ.get(REASON_VARIABLE)
    if why:
        log.warning("%s", why)
