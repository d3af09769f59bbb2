"""The compose file as Kubernetes objects (`--runtime kubernetes`): one translation, held to the compose file."""

import json
import re
from pathlib import Path

import pytest

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths, compose_dir
from sandbox.runtime import state as statefile
from sandbox.runtime.component import ComponentContext
from sandbox.runtime.docker import compose
from sandbox.runtime.kubernetes import forwarder
from sandbox.runtime.kubernetes import manifests as km
from sandbox.runtime.kubernetes import runtime as kr
from sandbox.runtime.kubernetes.runtime import KubernetesRuntime, lacking
from sandbox.runtime.state import State
from sandbox.settings import Settings
from sandbox.systems import all_components
from sandbox.systems.tyk import chart as tyk_chart

COMPONENTS = {c.name: c for c in all_components()}
SECRETS = {s: f"value-of-{s}" for c in COMPONENTS.values() for s in c.secrets}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.fixture(scope="module")
def rt(tmp_path_factory) -> KubernetesRuntime:
    home = tmp_path_factory.mktemp("home")
    return KubernetesRuntime(SandboxPaths(home, home / "cache"), components=all_components())


@pytest.fixture(scope="module")
def tr(rt) -> km.Translation:
    state = State(runtime="kubernetes", ports=rt.default_ports())
    return rt.translation(state, SECRETS)


def objects(tr, component):
    return tr.storage(component) + tr.jobs(component) + tr.workloads(component)


def every(tr):
    return [o for c in COMPONENTS for o in objects(tr, c)]


def pod_specs(tr):
    for o in every(tr):
        if o["kind"] in ("Deployment", "Job"):
            yield o, o["spec"]["template"]["spec"]


def test_every_service_is_one_workload_a_job_for_init_and_a_deployment_otherwise(tr):
    workloads = {o["metadata"]["name"]: o["kind"] for o in every(tr) if o["kind"] in ("Deployment", "Job")}
    for name, svc in tr.services.items():
        assert workloads.pop(name) == ("Job" if svc.one_shot else "Deployment"), name
    assert workloads == {"airflow-files": "Deployment"}  # the runtime's way into the files claim, and only that


