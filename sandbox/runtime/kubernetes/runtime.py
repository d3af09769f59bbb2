"""The kubernetes runtime: the compose file's services as Deployments, Jobs and Services in one namespace.

`kube_manifests` translates the same compose file the docker runtime runs (so a service differs between the two
runtimes only where a cluster must: claims instead of volumes, a Secret instead of secret files); this module
applies it with `kubectl` (server-side apply: no last-applied copy of a Secret in an annotation), waits with the
components' own health checks through forwards to 127.0.0.1 (`forwarder`), and hands back the same endpoints.
Inside the cluster components reach each other by the compose names, as in the compose network.

kubectl comes from SANDBOX_KUBECTL, else PATH; the cluster from SANDBOX_KUBE_CONTEXT (else kubeconfig's current
context); the namespace from SANDBOX_KUBE_NAMESPACE, else one per sandbox home (the docker runtime's project name).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import queue
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.host import credentials, supervisor
from sandbox.host.provision import file_lock
from sandbox.host.readiness import Result
from sandbox.paths import SandboxPaths, compose_dir
from sandbox.runtime import state as statefile
from sandbox.runtime.base import Progress, ProvisionResult
from sandbox.runtime.component import Component, ComponentContext
from sandbox.runtime.docker import compose
from sandbox.runtime.kubernetes import forwarder
from sandbox.runtime.kubernetes import manifests as km
from sandbox.runtime.kubernetes.forms import PodPerTask, ReplicatedChart
from sandbox.runtime.skeleton import HOST_PORTS, Seen, SkeletonRuntime
from sandbox.runtime.state import ProcessRecord, State
from sandbox.settings import Settings

FAILING = ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "CreateContainerConfigError",
           "CreateContainerError", "InvalidImageName")
FORWARDER = "forwarder"  # its log's name in the home's logs
JOB_TIMEOUT_S = 600
POD_START_TIMEOUT_S = 600  # scheduling, a claim bound, containers created: minutes on a loaded two-core machine
SERVING = "sandbox/serving"  # the label of the one replica a Service is narrowed to (serve_only)
# what the sandbox makes in its namespace, by kind (claims apart: they outlive `down` unless --volumes)
OWNED = "deployments,jobs,services,secrets,configmaps,serviceaccounts,roles,rolebindings"


def _epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class KubernetesRuntime(SkeletonRuntime):
    name = "kubernetes"

    def __init__(self, paths: SandboxPaths, env_ports: dict[str, int] | None = None, context: str | None = None,
                 namespace: str | None = None, settings: Settings | None = None, images: str = "auto", *,
                 components: list[Component]):
        """`context`/`namespace`: asked for (`up --context/--namespace`); else where the sandbox runs (its state);
        else SANDBOX_KUBE_CONTEXT/NAMESPACE (`settings`); else the current context and a namespace of the home's."""
        super().__init__(paths, env_ports, components=components)
        self.images = images
        self.kubectl_bin = os.environ.get("SANDBOX_KUBECTL") or shutil.which("kubectl") or "kubectl"
        try:
            recorded = (statefile.load(paths.state) or State()).cluster
        except SandboxError:
            recorded = {}
        settings = settings or Settings()
        self.asked = {k: v for k, v in (("context", context), ("namespace", namespace)) if v}
        self.context = context or recorded.get("context") or settings.kube_context
        self.namespace = (namespace or recorded.get("namespace") or settings.kube_namespace
                          or compose.project_name(paths.home))
        self.compose_file = compose_dir() / "docker-compose.yml"
        self.service_names = list(compose.raw(self.compose_file)["services"])  # read once: status asks per pod
        self._tr: km.Translation | None = None

    # ---- kubectl ---------------------------------------------------------------------------------
    def _kubectl_cmd(self, *args: str) -> list[str]:
        return forwarder.kubectl_cmd(self.kubectl_bin, self.context, self.namespace, *args)

    def kubectl(self, *args: str, stdin: str | bytes | None = None, timeout: float = 120,
                check: bool = True) -> str:
        cmd = self._kubectl_cmd(*args)
        try:
            done = subprocess.run(cmd, input=stdin.encode() if isinstance(stdin, str) else stdin,
                                  capture_output=True, timeout=timeout)
        except FileNotFoundError as e:
            raise SandboxError("kubectl is not installed (the kubernetes runtime drives the cluster with it).",
                               "install kubectl, or set SANDBOX_KUBECTL to its path.") from e
        except subprocess.TimeoutExpired as e:
            raise SandboxError(f"kubectl {' '.join(args[:3])} did not answer in {timeout:.0f}s.",
                               "check the cluster (`kubectl get nodes`).") from e
        if check and done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip().splitlines()
            raise SandboxError(f"kubectl {' '.join(args[:3])} failed: {why[-1] if why else done.returncode}.",
                               "check the cluster and the context (`kubectl config current-context`).")
        return done.stdout.decode(errors="replace")

    def apply(self, objects: list[dict]) -> None:
        if objects:
            self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", km.PROJECT, "-f", "-",
                         stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))

    def _selector(self, component: str | None = None) -> str:
        sel = f"{km.PART_OF}={km.PROJECT}"
        return f"{sel},{km.COMPONENT}={component}" if component else sel

    def _items(self, kinds: str, selector: str) -> list[dict]:
        """The objects `kubectl get` lists; none when the cluster does not answer (their state is then "stopped")."""
        try:
            return json.loads(self.kubectl("get", kinds, "-l", selector, "-o", "json", check=False))["items"]
        except (ValueError, KeyError):
            return []

    def snapshot(self, component: str | None = None) -> list[dict]:
        return self._items("deployments,jobs,pods", self._selector(component))

    # ---- the translation -------------------------------------------------------------------------
    def _variables(self, state: State) -> dict[str, str]:
        ctx = ComponentContext(self.paths, {**self.default_ports(), **state.ports}, {}, runtime=self.name)
        return {**compose.variables(self.components.values(), ctx, set(HOST_PORTS)),
                "SANDBOX_CONTAINER_SECRETS": str(self.paths.container_secrets),  # the compose file's; unused here
                # no host folder is bind-mounted: a container runs as its image's user, with no host uid to match
                **{compose.uid_variable(c.name): str(c.image_user) for c in self.components.values()
                   if c.image_user is not None},
                **{compose.image_variable(c): ref for c, ref in (state.images or self.choose_images()).items()}}

    def translation(self, state: State, secrets: dict[str, str]) -> km.Translation:
        services = compose.load(self.compose_file, self._variables(state))
        repo = {}
        for svc in services.values():
            for v in svc.volumes:
                src = Path(v.source)
                if not v.named and src.is_dir() and compose_dir() in src.parents:
                    repo[src] = {f.name: f.read_text() for f in sorted(src.iterdir()) if f.is_file()}
        return km.Translation(services, self.namespace, self._component_of, secrets, repo,
                              {n: c.stop_grace for n, c in self.components.items()})

    def _component_of(self, service: str) -> str:
        return compose.component_of(service, self.components) or service

    def units_of(self, component: str) -> list[str]:
        if chart := self._chart(component):
            return [chart.unit]
        return [s for s in self.service_names if self._component_of(s) == component and not s.endswith("-init")]

    # ---- what a system runs differently on a cluster (its `cluster_form`) ----------------------------
    def _form(self, component: str, kind: type):
        form = self.components[component].cluster_form if component in self.components else None
        return form if isinstance(form, kind) else None

    def _chart(self, component: str) -> ReplicatedChart | None:
        return self._form(component, ReplicatedChart)

    def _tasks(self, component: str) -> PodPerTask | None:
        return self._form(component, PodPerTask)

    def _task_units(self) -> set[str]:
        return {f.task_unit for c in self.components if (f := self._tasks(c))}

    def _replicated(self) -> list[tuple[str, ReplicatedChart]]:
        return [(c, f) for c in self.components if (f := self._chart(c))]

    # ---- images ----------------------------------------------------------------------------------
    def choose_images(self) -> dict[str, str]:
        """Per component: SANDBOX_IMAGE_<C>; else the official image with `--images official` (a cluster that
        pulls from the registries); else the project's own, which `sandbox images build` makes and `sandbox
        provision` loads into a kind cluster (another cluster: push them where it pulls from, and name them in
        SANDBOX_IMAGE_<C>)."""
        return {n: os.environ.get(compose.image_variable(n))
                or (versions.IMAGES[n] if self.images == "official" else versions.local_image(n))
                for n in self.components}

    def resolved_context(self) -> str:
        """The context by name (recorded so: a later change of kubeconfig's current context moves nothing)."""
        if not self.context:
            self.context = self.kubectl("config", "current-context").strip()
        return self.context

    def missing_images(self, images: dict[str, str]) -> dict[str, list[str]]:
        """Image → the schedulable nodes that do not hold it (what the nodes report: their kubelet's image list),
        or on kind hold another build under its tag (`sandbox images build` keeps the tag of what it rebuilds)."""
        nodes = self._schedulable_nodes()
        out = lacking(nodes, images)
        if self._kind_cluster():
            for ref, names in self._stale_on_kind(images, [n["metadata"]["name"] for n in nodes]).items():
                out.setdefault(ref, []).extend(n for n in names if n not in out.get(ref, []))
        return out

    def _kind_cluster(self) -> str:
        context = self.resolved_context()
        return context.removeprefix("kind-") if context.startswith("kind-") else ""

    def _stale_on_kind(self, images: dict[str, str], nodes: list[str]) -> dict[str, list[str]]:
        """Image → the kind nodes whose copy is not this machine's build (image IDs compared, as `kind load`
        does: a kind node is a container, its containerd lists what it holds)."""
        local = {}
        for ref in set(images.values()):
            done = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True)
            if done.returncode == 0:  # an image this machine does not have is official: not compared
                local[ref] = done.stdout.strip()
        out: dict[str, list[str]] = {}
        engine = _kind_engine_env()
        for node in nodes:
            done = subprocess.run(["docker", "exec", node, "crictl", "images", "-o", "json"], capture_output=True,
                                  text=True, env=engine)
            if done.returncode != 0:
                continue  # not reachable as a container here: the kubelet's list (above) is all there is
            held = {_short(t): i["id"] for i in json.loads(done.stdout).get("images", []) for t in i.get("repoTags")
                    or []}
            for ref, image_id in local.items():
                if _short(ref) in held and held[_short(ref)] != image_id:
                    out.setdefault(ref, []).append(node)
        return out

    def provision(self, only: list[str], progress: Progress) -> list[ProvisionResult]:
        """The images on every schedulable node: loaded with `kind load` into a kind cluster (from this machine's
        engine), else named with the fix."""
        self.check_names(only, "provision")
        images = self.choose_images()
        wanted = {n: images[n] for n in only or self.components}
        missing = self.missing_images(wanted)
        out = []
        for name, ref in wanted.items():
            t0 = time.monotonic()
            if ref not in missing:
                out.append(ProvisionResult(name, True, "cached", time.monotonic() - t0, ref))
                continue
            try:
                progress(name, f"loading {ref} into {', '.join(missing[ref])}")
                self._kind_load(ref, missing[ref])
                out.append(ProvisionResult(name, True, "provisioned", time.monotonic() - t0, ref))
            except SandboxError as e:
                out.append(ProvisionResult(name, False, "failed", time.monotonic() - t0, e.message))
        return out

    def _kind_load(self, ref: str, nodes: list[str]) -> None:
        cluster = self._kind_cluster()
        if not cluster:
            raise SandboxError(f"The cluster's nodes lack {ref}, and context {self.context!r} is not a kind cluster.",
                               "push the image where the cluster pulls from and name it in SANDBOX_IMAGE_<COMPONENT>, "
                               "or use `--images official` where the cluster reaches the registries.")
        kind = os.environ.get("SANDBOX_KIND") or shutil.which("kind") or "kind"
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "image.tar"
            for cmd, env in ((["docker", "save", ref, "-o", str(archive)], os.environ),
                             ([kind, "load", "image-archive", str(archive), "--name", cluster, "--nodes",
                               ",".join(nodes)], _kind_engine_env())):
                done = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if done.returncode != 0:
                    why = (done.stderr.strip().splitlines() or [str(done.returncode)])[-1]
                    raise SandboxError(f"Loading {ref} into kind cluster {cluster} failed at `{cmd[0]} {cmd[1]}`: "
                                       f"{why}.", "build it first (`sandbox images build`), then `sandbox provision`.")

    # ---- the skeleton's hooks --------------------------------------------------------------------
    def tidy_home(self, progress: Progress) -> None:
        self._seen_at_start = None  # a new `up`: what runs is looked at afresh, once

    def component_state(self, name: str, state: State) -> str:
        # `up` asks for every component in turn before it changes anything: one snapshot answers them all
        if getattr(self, "_seen_at_start", None) is None:
            self._seen_at_start = self.snapshot()
        return self._state_of(name, self._seen_at_start)

    def _state_of(self, name: str, items: list[dict]) -> str:
        # a task's pod is the task's, not the component's: one that failed leaves Airflow running
        mine = [i for i in items if i["metadata"].get("labels", {}).get(km.COMPONENT) == name
                and i["metadata"]["labels"].get(km.UNIT) not in self._task_units()]
        deployments = {i["metadata"]["name"] for i in mine if i["kind"] == "Deployment"}
        units = self.units_of(name)
        if not deployments & set(units):
            return "stopped"
        if not set(units) <= deployments or self._failing(mine) or _restarting(mine):
            return "crashed"
        return "running"

    @staticmethod
    def _failing(items: list[dict]) -> str | None:
        found = KubernetesRuntime._failing_pod(items)
        return found[1] if found else None

    @staticmethod
    def _failing_pod(items: list[dict]) -> tuple[str, str] | None:
        """The first failing pod: its unit and what to say of it."""
        for pod in (i for i in items if i["kind"] == "Pod"):
            unit = pod["metadata"].get("labels", {}).get(km.UNIT) or pod["metadata"]["name"]
            for cs in (pod.get("status", {}).get("containerStatuses") or []) + \
                    (pod.get("status", {}).get("initContainerStatuses") or []):
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in FAILING:
                    return unit, (f"pod {pod['metadata']['name']}: {waiting['reason']} "
                                  f"({waiting.get('message', '')[:200]})")
            if pod.get("status", {}).get("phase") == "Failed":
                return unit, f"pod {pod['metadata']['name']} failed"
        return None

    def before_start(self, state: State, running: set[str]) -> None:
        """One place per sandbox: a context and namespace asked for while it runs elsewhere are refused. And the
        images it starts from."""
        state.images = {**self.choose_images(), **{n: state.images[n] for n in running if n in state.images}}
        self.resolved_context()
        where = {"context": self.context, "namespace": self.namespace}
        moved = {k: v for k, v in self.asked.items() if state.cluster.get(k, v) != v}
        if moved and (running or any(state.processes.values())):
            raise SandboxError(f"This sandbox runs in context {state.cluster['context']}, namespace "
                               f"{state.cluster['namespace']}.",
                               "run `sandbox down` first, then `sandbox up` with the new --context/--namespace.",
                               exit_code=2)
        state.cluster = where
        if set(self.components) - set(state.disabled) - running:
            # the forwards hold every port of the sandbox: what starts now must find its ports free (they are
            # checked next), and `prepare_host` forwards them again
            self._stop_forwarder(state)

    def stop_component(self, name: str, state: State) -> bool:
        state.processes.pop(name, None)
        had = bool(self.snapshot(name))
        self.kubectl("delete", f"{OWNED},pods", "-l", self._selector(name), "--wait=false", "--ignore-not-found")
        return had

    def clear_for_start(self, name: str, state: State, progress: Progress) -> bool:
        had = [i for i in self.snapshot(name) if i["kind"] in ("Deployment", "Job")]
        if had:
            # their pods gone too before anything starts: a crash-looping one left behind would end the new wait
            self.kubectl("delete", "deployments,jobs", "-l", self._selector(name), "--ignore-not-found",
                         "--cascade=foreground", "--timeout=120s", timeout=130)
        return bool(had)

    def start_message(self, name: str, state: State) -> str:
        return f"starting in namespace {self.namespace} ({state.images[name]})"

    def check_startable(self, to_start: list[str], state: State, progress: Progress) -> None:
        if not to_start:  # a running sandbox: nothing to ask the cluster for
            return
        if self.kubectl("auth", "can-i", "create", "deployments", check=False).strip() != "yes":
            raise SandboxError(f"Context {self.context} may not create Deployments in namespace {self.namespace} "
                               "(or the cluster does not answer).",
                               "check `kubectl auth can-i create deployments -n <namespace>`; pick another namespace "
                               "with --namespace, or ask for a Role that allows it.")
        # what the nodes lack is loaded into a kind cluster (minutes, once); another cluster says so and stops
        for ref, nodes in self.missing_images({n: state.images[n] for n in to_start}).items():
            name = next(n for n in to_start if state.images[n] == ref)
            progress(name, f"loading {ref} into {', '.join(nodes)}")
            self._kind_load(ref, nodes)

    def prepare_host(self, state: State, secrets: dict[str, str]) -> None:
        ctx = ComponentContext(self.paths, state.ports, secrets, runtime=self.name)
        for comp in self.components.values():
            comp.prepare_host(ctx)
        if not self.kubectl("get", "namespace", self.namespace, "--ignore-not-found", "-o", "name").strip():
            # made here, so labelled as the sandbox's: `down --volumes` deletes it (a namespace it was given stays)
            self.apply([{"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": self.namespace, "labels": {km.PART_OF: km.PROJECT}}}])
        self._tr = self.translation(state, secrets)
        self._ensure_forwarder(state)

    def start_component(self, name: str, ctx: ComponentContext, state: State, progress: Progress) -> None:
        if chart := self._chart(name):
            return self._start_chart(name, chart, ctx, state, progress)
        tr = self._tr
        assert tr is not None
        self.apply(tr.storage(name))
        if tr.publish_plan(name):
            self.kubectl("rollout", "status", f"deployment/{km.files_unit(name)}", "--timeout=300s", timeout=310)
            self.publish(name)
        if tasks := self._tasks(name):  # its tasks in pods of their own: the launcher's rights and the template first
            self.apply(tasks.rights(self._launcher(tr, name, tasks), self.namespace, None))
        for job in self._on_executor(name, tr.jobs(name)):
            unit = job["metadata"]["name"]
            self.kubectl("delete", "job", unit, "--ignore-not-found")
            self.apply([job])
            progress(name, f"{unit}: {' '.join(job['spec']['template']['spec']['containers'][0].get('args', []))}")
            self._wait_job(unit)
        self.apply(self._on_executor(name, tr.workloads(name)))
        self._wait_running(name, progress)

    def _wait_running(self, name: str, progress: Progress) -> None:
        """Until each unit of the component has a pod whose containers run. The component's start_timeout is the
        time its own process takes to answer, as on the other runtimes: a busy cluster's scheduling, volume
        provisioning and container creation come before it and are waited for here (a 30-s vault timed out on
        them while a loaded two-node cluster bound its claim)."""
        t0 = time.monotonic()
        units = [u for u in self.units_of(name) if u not in self._task_units()]
        while True:
            items = self.snapshot(name)
            if self._failing(items):
                return  # the health wait's abort says why, at once
            waiting = {u: _not_running(items, u) for u in units}
            if not any(waiting.values()):
                if (secs := time.monotonic() - t0) >= 5:
                    progress(name, f"pods running after {secs:.0f}s (scheduling, volumes, containers)")
                return
            if time.monotonic() - t0 > POD_START_TIMEOUT_S:
                raise SandboxError(f"{name}'s pods did not start in {POD_START_TIMEOUT_S}s: "
                                   + "; ".join(w for w in waiting.values() if w))
            time.sleep(1.0)

    # ---- tasks in pods of their own (the executor's form) -----------------------------------------
    def _on_executor(self, component: str, objects: list[dict]) -> list[dict]:
        tasks = self._tasks(component)
        return tasks.configure(objects, self.namespace) if tasks else objects

    @staticmethod
    def _launcher(tr: km.Translation, component: str, tasks: PodPerTask) -> dict:
        return next(w for w in tr.workloads(component) if w["metadata"]["name"] == tasks.launcher)

    def _task_template(self, tasks: PodPerTask) -> dict | None:
        found = json.loads(self.kubectl("get", "configmap", tasks.template_configmap, "-o", "json",
                                        "--ignore-not-found", check=False) or "null")
        return yaml.safe_load(found["data"][tasks.template_file]) if found else None

    # ---- a vendor's chart, replicated (the gateway's form) ------------------------------------------
    def _start_chart(self, name: str, chart: ReplicatedChart, ctx: ComponentContext, state: State,
                     progress: Progress) -> None:
        replicas = min(chart.max_replicas, len(self._schedulable_nodes()))
        self.apply(chart.objects(self.paths.cache, self.namespace, state.images[name], replicas, ctx.secrets,
                                 lambda m: progress(name, m)))
        progress(name, f"{replicas} replica(s), one a node")
        self.kubectl("rollout", "status", f"deployment/{chart.unit}", "--timeout=300s", timeout=310)
        # apply writes to every replica (each keeps its own state): all of them reachable before `up` goes on
        deadline = time.monotonic() + 60
        while len(self.replica_urls(name)) < replicas:
            if time.monotonic() > deadline:
                raise SandboxError(f"{name}'s {replicas} replicas are ready but not all forwarded to 127.0.0.1.",
                                   f"see {self.paths.log(FORWARDER)}; then `sandbox up` again.")
            time.sleep(0.2)

    def _schedulable_nodes(self) -> list[dict]:
        return [n for n in json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"] if schedulable(n)]

    def _replica_ports(self, name: str) -> dict[str, int]:
        """Pod -> host port of each replica of a replicated component (the gateway): the forwarder's list."""
        try:
            return json.loads((self.paths.data(FORWARDER) / forwarder.REPLICAS_FILE).read_text()).get(name, {})
        except (OSError, ValueError):
            return {}

    def replica_urls(self, name: str) -> dict[str, str]:
        """Pod -> host URL of each replica of a replicated component (the gateway), in pod name order."""
        return {pod: f"http://127.0.0.1:{port}" for pod, port in sorted(self._replica_ports(name).items())}

    def serve_only(self, component: str, replica: str | None) -> None:
        """The component's Service sends every in-cluster call to one replica (its pod, as `replica_urls` names
        it), or to all again (None): what makes a scenario of a replica's own state deterministic."""
        chart = self._chart(component)
        if chart is None:
            raise SandboxError(f"{component} is not replicated here.",
                               f"name one that is: {', '.join(c for c, _ in self._replicated()) or 'none is'}.")
        pods = self._replica_ports(component)
        for pod in pods:
            self.kubectl("label", "pod", pod, f"{SERVING}-", check=False)
        selector: dict = {"app": chart.unit, SERVING: None}
        if replica is not None:
            if replica not in pods:
                raise SandboxError(f"{replica} is not a running replica of {component}.",
                                   f"name one of: {', '.join(sorted(pods)) or 'none runs'}.")
            self.kubectl("label", "pod", replica, f"{SERVING}=only", "--overwrite")
            selector[SERVING] = "only"
        self.kubectl("patch", "service", self.components[component].service or component, "--type", "merge", "-p",
                     json.dumps({"spec": {"selector": selector}}))

    def _wait_job(self, unit: str) -> None:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            job = json.loads(self.kubectl("get", "job", unit, "-o", "json"))
            conds = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions") or []}
            if conds.get("Complete") == "True":
                return
            if conds.get("Failed") == "True" or (why := self._failing(self.snapshot_unit(unit))):
                tail = self.kubectl("logs", f"job/{unit}", "--tail=15", check=False)
                raise SandboxError(f"{unit} failed{': ' + why if why else ''}:\n{tail}")
            time.sleep(0.5)
        raise SandboxError(f"{unit} did not complete in {JOB_TIMEOUT_S}s.", f"see `kubectl logs job/{unit}`.")

    def snapshot_unit(self, unit: str) -> list[dict]:
        return self._items("pods", f"{km.UNIT}={unit}")

    # ---- files from the host ---------------------------------------------------------------------
    def publish_handoff(self) -> None:
        for name, comp in self.components.items():
            if comp.holds_handoff:
                self.publish(name)

    def publish(self, component: str) -> None:
        """The component's host folders, copied into its files claim (what a bind mount shows at once): extracted
        in place, then whatever the host no longer has is removed (a subPath mount keeps its folder: no swap)."""
        tr = self._tr or self.translation(self._load(), credentials.read(self.paths.secrets))
        plan = tr.publish_plan(component)
        if not plan:
            return
        buf = io.BytesIO()
        keep = []
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for p in plan:
                tar.add(p.host, arcname=p.sub_path, filter=_anonymous)
                keep += [p.sub_path, *(f"{p.sub_path}/{f.relative_to(p.host)}" for f in sorted(p.host.rglob("*")))]
        digest = hashlib.sha256(buf.getvalue()).hexdigest()
        mark = self.paths.data(component) / ".published"
        if mark.exists() and mark.read_text() == digest:
            return
        prune = " ".join(f"find {shlex.quote(p.sub_path)} -mindepth 1 -depth | grep -vxF -f /tmp/keep | "
                         "while read -r f; do rm -rf \"$f\"; done;" for p in plan)
        script = (f"set -e; cd {km.FILES_MOUNT}; tar -x --no-same-owner -f - <&0; "
                  f"printf '%s\\n' {' '.join(shlex.quote(k) for k in keep)} > /tmp/keep; {prune}")
        self.kubectl("exec", "-i", f"deployment/{km.files_unit(component)}", "--", "sh", "-c", script,
                     stdin=buf.getvalue())
        credentials.write_private(mark, digest)

    # ---- forwards --------------------------------------------------------------------------------
    def _forward_args(self, state: State) -> list[str]:
        tr = self._tr
        assert tr is not None
        by_service: dict[str, list[str]] = {}
        for comp in self.components:
            for service, host, port in tr.forwards(comp):
                by_service.setdefault(service, []).append(f"{host}:{port}")
        return [*(f"--pods={name}=app={chart.unit}:{chart.port}" for name, chart in self._replicated()),
                *(f"{s}:{','.join(p)}" for s, p in sorted(by_service.items()))]

    def _ensure_forwarder(self, state: State) -> None:
        args = self._forward_args(state)
        recs = state.processes.get(FORWARDER, [])
        if recs and supervisor.alive(recs[0]) and recs[0].cmd[-len(args):] == args:
            return
        self._stop_forwarder(state)
        cmd = [sys.executable, "-m", "sandbox.runtime.kubernetes.forwarder", "--kubectl", self.kubectl_bin,
               "--context", self.context, "--namespace", self.namespace, *args]
        folder = self.paths.data(FORWARDER)
        folder.mkdir(parents=True, exist_ok=True)
        env = {"KUBECONFIG": os.environ["KUBECONFIG"]} if "KUBECONFIG" in os.environ else {}
        state.processes[FORWARDER] = [supervisor.spawn(FORWARDER, cmd, env, folder, self.paths.log(FORWARDER),
                                                       self.paths.home)]

    def _stop_forwarder(self, state: State) -> None:
        if recs := state.processes.pop(FORWARDER, []):
            supervisor.terminate(supervisor.tree(recs), grace=2)

    # ---- waiting, records, logs ------------------------------------------------------------------
    def after_wait(self, name: str, ctx: ComponentContext, state: State, res: Result, started: bool,
                   progress: Progress) -> None:
        if res.ok:
            self.record(name, state)

    def record(self, name: str, state: State) -> None:
        recs = []
        for pod in self.snapshot(name):
            if pod["kind"] != "Pod" or pod["metadata"]["labels"].get(km.UNIT) not in self.units_of(name):
                continue
            c = pod["spec"]["containers"][0]
            recs.append(ProcessRecord(pod["metadata"]["name"], 0, _epoch(pod["metadata"]["creationTimestamp"]),
                                      c.get("command", []) + c.get("args", [])))
        with self._lock:
            state.processes[name] = recs

    def died(self, name: str, state: State):
        return lambda: self._failing(self.snapshot(name))

    def tail(self, name: str, lines: int) -> tuple[list[str], str]:
        out = self.kubectl("logs", "-l", self._selector(name), "--all-containers", "--prefix", f"--tail={lines}",
                           "--max-log-requests=20", check=False)
        return out.splitlines()[-lines:], f"`kubectl -n {self.namespace} logs -l {self._selector(name)}`"

    def replace_unit(self, component: str, unit: str, extra_env: dict[str, str], ctx: ComponentContext,
                     state: State) -> None:
        """As elsewhere, with one difference the executor makes: the scheduler's workers are the task pods, so
        the scheduler's (or the task pods') difference goes into the pod template, and the scheduler restarts
        to read it at once (a mounted ConfigMap changes only at the kubelet's next sync)."""
        form = self._tasks(component)
        tasks = form is not None and unit in (form.launcher, form.task_unit)
        if unit not in self.units_of(component) and not tasks:
            raise SandboxError(f"{component} has no unit {unit}.", "run `sandbox status`.")
        tr = self.translation(state, ctx.secrets)
        if form is not None and tasks:
            self.apply(form.rights(self._launcher(tr, component, form), self.namespace, extra_env))
            unit, marks, extra_env = form.launcher, {"sandbox/task-env": ",".join(sorted(extra_env))}, {}
        else:
            marks = {"sandbox/extra-env": ",".join(sorted(extra_env))}
        deployment = next(w for w in self._on_executor(component, tr.workloads(component))
                          if w["metadata"]["name"] == unit)
        km.set_env(deployment["spec"]["template"]["spec"]["containers"][0], extra_env)
        # a new pod each time, even when the Deployment's own spec is as it was (the template changed)
        marks["sandbox/restarted"] = str(time.time_ns())
        deployment["spec"]["template"]["metadata"]["annotations"] = marks
        self.apply([deployment])
        self.kubectl("rollout", "status", f"deployment/{unit}", "--timeout=300s", timeout=310)

    def observe(self) -> list[dict]:
        return self.snapshot()

    def seen(self, comp: Component, state: State, ctx: ComponentContext, secrets: dict[str, str],
             view: object) -> Seen:
        items: list[dict] = view  # type: ignore[assignment]
        name = comp.name
        st = "disabled" if name in state.disabled else self._state_of(name, items)
        pods = [i for i in items if i["kind"] == "Pod" and i["metadata"]["labels"].get(km.COMPONENT) == name
                and i["metadata"]["labels"].get(km.UNIT) in self.units_of(name)]
        nodes = sorted({p["spec"].get("nodeName", "?") for p in pods})
        detail = f"{len(pods)} pod(s) on {', '.join(nodes)}" if pods else ""
        healthy = None
        if st in ("running", "crashed") and secrets:
            res: Result = comp.health(ctx)()
            healthy = res.ok
            if not res.ok:
                detail = f"{detail}; {res.detail}"
        failing = self._failing_pod(items) if st == "crashed" else None
        if failing:
            detail = failing[1]
        return Seen(st, healthy, detail, [], [failing[0]] if failing else [], [failing[0]] if failing else [])

    def airflow_environs(self) -> dict[str, dict[str, str]]:
        """What each Deployment of the component Airflow's files are handed to gives its pods (the cluster runs
        them; /proc here shows none of them), and its task pods' template."""
        out: dict[str, dict[str, str]] = {}
        for name in (n for n, c in self.components.items() if c.holds_handoff):
            found = json.loads(self.kubectl("get", "deployments", "-l", self._selector(name), "-o", "json"))
            out.update({f"{d['metadata']['name']} (deployment)": {e["name"]: e.get("value", "")
                                                                  for e in d["spec"]["template"]["spec"]
                                                                  ["containers"][0].get("env") or []}
                        for d in found["items"] if d["metadata"]["name"] in self.units_of(name)})
            if (tasks := self._tasks(name)) and (template := self._task_template(tasks)):
                out[f"{tasks.task_unit} (task pods' template)"] = tasks.task_env(template)  # what its pods do not show
        return out

    def inner_url(self, name: str) -> str:
        return self.components[name].inner_url()

    # ---- down ------------------------------------------------------------------------------------
    def down(self, force: bool = False, volumes: bool = False) -> list[str]:
        if not self.paths.home.exists():
            return []
        with file_lock(self.paths.lock):
            state = self._state_for_down(force)
            items = self.snapshot()
            stopped = [n for n in self.components if self._state_of(n, items) != "stopped"]
            if strays := supervisor.owned_processes(self.paths.home):
                supervisor.terminate(strays, grace=2)
            for name in self.components:
                (self.paths.data(name) / ".published").unlink(missing_ok=True)
            self._forget_processes(state)  # what is left in the cluster is found by its labels, not the state
            kinds = f"{OWNED},pods" + (",persistentvolumeclaims" if volumes else "")
            try:
                self.kubectl("delete", kinds, "-l", self._selector(), "--ignore-not-found", "--wait=true",
                             "--timeout=120s", timeout=130)
                if volumes:  # the namespace only if the sandbox made it (a namespace it was given stays)
                    self.kubectl("delete", "namespace", "-l", self._selector(), "--field-selector",
                                 f"metadata.name={self.namespace}", "--timeout=120s", timeout=130)
            except SandboxError as e:
                raise SandboxError(f"The sandbox's forwards are stopped, but its objects in namespace {self.namespace} "
                                   f"could not be deleted: {e.message}",
                                   "check the cluster (`kubectl get nodes`), then `sandbox down` again.") from e
            return stopped

    def log_path(self, component: str) -> Path:
        path = self.paths.log(component)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.kubectl("logs", "-l", self._selector(component), "--all-containers", "--prefix", "--tail=-1",
                            "--max-log-requests=20", check=False)
        credentials.write_private(path, text)
        return path

    def follow(self, components: list[str]) -> Iterator[tuple[str, str]]:
        procs = {c: subprocess.Popen(
            self._kubectl_cmd("logs", "-f", "-l", self._selector(c), "--all-containers", "--prefix", "--since=1s",
                              "--max-log-requests=20"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            for c in components}
        lines: queue.Queue[tuple[str, str]] = queue.Queue()

        def pump(c: str, p: subprocess.Popen) -> None:
            for line in p.stdout:  # type: ignore[union-attr]
                lines.put((c, line.rstrip("\n")))

        for c, p in procs.items():
            threading.Thread(target=pump, args=(c, p), daemon=True).start()
        try:
            while True:
                yield lines.get()
        finally:
            for p in procs.values():
                p.terminate()

    def compose_variables(self) -> dict[str, str]:
        return self._variables(statefile.load(self.paths.state) or State(runtime=self.name))


def _kind_engine_env() -> dict[str, str]:
    """The environment that reaches the engine kind's nodes run on: SANDBOX_KIND_DOCKER_HOST (offline-kind's own
    dockerd), else this machine's."""
    kind_host = os.environ.get("SANDBOX_KIND_DOCKER_HOST")
    return {**os.environ, "DOCKER_HOST": kind_host} if kind_host else dict(os.environ)


def _restarting(items: list[dict]) -> bool:
    """A pod between two restarts: not ready, and its container ended before (its waiting reason is not yet
    CrashLoopBackOff, or no longer)."""
    return any(not cs.get("ready") and cs.get("restartCount", 0) > 0
               for pod in items if pod["kind"] == "Pod"
               for cs in pod.get("status", {}).get("containerStatuses") or [])


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Files as nobody's in particular: the pod's user extracts them as its own (mode kept: the token stays 0600)."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _short(ref: str) -> str:
    """An image reference as Docker shortens it (a node reports docker.io/library/redis:7 for redis:7)."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def schedulable(node: dict) -> bool:
    """A node the sandbox's pods may land on: no NoSchedule taint (kind's control plane has one)."""
    return not any(t.get("effect") == "NoSchedule" for t in node["spec"].get("taints") or [])


def lacking(nodes: list[dict], images: dict[str, str]) -> dict[str, list[str]]:
    """Image → the schedulable nodes whose image list lacks it."""
    out: dict[str, list[str]] = {}
    for node in filter(schedulable, nodes):
        held = {_short(n) for i in node["status"].get("images") or [] for n in i.get("names") or []}
        for ref in images.values():
            if _short(ref) not in held:
                out.setdefault(ref, []).append(node["metadata"]["name"])
    return out


def _not_running(items: list[dict], unit: str) -> str:
    """'' when a pod of `unit` runs all its containers; else what its newest pod waits for."""
    pods = sorted((i for i in items if i["kind"] == "Pod" and i["metadata"].get("labels", {}).get(km.UNIT) == unit
                   and not i["metadata"].get("deletionTimestamp")),
                  key=lambda p: p["metadata"]["creationTimestamp"])
    for pod in pods:
        statuses = pod.get("status", {}).get("containerStatuses") or []
        if statuses and all("running" in (cs.get("state") or {}) for cs in statuses):
            return ""
    if not pods:
        return f"{unit}: no pod yet"
    status = pods[-1].get("status", {})
    why = [c.get("message", "")[:200] for c in status.get("conditions") or []
           if c.get("type") == "PodScheduled" and c.get("status") == "False"]
    why += [reason for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
            if (reason := ((cs.get("state") or {}).get("waiting") or {}).get("reason"))]
    said = f" ({', '.join(why)})" if why else ""
    return f"{unit}: pod {pods[-1]['metadata']['name']} {status.get('phase', 'Pending')}{said}"
