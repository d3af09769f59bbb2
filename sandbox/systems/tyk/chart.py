"""Tyk's official `tyk-oss` Helm chart, rendered for the kubernetes runtime's gateway.

The chart (TykTechnologies/tyk-charts, pinned in versions.py and checked like the gateway's source) is fetched
once into the cache and its subcharts resolved there (`helm dependency build`); each `up` renders it with
`helm template` and the values in compose/kubernetes/tyk-values.yaml plus what differs per sandbox (the image,
one replica a schedulable node up to two, one replica a node). Rendered, not installed: no Helm release state in
the cluster, one apply and one delete path for every object of the sandbox. SANDBOX_TYK_CHARTS names a local copy
of the archive (GitHub's tag tarball is fetched otherwise); SANDBOX_HELM the helm binary (else PATH).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import yaml

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.host.go_source import Release, check_source, fetch_archive
from sandbox.host.provision import Say, cached_build, run
from sandbox.paths import compose_dir
from sandbox.runtime.kubernetes import manifests as km
from sandbox.runtime.kubernetes.forms import ReplicatedChart

CHARTS = Release(
    "Tyk charts", "tyk-charts", versions.TYK_CHARTS, versions.TYK_CHARTS_COMMIT, (versions.TYK_CHARTS_SHA256,),
    f"https://github.com/TykTechnologies/tyk-charts/archive/refs/tags/{versions.TYK_CHARTS}.tar.gz",
    "SANDBOX_TYK_CHARTS", "set SANDBOX_TYK_CHARTS to a copy of that tarball", "", "",
    tree_sha256=versions.TYK_CHARTS_TREE_SHA256)
RELEASE = "tyk"  # helm's release name: the chart names its objects after it (fullnameOverride says `tyk`)
UNIT = "gateway-tyk"  # the chart's Deployment, and its pods' `app` label
PORT = 8080
MAX_REPLICAS = 2
DROPPED = {("Secret", "tyk-operator-conf")}  # rendered even with the operator off; nothing reads it


def helm() -> str:
    found = os.environ.get("SANDBOX_HELM") or shutil.which("helm")
    if not found:
        raise SandboxError("helm is not installed (the kubernetes runtime renders Tyk's official chart with it).",
                           "install helm 3, or set SANDBOX_HELM to its path.")
    return found


def chart(cache: Path, say: Say) -> Path:
    """The `tyk-oss` chart folder with its subcharts, from the pinned archive (fetched and resolved once)."""
    target = cache / "tyk-charts" / versions.TYK_CHARTS

    def build(into: Path) -> None:
        source = os.environ.get(CHARTS.source_variable) or CHARTS.default_source
        archive = fetch_archive(CHARTS, source, cache / "downloads", say)
        check_source(CHARTS, archive, source)
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(into, filter="data")
        run([helm(), "dependency", "build", str(_oss(into))], "helm dependency build of tyk-oss")

    return _oss(cached_build(target, build, say))


def _oss(folder: Path) -> Path:
    found = [p for p in folder.glob("*/tyk-oss") if (p / "Chart.yaml").is_file()]
    if not found:
        raise SandboxError(f"{folder} holds no tyk-oss chart.", f"use the {versions.TYK_CHARTS} tag tarball of "
                           "TykTechnologies/tyk-charts.")
    return found[0]


def values(image: str, replicas: int) -> dict:
    """The chart's values for one sandbox: the repository's, with its image and replica count, one replica a node."""
    out = yaml.safe_load((compose_dir() / "kubernetes" / "tyk-values.yaml").read_text())
    # the chart writes `repository:tag`: a digest rides on the tag (`v5.14.0@sha256:…`)
    name, at, digest = image.partition("@")
    repository, _, tag = name.rpartition(":")
    tag += at + digest
    gateway = out["tyk-gateway"]["gateway"]
    gateway["image"] = {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}
    # the chart's init container is busybox from a registry; the gateway's own image has the shell it needs
    gateway["initContainers"] = {"setupDirectories": {"repository": repository, "tag": tag}}
    gateway["replicaCount"] = replicas
    gateway["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": UNIT}}, "topologyKey": "kubernetes.io/hostname"}]}}
    return out


def render(chart_dir: Path, namespace: str, chart_values: dict) -> list[dict]:
    """`helm template` of the chart: its objects, as dicts."""
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "values.json"
        file.write_text(json.dumps(chart_values))
        text = run([helm(), "template", RELEASE, str(chart_dir), "--namespace", namespace, "--values", str(file),
                    "--skip-tests"], "helm template of tyk-oss")
    return [d for d in yaml.safe_load_all(text)
            if d and (d.get("kind"), d.get("metadata", {}).get("name")) not in DROPPED]


def objects(cache: Path, namespace: str, image: str, replicas: int, secrets: dict[str, str], say: Say) -> list[dict]:
    """What the chart renders, labelled as the sandbox's, with what it reads (its Secret, the sandbox's tyk.conf)
    and a Service of the compose name, so that the stack reaches the gateway at `tyk:8080` as elsewhere."""
    rendered = render(chart(cache, say), namespace, values(image, replicas))
    for obj in rendered:
        obj["metadata"].setdefault("labels", {}).update(km.labels("tyk", UNIT))
        if obj["kind"] == "Deployment":
            obj["spec"]["template"]["metadata"]["labels"].update(km.labels("tyk", UNIT))
    meta = {"namespace": namespace, "labels": km.labels("tyk")}
    return [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": "tyk-gateway-secrets", **meta},
         "stringData": {"APISecret": secrets["tyk_secret"], "redisPass": secrets["redis_password"]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tyk-conf", **meta},
         "data": {"tyk.conf": (compose_dir() / "tyk" / "tyk.conf").read_text(),
                  **{js.name: js.read_text() for js in (compose_dir() / "tyk" / "middleware").glob("*.js")}}},
        *rendered,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tyk", **meta},
         "spec": {"selector": {"app": UNIT}, "ports": [{"name": "http", "port": PORT, "targetPort": PORT}]}},
    ]


# what the kubernetes runtime asks of the gateway's component: its vendor's chart, one replica a node
FORM = ReplicatedChart(unit=UNIT, port=PORT, max_replicas=MAX_REPLICAS, objects=objects)