def test_objects_are_labelled_namespaced_and_named_as_kubernetes_allows(tr):
    for o in every(tr):
        meta = o["metadata"]
        assert DNS_1123.match(meta["name"]) and len(meta["name"]) <= 63, meta["name"]
        assert meta["namespace"] == tr.namespace
        assert meta["labels"][km.PART_OF] == km.PROJECT and meta["labels"][km.COMPONENT] in COMPONENTS
    for o, _ in pod_specs(tr):  # selectors select the unit's own pods, and its pods carry the labels down
        labels = o["spec"]["template"]["metadata"]["labels"]
        assert labels[km.UNIT] == o["metadata"]["name"]
        if o["kind"] == "Deployment":
            assert o["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_every_published_port_is_a_service_port_of_the_compose_name_and_a_forward(tr):
    services = {o["metadata"]["name"]: o for o in every(tr) if o["kind"] == "Service"}
    forwards = {(s, host, port) for c in COMPONENTS for s, host, port in tr.forwards(c)}
    for name, svc in tr.services.items():
        for p in svc.ports:
            assert p.container_port in [x["port"] for x in services[name]["spec"]["ports"]]
            assert (name, p.host_port, p.container_port) in forwards
    # inside the cluster components reach each other where they do in the compose network
    for comp in COMPONENTS.values():
        assert comp.inner_url().split("//")[1].split(":")[0] in services


def test_container_runs_what_compose_runs(tr):
    for o, spec in pod_specs(tr):
        svc = tr.services.get(o["metadata"]["name"])
        if svc is None:
            continue
        (c,) = spec["containers"]
        assert c["image"] == svc.image and c["imagePullPolicy"] == "IfNotPresent"
        assert c.get("command") == svc.entrypoint and c.get("args") == svc.command
        assert {e["name"]: e["value"] for e in c["env"]} == svc.environment
        uid, _, gid = (svc.user or "").partition(":")
        assert spec["securityContext"].get("runAsUser") == (int(uid) if uid else None)
        assert spec["enableServiceLinks"] is False and spec["automountServiceAccountToken"] is False
        assert spec["terminationGracePeriodSeconds"] == int(COMPONENTS[tr.component_of(svc.name)].stop_grace)


def test_healthchecks_become_readiness_probes():
    assert km._probe({"test": ["CMD", "bash", "-c", "x"], "interval": "2s", "timeout": "3s", "retries": 30}) == {
        "exec": {"command": ["bash", "-c", "x"]}, "periodSeconds": 2, "timeoutSeconds": 3, "failureThreshold": 30}
    assert km._probe({"test": ["CMD-SHELL", "bao status"]})["exec"]["command"] == ["sh", "-c", "bao status"]
    assert km._probe(None) is None


def test_named_volumes_are_claims_seeded_from_the_image_once(tr):
    claims = {o["metadata"]["name"] for o in every(tr) if o["kind"] == "PersistentVolumeClaim"}
    named = {v.source for svc in tr.services.values() for v in svc.volumes if v.named}
    assert claims == named | {km.files_claim("airflow")}
    for o, spec in pod_specs(tr):
        svc = tr.services.get(o["metadata"]["name"])
        if svc is None:
            continue
        for v in (v for v in svc.volumes if v.named):  # from the very image the service runs, before it starts
            seed = next(i for i in spec["initContainers"] if v.target in i["command"][-1])
            assert seed["image"] == svc.image and km.SEEDED in seed["command"][-1]
    assert "hostPath" not in json.dumps(every(tr))  # nothing of a node's disk but through a claim


def test_a_component_gets_its_own_secrets_in_a_secret_and_no_other(tr):
    for name, comp in COMPONENTS.items():
        secrets = [o for o in tr.storage(name) if o["kind"] == "Secret"]
        if not comp.secrets:
            assert not secrets
            continue
        (secret,) = secrets
        assert secret["stringData"] == {s: SECRETS[s] for s in comp.secrets}
    text = json.dumps([o for o in every(tr) if o["kind"] != "Secret"])
    assert not any(v in text for v in SECRETS.values())  # a secret's value only in its Secret


def test_repository_folders_are_config_maps_and_home_folders_are_published(tr, rt):
    maps = {o["metadata"]["name"]: o["data"] for o in every(tr) if o["kind"] == "ConfigMap"}
    assert maps["tyk-tyk"] == {"tyk.conf": (compose_dir() / "tyk" / "tyk.conf").read_text()}
    assert maps["openbao-openbao"] == {"openbao.json": (compose_dir() / "openbao" / "openbao.json").read_text()}
    plan = tr.publish_plan("airflow")
    ctx = ComponentContext(rt.paths, rt.default_ports(), {})
    assert {p.host for p in plan} == set(COMPONENTS["airflow"].host_folders(ctx).values())
    assert len({p.sub_path for p in plan}) == len(plan)
    mounts = {m["mountPath"]: m for o, spec in pod_specs(tr) if o["metadata"]["name"] == "airflow-scheduler"
              for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/opt/airflow/dags"]["subPath"] == "dags"
    assert mounts["/opt/airflow/secrets"]["readOnly"] is True
    for comp in COMPONENTS:
        if comp != "airflow":
            assert tr.publish_plan(comp) == []


def _pod(name, component, unit, waiting=None, phase="Running"):
    status = {"phase": phase, "containerStatuses": [{"state": {"waiting": {"reason": waiting}} if waiting else
                                                               {"running": {}}}]}
    return {"kind": "Pod", "metadata": {"name": name, "labels": {km.COMPONENT: component, km.UNIT: unit},
                                        "creationTimestamp": "2026-12-07T18:00:00Z"},
            "status": status}


def _deployment(name, component):
    return {"kind": "Deployment", "metadata": {"name": name, "labels": {km.COMPONENT: component, km.UNIT: name}}}


def test_a_components_state_is_read_from_one_snapshot(rt):
    assert rt._state_of("redis", []) == "stopped"
    assert rt._state_of("redis", [_deployment("redis", "redis"), _pod("redis-1", "redis", "redis")]) == "running"
    crashing = [_deployment("redis", "redis"), _pod("redis-1", "redis", "redis", "CrashLoopBackOff")]
    assert rt._state_of("redis", crashing) == "crashed"
    assert rt._failing(crashing).startswith("pod redis-1: CrashLoopBackOff")
    partly = [_deployment("airflow-api-server", "airflow")]
    assert rt._state_of("airflow", partly) == "crashed"  # a component is running when all its units are


def test_a_component_starts_its_clock_once_its_pods_run_and_says_what_a_pending_pod_waits_for():
    assert kr._not_running([], "openbao") == "openbao: no pod yet"
    unbound = _pod("openbao-1", "openbao", "openbao", phase="Pending")
    unbound["status"] = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "message": "pod has unbound immediate PersistentVolumeClaims"}]}
    assert kr._not_running([unbound], "openbao") == \
        "openbao: pod openbao-1 Pending (pod has unbound immediate PersistentVolumeClaims)"
    creating = _pod("openbao-1", "openbao", "openbao", "ContainerCreating", phase="Pending")
    assert kr._not_running([creating], "openbao") == "openbao: pod openbao-1 Pending (ContainerCreating)"
    assert kr._not_running([creating, _pod("openbao-2", "openbao", "openbao")], "openbao") == ""


def test_the_forwarder_reaches_services_on_loopback_only():
    cmd = forwarder.command("kubectl", "kind-sandbox", "ns", "svc/keycloak", ["28081:8080", "28091:9000"])
    assert cmd == ["kubectl", "--context", "kind-sandbox", "-n", "ns", "port-forward", "--address", "127.0.0.1",
                   "svc/keycloak", "28081:8080", "28091:9000"]


