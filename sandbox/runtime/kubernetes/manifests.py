"""The compose file's services as Kubernetes objects: what `--runtime kubernetes` applies. Pure: data in, dicts out.

One translation, so a cluster runs what `docker compose` runs, service for service:
  image, entrypoint → command, command → args, environment → env, user "u:g" → runAsUser/runAsGroup;
  ports → containerPorts and a Service of the compose name (inside the cluster components reach each other by the
  same names as in the compose network); healthcheck → readinessProbe; a `-init` service → a Job (run to its end
  before the component's other services start), any other → a Deployment of one replica (Recreate: its claims are
  ReadWriteOnce);
  a named volume → a PersistentVolumeClaim, seeded from the image by an init container on first use (a Docker
  named volume starts as a copy of the image's folder, a claim starts empty: Keycloak's template database and
  Airflow's migrated one live there);
  a secret → one key of the component's Secret, mounted at /run/secrets (only the secrets it reads);
  a folder of the repository (`compose/tyk`, `compose/openbao`) → a ConfigMap;
  a folder of the sandbox's home (Airflow's DAGs, lib, worker HOME, vault token) → a subPath of the component's
  `files` claim, which the runtime fills from the host through a small `<component>-files` pod (`publish_plan`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sandbox.runtime.docker import compose

PART_OF = "app.kubernetes.io/part-of"
PROJECT = "airflow-tyk-sandbox"
COMPONENT = "sandbox/component"
UNIT = "sandbox/unit"
SECRETS_DIR = "/run/secrets"
SEEDED = ".sandbox-seeded"  # written into a claim once the image's folder is copied in
FILES_MOUNT = "/files"


@dataclass(frozen=True)
class Published:
    """One host folder the runtime copies into a component's `files` claim, and where."""

    component: str
    host: Path
    sub_path: str


def labels(component: str, unit: str | None = None) -> dict[str, str]:
    out = {PART_OF: PROJECT, COMPONENT: component}
    return {**out, UNIT: unit} if unit else out


def _meta(name: str, namespace: str, component: str, unit: str | None = None) -> dict:
    return {"name": name, "namespace": namespace, "labels": labels(component, unit)}


def secret_name(component: str) -> str:
    return f"{component}-secrets"


def files_claim(component: str) -> str:
    return f"{component}-files"


def files_unit(component: str) -> str:
    return f"{component}-files"


def config_map_name(component: str, folder: Path) -> str:
    return f"{component}-{folder.name}"


