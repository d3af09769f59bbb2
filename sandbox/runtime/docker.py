"""The docker runtime: the same components as containers, created from compose/docker-compose.yml.

Containers are created through the `docker` SDK from the compose file's services (`runtime.compose` reads
it), named and labelled as Compose would (`<project>-<service>-1`, com.docker.compose.*), so
`docker compose -p <project> ps|logs|down` see the same stack. One project per sandbox home.

Health is checked from the host through the published ports with the very checks the local runtime uses,
so "healthy" means the same on both. Secrets and ports come from the sandbox's home as they do locally;
apply, smoke, repro, doctor and the pytest plugin work unchanged through `endpoints()` and `handoff()`.
Inside the network, components reach each other by service name (`inner_url`); the host uses 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sandbox import airflow_files, credentials, engine, versions
from sandbox import ports as portcheck
from sandbox import state as statefile
from sandbox.errors import SandboxError
from sandbox.images import compose_dir
from sandbox.paths import SandboxPaths
from sandbox.privacy import private_umask
from sandbox.provision import file_lock
from sandbox.readiness import Result, wait_for
from sandbox.runtime import compose, startup
from sandbox.runtime.base import ComponentStatus, Progress, ProvisionResult, Runtime, UpResult
from sandbox.runtime.components import all_components
from sandbox.runtime.components.base import Component, Context
from sandbox.state import ProcessRecord, State

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
CONFIG_LABEL = "com.docker.compose.config-hash"
EXTRA_ENV_LABEL = "sandbox.extra-env"  # names (not values) of what `restart` added
STOP_TIMEOUT = 5
AIRFLOW_IMAGE_UID = 50000  # the official image's airflow user (group 0)
# where each component answers inside the network: the compose file's service names and container ports
INNER_URLS = {"keycloak": "http://keycloak:8080", "tyk": "http://tyk:8080", "upstream": "http://upstream:8080",
              "airflow": "http://airflow-api-server:8080", "redis": "redis://redis:6379/0"}


def remove_project(client, project: str, volumes: bool = False) -> bool:
    """Stop and remove every container (and the network; `volumes`: the volumes) labelled with `project`, whatever
    any state file says. Whether there was any container."""
    label = {"label": f"{PROJECT_LABEL}={project}"}
    containers = client.containers.list(all=True, filters=label)
    for c in containers:  # all at once: each stop waits out its own grace
        threading.Thread(target=c.stop, kwargs={"timeout": STOP_TIMEOUT}, daemon=True).start()
    for c in containers:
        c.remove(force=True)
    for net in client.networks.list(filters=label):
        net.remove()
    if volumes:
        for vol in client.volumes.list(filters=label):
            vol.remove(force=True)
    return bool(containers)


def airflow_uid() -> int:
    """The uid Airflow's containers run as: the host user's (the bind-mounted folders are theirs), but never root."""
    return os.getuid() or AIRFLOW_IMAGE_UID


def hand_over(folder: Path, uid: int, gid: int) -> None:
    """`folder` and everything in it owned by uid:gid (links not followed). Files written later into it keep that
    owner (`credentials.write_private` gives a new file its folder's owner when run as root). The home above stays
    root's and 0700, so no host account of that uid reaches them; only the container does, through its mounts."""
    for root, dirs, files in os.walk(folder):
        for name in [None, *dirs, *files]:
            path = root if name is None else os.path.join(root, name)
            os.lchown(path, uid, gid)


def project_name(home: Path) -> str:
    """One Compose project per sandbox home: readable, and distinct for two homes of the same name."""
    slug = re.sub(r"[^a-z0-9]+", "-", home.name.lower()).strip("-") or "sandbox"
    return f"sandbox-{slug[:20]}-{hashlib.sha256(str(home).encode()).hexdigest()[:6]}"


def port_variable(port_name: str) -> str:
    return "SANDBOX_" + port_name.upper().replace("-", "_") + "_PORT"


def image_variable(component: str) -> str:
    return f"SANDBOX_IMAGE_{component.upper()}"


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, paths: SandboxPaths, env_ports: dict[str, int] | None = None, images: str = "auto"):
        self.paths = paths
        self.env_ports = env_ports or {}
        self.images = images
        self.components: dict[str, Component] = {c.name: c for c in all_components()}
        self.compose_file = compose_dir() / "docker-compose.yml"
        self.project = project_name(paths.home)
        self.network = f"{self.project}_default"
        self._client = None
        self._lock = threading.Lock()

    # ---- helpers -------------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            self._client = engine.client()
        return self._client

    def component_names(self) -> list[str]:
        return list(self.components)

    def default_ports(self) -> dict[str, int]:
        return {k: v for c in self.components.values() for k, v in c.default_ports.items()}

    def services_of(self, component: str) -> list[str]:
        names = compose.raw(self.compose_file)["services"]
        return [s for s in names if s == component or s.startswith(component + "-")]

    def _containers(self, all_: bool = True) -> list:
        return self.client.containers.list(all=all_, filters={"label": f"{PROJECT_LABEL}={self.project}"})

    def _by_service(self) -> dict[str, object]:
        return {c.labels.get(SERVICE_LABEL): c for c in self._containers()}

    def _save(self, state: State) -> None:
        with self._lock:
            statefile.save(self.paths.state, state)

    def _variables(self, ports: dict[str, int], secrets: dict[str, str], images: dict[str, str]) -> dict[str, str]:
        """The compose file's variables for this sandbox: its ports, secrets, images and host folders."""
        handoff = self.handoff()
        return {
            **{port_variable(k): str(v) for k, v in ports.items()},
            "SANDBOX_KEYCLOAK_HOSTNAME": f"http://127.0.0.1:{ports['keycloak']}",
            "SANDBOX_CONTAINER_SECRETS": str(self.paths.container_secrets),
            "SANDBOX_AIRFLOW_UID": str(airflow_uid()),
            "SANDBOX_DAGS": str(handoff.dag_folder),
            "SANDBOX_AIRFLOW_SECRETS": str(handoff.variables.parent),
            "SANDBOX_AIRFLOW_WORKER_HOME": str(handoff.home),
            "SANDBOX_AIRFLOW_LIB": str(handoff.lib),
            "SANDBOX_AIRFLOW_CONFIG": str(self.paths.data("airflow")),
            **{image_variable(c): ref for c, ref in images.items()},
        }

    def compose_variables(self) -> dict[str, str]:
        """The variables a hand-run `docker compose` needs to address this running sandbox (no secret among them:
        the containers read theirs from the files `up` wrote)."""
        state = statefile.load(self.paths.state) or State(runtime="docker")
        return self._variables(state.ports, credentials.read(self.paths.secrets), state.images)

    def _services(self, state: State, secrets: dict[str, str]) -> dict[str, compose.Service]:
        return compose.load(self.compose_file, self._variables(state.ports, secrets, state.images))

    # ---- images --------------------------------------------------------------------------------
    def choose_images(self) -> dict[str, str]:
        """Per component: SANDBOX_IMAGE_<C>; else --images official|local; else (auto) the official image if this
        engine has it, else one `sandbox images build` made, else the official one (pulled)."""
        chosen = {}
        for name in self.components:
            given = os.environ.get(image_variable(name))
            official, local = versions.IMAGES[name], versions.local_image(name)
            if given:
                chosen[name] = given
            elif self.images == "official":
                chosen[name] = official
            elif self.images == "local":
                chosen[name] = local
            else:
                chosen[name] = official if self._has(official) or not self._has(local) else local
        return chosen

    def _has(self, ref: str) -> bool:
        from docker.errors import ImageNotFound

        try:
            self.client.images.get(ref)
            return True
        except ImageNotFound:
            return False

    def _ensure_image(self, ref: str, component: str, progress: Progress) -> None:
        from docker.errors import APIError, ImageNotFound

        if self._has(ref):
            return
        if ref == versions.local_image(component):
            raise SandboxError(f"The image {ref} has not been built on this machine.",
                               f"run `sandbox images build {component}` first.")
        progress(component, f"pulling {ref}")
        try:
            self.client.images.pull(ref)
        except (APIError, ImageNotFound) as e:
            raise SandboxError(
                f"The image {ref} is not on this machine and cannot be pulled ({str(e).splitlines()[0][:160]}).",
                f"build it from package registries: `sandbox images build {component}`, then "
                "`sandbox up --runtime docker --images local`.") from e

    def provision(self, only: list[str], progress: Progress) -> list[ProvisionResult]:
        """Have every image at hand: present, pulled, or (where no registry answers) to be built."""
        self.check_names(only, "provision")
        images = self.choose_images()
        out = []
        for name in only or self.components:
            t0 = time.monotonic()
            try:
                had = self._has(images[name])
                self._ensure_image(images[name], name, progress)
                out.append(ProvisionResult(name, True, "cached" if had else "provisioned", time.monotonic() - t0,
                                           images[name]))
            except SandboxError as e:
                out.append(ProvisionResult(name, False, "failed", time.monotonic() - t0, e.message))
        return out

    # ---- up ------------------------------------------------------------------------------------
    def up(self, without: list[str], ports: dict[str, int], progress: Progress) -> list[UpResult]:
        self.check_names(without, "--without")
        with private_umask():
            self.paths.home.mkdir(parents=True, exist_ok=True)
            with file_lock(self.paths.lock):
                return self._up(without, ports, progress)

    def _up(self, without: list[str], overrides: dict[str, int], progress: Progress) -> list[UpResult]:
        state = statefile.load(self.paths.state) or State(runtime="docker")
        if state.runtime != "docker" and any(state.processes.values()):
            raise SandboxError(f"This sandbox runs on the {state.runtime} runtime.",
                               "run `sandbox down` first, then `sandbox up --runtime docker`.", exit_code=2)
        state.runtime = "docker"
        secrets = credentials.load_or_create(self.paths.secrets)
        wanted = [n for n in self.components if n not in without]
        startup.check_without(self.components, wanted, without)
        existing = self._by_service()
        running = {n for n in wanted if self._component_state(n, existing) == "running"}
        requested = {**self.env_ports, **overrides}
        startup.check_port_changes(self.components, running, state.ports, requested)
        state.ports = portcheck.resolve(self.default_ports(), state.ports, requested)
        state.disabled = sorted(without)
        state.images = {**self.choose_images(), **{n: state.images[n] for n in running if n in state.images}}
        state.processes = {n: r for n, r in state.processes.items() if n in running}
        self._save(state)
        results: dict[str, UpResult] = {}
        for name in without:
            if self._remove(self.services_of(name), existing):
                results[name] = UpResult(name, "stopped", 0.0, "left out with --without")
        to_start = [n for n in wanted if n not in running]
        self._preflight(to_start, state, progress)
        self._prepare_host(secrets)
        self._ensure_network_and_volumes()
        services = self._services(state, secrets)
        ctx = Context(self.paths, state.ports, secrets)

        def bring_up(name: str) -> None:
            comp = self.components[name]
            t0 = time.monotonic()
            if name in running:
                res = wait_for(comp.health(ctx), comp.start_timeout, abort=self._died(name))
                action = "already-running"
            else:
                progress(name, f"starting ({state.images[name]})")
                action = "restarted" if any(s in existing for s in self.services_of(name)) else "started"
                self._remove(self.services_of(name), existing)
                for svc in self.services_of(name):
                    self._start_service(services[svc], {}, progress)
                res = wait_for(comp.health(ctx), comp.start_timeout, abort=self._died(name))
            if not res.ok:
                raise SandboxError(res.detail)
            with self._lock:
                state.processes[name] = self._records(name)
            self._save(state)
            secs = time.monotonic() - t0
            if action != "already-running":
                progress(name, f"healthy in {secs:.1f}s")
            results[name] = UpResult(name, action, secs)

        failed = startup.start_all(self.components, wanted, bring_up, results, progress)
        if failed:
            name, why = next(iter(failed.items()))
            raise startup.not_healthy(self.components[name], why, self._tail(name, 400), "its containers",
                                      [n for n in wanted if n not in failed])
        return [results[n] for n in self.components if n in results]

    def _preflight(self, to_start: list[str], state: State, progress: Progress) -> None:
        startup.check_ports_free(self.components, to_start, state.ports)
        for name in to_start:
            self._ensure_image(state.images[name], name, progress)

    def _prepare_host(self, secrets: dict[str, str]) -> None:
        """The host folders the containers mount, made first: what Docker creates for a missing one is root's."""
        handoff = self.handoff()
        handoff.dag_folder.mkdir(parents=True, exist_ok=True)
        handoff.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        airflow_files.install_lib(handoff.lib)
        if not handoff.variables.exists():
            credentials.write_private(handoff.variables, "{}")
        config = self.paths.data("airflow")
        config.mkdir(mode=0o700, parents=True, exist_ok=True)
        credentials.write_private(config / "passwords.json",
                                  json.dumps({"admin": secrets["airflow_admin_password"]}))
        self._write_container_secrets(secrets)
        if os.getuid() == 0:  # Airflow runs as the image's user: the folders it reads and writes become its own
            for folder in (handoff.dag_folder, handoff.home, handoff.lib, handoff.variables.parent, config):
                hand_over(folder, AIRFLOW_IMAGE_UID, 0)

    def _write_container_secrets(self, secrets: dict[str, str]) -> None:
        """One file per secret the compose file names, for its bind mount at /run/secrets/<name>. The folder is the
        user's alone (0700); the files are readable (0644) so that each container's own user reads the ones mounted
        into it, and only those."""
        folder = self.paths.container_secrets
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
        for name in compose.raw(self.compose_file).get("secrets") or {}:
            path = folder / name
            credentials.write_private(path, secrets[name])
            path.chmod(0o644)

    def _ensure_network_and_volumes(self) -> None:
        labels = {PROJECT_LABEL: self.project}
        if not self.client.networks.list(names=[self.network]):
            self.client.networks.create(self.network, driver="bridge",
                                        labels={**labels, "com.docker.compose.network": "default"})
        for vol in compose.raw(self.compose_file).get("volumes") or {}:
            full = f"{self.project}_{vol}"
            if not self.client.volumes.list(filters={"name": full}):
                self.client.volumes.create(full, labels={**labels, "com.docker.compose.volume": vol})

    def _start_service(self, svc: compose.Service, extra_env: dict[str, str], progress: Progress):
        """Create and start one service's container; a one-shot service is run to its end (exit 0 or error)."""
        env = {**svc.environment, **extra_env}
        config = hashlib.sha256(json.dumps([svc.image, svc.entrypoint, svc.command, env, svc.user,
                                            [vars(p) for p in svc.ports], [vars(v) for v in svc.volumes]],
                                           sort_keys=True).encode()).hexdigest()
        hc = svc.healthcheck
        kwargs = dict(
            image=svc.image, entrypoint=svc.entrypoint, command=svc.command, name=f"{self.project}-{svc.name}-1",
            environment=env, user=svc.user, detach=True, hostname=svc.name,
            labels={PROJECT_LABEL: self.project, SERVICE_LABEL: svc.name, CONFIG_LABEL: config,
                    "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
                    EXTRA_ENV_LABEL: ",".join(sorted(extra_env))},
            ports={f"{p.container_port}/tcp": (p.host_ip, p.host_port) for p in svc.ports},
            volumes={(f"{self.project}_{v.source}" if v.named else v.source):
                     {"bind": v.target, "mode": "ro" if v.read_only else "rw"} for v in svc.volumes},
            network=self.network,
            networking_config={self.network: self.client.api.create_endpoint_config(aliases=[svc.name])},
            healthcheck={"test": hc["test"], "interval": compose.duration_ns(hc.get("interval"), 30),
                         "timeout": compose.duration_ns(hc.get("timeout"), 30), "retries": int(hc.get("retries", 3)),
                         "start_period": compose.duration_ns(hc.get("start_period"), 0)} if hc else None,
        )
        container = self.client.containers.create(**kwargs)
        container.start()
        if svc.one_shot:
            progress(svc.name.split("-")[0], f"{svc.name}: {' '.join(svc.command or [])}")
            code = container.wait(timeout=600).get("StatusCode")
            if code != 0:
                tail = container.logs(tail=15).decode(errors="replace")
                raise SandboxError(f"{svc.name} exited with {code}:\n{tail}")
        return container

    def _remove(self, services: list[str], existing: dict) -> bool:
        gone = False
        for svc in services:
            c = existing.get(svc)
            if c is not None:
                c.remove(force=True)
                gone = True
        return gone

    def _records(self, component: str) -> list[ProcessRecord]:
        """Each running container's main process, as the host sees it (doctor reads its environment)."""
        import psutil

        out = []
        for svc in self.services_of(component):
            c = self._by_service().get(svc)
            if c is None or c.status != "running" or svc.endswith("-init"):
                continue
            pid = c.attrs["State"]["Pid"]
            try:
                created = psutil.Process(pid).create_time()
            except psutil.Error:
                continue
            extra = [k for k in c.labels.get(EXTRA_ENV_LABEL, "").split(",") if k]
            env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"] if "=" in e)
            out.append(ProcessRecord(svc, pid, created, c.attrs["Config"].get("Cmd") or [],
                                     {k: env.get(k, "") for k in extra}))
        return out

    def _component_state(self, name: str, existing: dict) -> str:
        svcs = [s for s in self.services_of(name) if not s.endswith("-init")]
        have = [existing[s] for s in svcs if s in existing]
        if not have:
            return "stopped"
        return "running" if len(have) == len(svcs) and all(c.status == "running" for c in have) else "crashed"

    def _died(self, name: str):
        def check() -> str | None:
            existing = self._by_service()
            dead = [s for s in self.services_of(name) if not s.endswith("-init")
                    and s in existing and existing[s].status in ("exited", "dead")]
            return f"container {dead[0]} exited" if dead else None

        return check

    def _tail(self, component: str, lines: int) -> list[str]:
        out = []
        existing = self._by_service()
        for svc in self.services_of(component):
            if svc in existing:
                text = existing[svc].logs(tail=lines).decode(errors="replace")
                out += [f"{svc}| {line}" for line in text.splitlines()]
        return out[-lines:]

    # ---- restart one process -------------------------------------------------------------------
    def restart(self, component: str, process: str, extra_env: dict[str, str]) -> None:
        self.check_names([component], "restart")
        comp = self.components[component]
        with private_umask(), file_lock(self.paths.lock):
            state = statefile.load(self.paths.state) or State(runtime="docker")
            existing = self._by_service()
            if process not in existing or existing[process].status != "running":
                raise SandboxError(f"{component} has no running container {process}.", "run `sandbox up` first.")
            secrets = credentials.read(self.paths.secrets)
            services = self._services(state, secrets)
            existing[process].remove(force=True)
            self._start_service(services[process], extra_env, lambda c, m: None)
            ctx = Context(self.paths, state.ports, secrets)
            res = wait_for(comp.health(ctx), comp.start_timeout, abort=self._died(component))
            state.processes[component] = self._records(component)
            self._save(state)
            if not res.ok:
                raise SandboxError(f"{component} did not become healthy after restarting {process}: {res.detail}",
                                   f"see `sandbox logs {component}`; `sandbox down` and `sandbox up` start it clean.")

    # ---- down ----------------------------------------------------------------------------------
    def down(self, force: bool = False, volumes: bool = False) -> list[str]:
        if not self.paths.home.exists():
            return []
        with file_lock(self.paths.lock):
            existing = self._by_service()
            stopped = [n for n in self.components
                       if any(existing[s].status == "running" for s in self.services_of(n) if s in existing)]
            remove_project(self.client, self.project, volumes)
            try:
                state = statefile.load(self.paths.state)
            except SandboxError:
                if not force:
                    raise
                state = None
            if state is None:
                statefile.reset(self.paths.state)
            else:
                state.processes, state.starting = {}, []
                self._save(state)
            return stopped

    # ---- status --------------------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        state = statefile.load(self.paths.state) or State(runtime="docker")
        ports = {**self.default_ports(), **state.ports} if state.ports else \
            portcheck.resolve(self.default_ports(), {}, self.env_ports)
        secrets = credentials.read(self.paths.secrets)
        ctx = Context(self.paths, ports, secrets)
        existing = self._by_service()

        def one(comp: Component) -> ComponentStatus:
            name = comp.name
            st = "disabled" if name in state.disabled else self._component_state(name, existing)
            healthy, detail = None, state.images.get(name, "")
            if st in ("running", "crashed") and secrets:
                res: Result = comp.health(ctx)()
                healthy = res.ok
                detail = f"{state.images.get(name, '')}; {res.detail}" if not res.ok else detail
            if st == "crashed":
                dead = [s for s in self.services_of(name) if not s.endswith("-init")
                        and (s not in existing or existing[s].status != "running")]
                detail = f"container(s) not running: {', '.join(dead)}"
            login = comp.login
            return ComponentStatus(
                name=name, state=st, healthy=healthy, detail=detail, url=comp.url(ctx),
                urls=comp.extra_urls(ctx), ports={k: ports[k] for k in comp.default_ports},
                pids=[r.pid for r in state.processes.get(name, [])] if st == "running" else [],
                username=login.username if login else None,
                secret=secrets.get(login.secret_name) if login else None,
                inner_url=INNER_URLS.get(name, ""), runtime=self.name,
            )

        return [one(c) for c in self.components.values()]

    def follow(self, components: list[str]) -> Iterator[tuple[str, str]]:
        """New lines of the components' running containers, straight from the engine (one thread per container)."""
        lines: queue.Queue[tuple[str, str]] = queue.Queue()
        since = time.time()
        existing = self._by_service()

        def pump(component: str, container) -> None:
            for chunk in container.logs(stream=True, follow=True, since=since):
                for line in chunk.decode(errors="replace").splitlines():
                    lines.put((component, line))

        for name in components:
            for svc in self.services_of(name):
                if svc in existing and existing[svc].status == "running":
                    threading.Thread(target=pump, args=(name, existing[svc]), daemon=True).start()
        while True:
            yield lines.get()

    def log_path(self, component: str) -> Path:
        """The component's containers' logs, written to the sandbox's log file for `sandbox logs`."""
        path = self.paths.log(component)
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = self._by_service()
        chunks = []
        for svc in self.services_of(component):
            if svc in existing:
                text = existing[svc].logs(timestamps=False).decode(errors="replace")
                chunks.append("".join(f"{svc}| {line}\n" for line in text.splitlines()))
        credentials.write_private(path, "".join(chunks))  # logs name accounts and hosts: the user's alone
        return path