def test_the_forwarder_forwards_each_ready_replica_and_no_other():
    def pod(name, phase="Running", ready="True", leaving=False):
        meta = {"name": name, **({"deletionTimestamp": "2026-12-01T00:00:00Z"} if leaving else {})}
        return {"metadata": meta, "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}

    items = [pod("gw-b"), pod("gw-a"), pod("gw-c", ready="False"), pod("gw-d", phase="Pending"),
             pod("gw-e", leaving=True)]
    assert forwarder.ready_pods(items) == ["gw-a", "gw-b"]


def test_compose_variables_are_one_function_for_both_container_runtimes(rt):
    variables = rt._variables(State(runtime="kubernetes", ports=rt.default_ports()))
    assert variables["SANDBOX_AIRFLOW_UID"] == "50000"
    assert variables["SANDBOX_IMAGE_AIRFLOW"].startswith("airflow-tyk-sandbox/airflow:")
    services = compose.load(compose_dir() / "docker-compose.yml", variables)
    assert Path(services["airflow-scheduler"].volumes[1].source) == rt.paths.dags


def test_images_a_node_lacks_are_named_by_node_and_the_control_plane_is_not_asked():
    def node(name, images, taint=False):
        return {"metadata": {"name": name}, "spec": {"taints": [{"effect": "NoSchedule"}] if taint else []},
                "status": {"images": [{"names": [f"docker.io/{r}" if "/" in r else f"docker.io/library/{r}"]}
                                      for r in images]}}

    nodes = [node("cp", [], taint=True), node("w1", ["redis:7.0.15", "airflow-tyk-sandbox/tyk:v5.14.0"]),
             node("w2", ["redis:7.0.15"])]
    assert lacking(nodes, {"redis": "redis:7.0.15", "tyk": "airflow-tyk-sandbox/tyk:v5.14.0"}) == {
        "airflow-tyk-sandbox/tyk:v5.14.0": ["w2"]}


def test_images_are_the_projects_own_unless_asked(rt, monkeypatch):
    for c in COMPONENTS:
        monkeypatch.delenv(compose.image_variable(c), raising=False)
    assert rt.choose_images()["tyk"] == versions.local_image("tyk")
    monkeypatch.setenv(compose.image_variable("tyk"), "registry.example/tyk:v5.14.0")
    assert rt.choose_images()["tyk"] == "registry.example/tyk:v5.14.0"


def test_a_sandbox_stays_in_its_context_and_namespace_while_it_runs(tmp_path):
    paths = SandboxPaths(tmp_path, tmp_path / "cache")
    statefile.save(paths.state, State(runtime="kubernetes", cluster={"context": "kind-a", "namespace": "team-a"}))
    every = all_components()
    assert KubernetesRuntime(paths, components=every).namespace == "team-a"  # later commands find it where it runs
    assert KubernetesRuntime(paths, components=every, settings=Settings(kube_namespace="env-ns")).namespace == "team-a"
    moved = KubernetesRuntime(paths, components=every, context="kind-a", namespace="team-b")
    state = statefile.load(paths.state)
    with pytest.raises(SandboxError, match="runs in context kind-a, namespace team-a"):
        moved.before_start(state, {"redis"})
    moved.before_start(state, set())  # nothing runs: it moves, and says so in its state
    assert state.cluster == {"context": "kind-a", "namespace": "team-b"}
    fresh = KubernetesRuntime(SandboxPaths(tmp_path / "new", tmp_path), components=every)
    assert fresh.namespace.startswith("sandbox-new-")


def test_the_gateway_runs_from_tyks_chart_with_one_replica_a_node_and_the_sandboxs_image():
    values = tyk_chart.values("airflow-tyk-sandbox/tyk:v5.14.0", 2)
    gateway = values["tyk-gateway"]["gateway"]
    assert gateway["replicaCount"] == 2
    assert gateway["image"] == {"repository": "airflow-tyk-sandbox/tyk", "tag": "v5.14.0", "pullPolicy": "IfNotPresent"}
    assert gateway["initContainers"]["setupDirectories"] == {"repository": "airflow-tyk-sandbox/tyk", "tag": "v5.14.0"}
    (rule,) = gateway["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert rule == {"labelSelector": {"matchLabels": {"app": tyk_chart.UNIT}}, "topologyKey": "kubernetes.io/hostname"}
    # Redis and the secrets are the sandbox's, by name: the chart makes neither
    assert values["global"]["redis"]["addrs"] == ["redis:6379"]
    assert values["global"]["secrets"]["useSecretName"] == values["global"]["redis"]["passSecret"]["name"]
    assert values["global"]["components"] == {"pump": False, "operator": False}
    pinned = tyk_chart.values("tykio/tyk-gateway:v5.14.0@sha256:" + "0" * 64, 1)["tyk-gateway"]["gateway"]["image"]
    assert (pinned["repository"], pinned["tag"]) == ("tykio/tyk-gateway", "v5.14.0@sha256:" + "0" * 64)
    mount = next(m for m in gateway["extraVolumeMounts"] if m["subPath"] == "tyk.conf")
    assert mount["mountPath"] == "/opt/tyk-gateway/tyk.conf"  # where the image reads its configuration