def _probe(hc: dict | None) -> dict | None:
    """A compose healthcheck as a readiness probe: CMD runs as given, CMD-SHELL through sh."""
    if not hc:
        return None
    test = hc["test"]
    command = list(test[1:]) if test[0] == "CMD" else ["sh", "-c", test[1]] if test[0] == "CMD-SHELL" else None
    if command is None:
        return None
    return {"exec": {"command": command},
            "periodSeconds": max(1, compose.duration_ns(hc.get("interval"), 30) // 10**9),
            "timeoutSeconds": max(1, compose.duration_ns(hc.get("timeout"), 30) // 10**9),
            "failureThreshold": int(hc.get("retries", 3))}


def _security(user: str | None) -> dict:
    if not user:
        return {}
    uid, _, gid = user.partition(":")
    out = {"runAsUser": int(uid)}
    return {**out, "runAsGroup": int(gid)} if gid else out


def set_env(container: dict, env: dict[str, str]) -> None:
    """`env` into a container's environment, replacing what it names."""
    container["env"] = [e for e in container.get("env", []) if e["name"] not in env] + [
        {"name": k, "value": v} for k, v in env.items()]


def _volume_name(text: str) -> str:
    return "v-" + "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:50]


class Translation:
    """The objects of every service of one compose file, and what the runtime publishes into the claims.

    `component_of`: compose service → component; `secrets`: the sandbox's secret values (only those a component
    reads end up in its Secret); `repo_folders`: a repository folder's files (name → text), for its ConfigMap;
    `grace`: a component's seconds between TERM and KILL."""

    def __init__(self, services: Mapping[str, compose.Service], namespace: str, component_of,
                 secrets: Mapping[str, str], repo_folders: Mapping[Path, Mapping[str, str]],
                 grace: Mapping[str, float] | None = None):
        self.services = services
        self.namespace = namespace
        self.component_of = component_of
        self.secret_values = secrets
        self.repo_folders = {Path(k): v for k, v in repo_folders.items()}
        self.grace = grace or {}  # component -> seconds between TERM and KILL (the pods' default is 30)

    # ---- per volume -----------------------------------------------------------------------------
    def kind_of(self, v: compose.Volume) -> str:
        """What a compose volume becomes: `secret` (a key of the component's Secret), `claim` (a named volume),
        `config` (a repository folder: a ConfigMap) or `files` (a home folder: a subPath of the files claim)."""
        if v.target.startswith(SECRETS_DIR + "/"):
            return "secret"
        if v.named:
            return "claim"
        return "config" if Path(v.source) in self.repo_folders else "files"

    @staticmethod
    def secret_of(v: compose.Volume) -> str:
        return v.target.rsplit("/", 1)[1]

    # ---- per service ----------------------------------------------------------------------------
    def _mounts(self, svc: compose.Service) -> tuple[list[dict], list[dict], list[dict]]:
        """(volumes, mounts, seed init containers) of one service."""
        comp = self.component_of(svc.name)
        volumes, mounts, seeds = [], [], []
        secret_items = []
        for v in svc.volumes:
            kind = self.kind_of(v)
            if kind == "secret":
                secret_items.append(self.secret_of(v))
            elif kind == "claim":
                name = _volume_name(v.source)
                volumes.append({"name": name, "persistentVolumeClaim": {"claimName": v.source}})
                mounts.append({"name": name, "mountPath": v.target})
                seeds.append(self._seed(svc, name, v.target))
            elif kind == "config":
                name = _volume_name(Path(v.source).name)
                volumes.append({"name": name,
                                "configMap": {"name": config_map_name(comp, Path(v.source))}})
                mounts.append({"name": name, "mountPath": v.target, "readOnly": True})
            else:  # a folder of the sandbox's home: published into the component's files claim
                if not any(x["name"] == "files" for x in volumes):
                    volumes.append({"name": "files", "persistentVolumeClaim": {"claimName": files_claim(comp)}})
                mounts.append({"name": "files", "mountPath": v.target, "subPath": self.sub_path(v),
                               **({"readOnly": True} if v.read_only else {})})
        if secret_items:
            volumes.append({"name": "secrets", "secret": {
                "secretName": secret_name(comp), "defaultMode": 0o444,
                "items": [{"key": s, "path": s} for s in sorted(secret_items)]}})
            mounts.append({"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True})
        return volumes, mounts, seeds

    @staticmethod
    def sub_path(v: compose.Volume) -> str:
        return v.target.rstrip("/").rsplit("/", 1)[1]

    def _seed(self, svc: compose.Service, volume: str, target: str) -> dict:
        # each entry on its own: the claim's own folder is not ours to re-time or re-own (cp -a of `.` tries)
        script = (f"[ -e /seed/{SEEDED} ] || {{ find {shlex.quote(target)} -mindepth 1 -maxdepth 1 "
                  f"-exec cp -a {{}} /seed/ \\; && touch /seed/{SEEDED}; }}")
        return {"name": f"seed-{volume[2:]}"[:63], "image": svc.image, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script], "volumeMounts": [{"name": volume, "mountPath": "/seed"}]}

    def _container(self, svc: compose.Service, mounts: list[dict]) -> dict:
        c: dict = {"name": svc.name, "image": svc.image, "imagePullPolicy": "IfNotPresent",
                   "env": [{"name": k, "value": v} for k, v in svc.environment.items()],
                   "volumeMounts": mounts}
        if svc.entrypoint:
            c["command"] = list(svc.entrypoint)
        if svc.command:
            c["args"] = list(svc.command)
        if svc.ports:
            c["ports"] = [{"containerPort": p.container_port} for p in svc.ports]
        if probe := _probe(svc.healthcheck):
            c["readinessProbe"] = probe
        elif svc.ports:  # no shell to check with (go-httpbin): its port answering
            c["readinessProbe"] = {"tcpSocket": {"port": svc.ports[0].container_port}, "periodSeconds": 1}
        return c

    def pod_spec(self, svc: compose.Service, restart: str = "Always") -> dict:
        volumes, mounts, seeds = self._mounts(svc)
        grace = self.grace.get(self.component_of(svc.name))
        spec: dict = {"hostname": svc.name, "restartPolicy": restart, "automountServiceAccountToken": False,
                      "enableServiceLinks": False,  # else every Service adds env (REDIS_PORT=tcp://…) to each pod
                      "securityContext": _security(svc.user), "containers": [self._container(svc, mounts)],
                      "volumes": volumes}
        if seeds:
            spec["initContainers"] = seeds
        if grace is not None:
            spec["terminationGracePeriodSeconds"] = int(grace)
        return spec

    def workload(self, svc: compose.Service) -> dict:
        comp = self.component_of(svc.name)
        template = {"metadata": {"labels": labels(comp, svc.name)}}
        if svc.one_shot:
            return {"apiVersion": "batch/v1", "kind": "Job",
                    "metadata": _meta(svc.name, self.namespace, comp, svc.name),
                    "spec": {"backoffLimit": 0, "template": {**template, "spec": self.pod_spec(svc, "Never")}}}
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": _meta(svc.name, self.namespace, comp, svc.name),
                "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                         "selector": {"matchLabels": {COMPONENT: comp, UNIT: svc.name}},
                         "template": {**template, "spec": self.pod_spec(svc)}}}

    def service(self, svc: compose.Service) -> dict | None:
        if not svc.ports:
            return None
        comp = self.component_of(svc.name)
        return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(svc.name, self.namespace, comp, svc.name),
                "spec": {"selector": {COMPONENT: comp, UNIT: svc.name},
                         "ports": [{"name": f"p{p.container_port}", "port": p.container_port,
                                    "targetPort": p.container_port} for p in svc.ports]}}

    # ---- per component --------------------------------------------------------------------------
    def services_of(self, component: str) -> list[compose.Service]:
        return [s for n, s in self.services.items() if self.component_of(n) == component]

    def storage(self, component: str) -> list[dict]:
        """What outlives the component's pods and what they mount: claims, its Secret, its ConfigMaps, and its
        files pod (the runtime's way into the files claim) — applied before its workloads start."""
        out: list[dict] = []
        claims, folders, secrets, files = [], [], set(), None
        for svc in self.services_of(component):
            for v in svc.volumes:
                kind = self.kind_of(v)
                if kind == "secret":
                    secrets.add(self.secret_of(v))
                elif kind == "claim":
                    claims.append(v.source)
                elif kind == "config":
                    folders.append(Path(v.source))
                else:
                    files = svc
        if files is not None:
            claims.append(files_claim(component))
        for claim in dict.fromkeys(claims):
            out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": _meta(claim, self.namespace, component),
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        if secrets:
            out.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": _meta(secret_name(component), self.namespace, component),
                        "stringData": {s: self.secret_values[s] for s in sorted(secrets)}})
        for folder in dict.fromkeys(folders):
            out.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": _meta(config_map_name(component, folder), self.namespace, component),
                        "data": dict(self.repo_folders[folder])})
        if files is not None:
            out.append(self._files_pod(component, files))
        return out

    def _files_pod(self, component: str, like: compose.Service) -> dict:
        """A pod that only holds the files claim (and the component's named claims, so that all bind on one node)
        for the runtime to copy the host's folders into; it runs as the component's user."""
        unit = files_unit(component)
        named = [v for v in like.volumes if v.named]
        spec = {"restartPolicy": "Always", "automountServiceAccountToken": False, "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 1, "securityContext": _security(like.user),
                "containers": [{"name": "files", "image": like.image, "imagePullPolicy": "IfNotPresent",
                                "command": ["sleep", "infinity"],
                                "volumeMounts": [{"name": "files", "mountPath": FILES_MOUNT}]
                                + [{"name": _volume_name(v.source), "mountPath": f"/claims/{v.source}"}
                                   for v in named]}],
                "volumes": [{"name": "files", "persistentVolumeClaim": {"claimName": files_claim(component)}}]
                + [{"name": _volume_name(v.source), "persistentVolumeClaim": {"claimName": v.source}}
                   for v in named]}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(unit, self.namespace, component, unit),
                "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                         "selector": {"matchLabels": {COMPONENT: component, UNIT: unit}},
                         "template": {"metadata": {"labels": labels(component, unit)}, "spec": spec}}}

    def jobs(self, component: str) -> list[dict]:
        return [self.workload(s) for s in self.services_of(component) if s.one_shot]

    def workloads(self, component: str) -> list[dict]:
        """Deployments and Services, applied once the component's Jobs completed."""
        out = []
        for svc in self.services_of(component):
            if not svc.one_shot:
                out.append(self.workload(svc))
                if service := self.service(svc):
                    out.append(service)
        return out

    def publish_plan(self, component: str) -> list[Published]:
        """Which host folders go where in the component's files claim."""
        seen: dict[str, Published] = {}
        for svc in self.services_of(component):
            for v in svc.volumes:
                if self.kind_of(v) == "files":
                    seen.setdefault(self.sub_path(v), Published(component, Path(v.source), self.sub_path(v)))
        return list(seen.values())

    def forwards(self, component: str) -> list[tuple[str, int, int]]:
        """(Service, host port, its port) for each published port: what the host reaches on 127.0.0.1."""
        return [(s.name, p.host_port, p.container_port) for s in self.services_of(component) for p in s.ports]
