"""What a system runs differently on a cluster, declared by the system (`Component.cluster_form`), so that the
kubernetes runtime names none: a replicated gateway from its vendor's chart, a scheduler whose tasks run in pods of
their own. Anything else runs as the compose file's services, translated (`manifests`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.host.provision import Say


@dataclass(frozen=True)
class ReplicatedChart:
    """The component runs from a chart its vendor publishes, one replica a schedulable node up to `max_replicas`,
    behind a Service of its compose name; each replica keeps its own state, so each is forwarded to a port of its
    own (`replica_urls`) and the Service can be narrowed to one (`serve_only`)."""

    unit: str  # the chart's Deployment, and its pods' `app` label
    port: int
    max_replicas: int
    # (cache, namespace, image, replicas, the sandbox's secrets, say) -> every object it needs, labelled or not
    objects: Callable[[Path, str, str, int, dict[str, str], Say], list[dict]]


@dataclass(frozen=True)
class PodPerTask:
    """The component's scheduler makes a pod per task from a template: its Jobs and Deployments are set up for that
    (`configure`), its rights and template come first (`rights`), and its tasks' pods are a unit of their own."""

    launcher: str  # the unit that makes the task pods
    task_unit: str  # the label the task pods carry, and the unit `restart` names them by
    template_configmap: str
    template_file: str
    configure: Callable[[list[dict], str], list[dict]]  # (its Jobs and Deployments, namespace) -> the same, set up
    rights: Callable[[dict, str, dict[str, str] | None], list[dict]]  # (launcher, namespace, tasks' extra env)
    task_env: Callable[[dict], dict[str, str]]  # the template -> what a task pod's environment is


ClusterForm = ReplicatedChart | PodPerTask
