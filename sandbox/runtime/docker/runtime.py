"""The docker runtime: the same components as containers, created from compose/docker-compose.yml.

Containers are created through the `docker` SDK from the compose file's services (`runtime.compose` reads
it), named and labelled as Compose would (`<project>-<service>-1`, com.docker.compose.*), so
`docker compose -p <project> ps|logs|down` see the same stack. One project per sandbox home. Where a component
says how (`shared_container`: Airflow), its long-running services run in one container, its main service's, from
one process; a service restarted alone then gets a container of its own.

Health is checked from the host through the published ports with the very checks the local runtime uses,
so "healthy" means the same on both. Secrets and ports come from the sandbox's home as they do locally;
apply, smoke, repro, doctor and the pytest plugin work unchanged through `endpoints()` and `handoff()`.
Inside the network, components reach each other by service name (`inner_url`); the host uses 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.host import credentials, engine
from sandbox.host.provision import file_lock
from sandbox.host.readiness import Result
from sandbox.paths import SandboxPaths, compose_dir
from sandbox.runtime import state as statefile
from sandbox.runtime.base import Progress, ProvisionResult
from sandbox.runtime.component import Component, ComponentContext
from sandbox.runtime.docker import compose
from sandbox.runtime.scheduler import start_in_order
from sandbox.runtime.skeleton import HOST_PORTS, Seen, SkeletonRuntime
from sandbox.runtime.state import ProcessRecord, State

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
CONFIG_LABEL = "com.docker.compose.config-hash"
EXTRA_ENV_LABEL = "sandbox.extra-env"  # names (not values) of what `restart` added
UNITS_LABEL = "sandbox.units"  # on a shared container (`Component.shared_container`): the services it runs
STOP_TIMEOUT = 5
# How often a health wait asks the engine whether a container of its component exited: one listing shared by every
# wait running at once. The waits poll health four times a second; a listing each time (five waits at once) kept
# dockerd busy on the two cores the starts need, and an exit seen within a second ends the wait as soon.
DIED_CHECK_EVERY = 1.0
# The sandbox checks every component's health itself, from the host (`up`, `status`): a container's own check is
# for `docker ps` and a hand-run `docker compose up --wait`. Each run of one is an exec in the container (runc and
# its shim, about 40 ms of CPU): at the file's 2-5 s, 28 of them during one `up`, on the cores the starts need. The
# sandbox's containers run theirs at least 10 s apart.
CONTAINER_CHECK_EVERY = 10

def remove_project(client, project: str, volumes: bool = False) -> bool:
    """Stop and remove every container (and the network; `volumes`: the volumes) labelled with `project`, whatever
    any state file says. Whether there was any container."""
    label = {"label": f"{PROJECT_LABEL}={project}"}
    containers = client.containers.list(all=True, filters=label, sparse=True)  # no inspect of each: not needed
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


def units_of(container) -> list[str]:
    """The services a shared container runs (its label); [] for a container of one service."""
    attrs = container.attrs  # a listing's (sparse) or an inspect's
    labels = attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {}
    return [u for u in (labels.get(UNITS_LABEL) or "").split(",") if u]


def which_unit_ended(container) -> tuple[str, str] | None:
    """For a shared container that exited: the service whose end stopped it and its launcher's words for it
    ("<service> exited with <code>", its last such line in the log), else None."""
    if len(units_of(container)) < 2:
        return None
    marks = [line.removeprefix("=== sandbox: ").split(":")[0]
             for line in container.logs(tail=50).decode(errors="replace").splitlines()
             if line.startswith("=== sandbox: ") and " exited with " in line]
    return (marks[-1].split(" exited with ")[0], marks[-1]) if marks else None


def _said(ended: tuple[str, str] | None) -> str:
    return f" ({ended[1]})" if ended else ""


def run_as(image_user: int) -> int:
    """The uid containers of an image that runs as `image_user` run as: the host user's (the bind-mounted folders
    are theirs), but never root (root's host: the image's own user, handed those folders)."""
    return os.getuid() or image_user


def hand_over(folder: Path, uid: int, gid: int) -> None:
    """`folder` and everything in it owned by uid:gid (links not followed). Files written later into it keep that
    owner (`credentials.write_private` gives a new file its folder's owner when run as root). The home above stays
    root's and 0700, so no host account of that uid reaches them; only the container does, through its mounts."""
    for root, dirs, files in os.walk(folder):
        for name in [None, *dirs, *files]:
            path = root if name is None else os.path.join(root, name)
            os.lchown(path, uid, gid)


port_variable, image_variable, project_name = compose.port_variable, compose.image_variable, compose.project_name


class DockerRuntime(SkeletonRuntime):
    name = "docker"

    def __init__(self, paths: SandboxPaths, env_ports: dict[str, int] | None = None, images: str = "auto", *,
                 components: list[Component]):
        super().__init__(paths, env_ports, components=components)
        self.images = images
        self.compose_file = compose_dir() / "docker-compose.yml"
        self.project = project_name(paths.home)
        self.network = f"{self.project}_default"
        self._client = None
        self._services_now: dict[str, compose.Service] = {}  # what this `up` creates containers from
        self._listing: tuple[float, dict[str, object]] | None = None  # the died-checks' shared listing, and when
        self._listing_lock = threading.Lock()

    # ---- helpers -------------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            self._client = engine.client()
        return self._client

    def services_of(self, component: str) -> list[str]:
        names = compose.raw(self.compose_file)["services"]
        return [s for s in names if compose.component_of(s, [component])]

    def _containers(self, all_: bool = True) -> list:
        # Sparse: one listing call, without docker-py's inspect of each container after it — `up` looks several
        # times a second while it waits (has a container died?), and a dozen inspects each time kept the engine
        # busy on two cores that the starts need. Sparse objects have the listing's fields (State, Labels) and
        # can be removed and read from; `_records` inspects the few it needs in full.
        return self.client.containers.list(all=all_, filters={"label": f"{PROJECT_LABEL}={self.project}"},
                                           sparse=True)

    def _by_service(self) -> dict[str, object]:
        return {(c.attrs.get("Labels") or {}).get(SERVICE_LABEL): c for c in self._containers()}

    def _recent_by_service(self) -> dict[str, object]:
        """`_by_service` as listed at most DIED_CHECK_EVERY ago, one listing for every thread that asks."""
        with self._listing_lock:
            if self._listing is None or time.monotonic() - self._listing[0] >= DIED_CHECK_EVERY:
                listing = self._by_service()
                # its age from when it came back: a listing slower than DIED_CHECK_EVERY on a loaded engine would
                # otherwise be stale at once, and each waiter behind the lock would list again in turn
                self._listing = (time.monotonic(), listing)
            return self._listing[1]

    def _forget_listing(self) -> None:
        """After containers were removed and made: a listing from before would show the old ones (exited)."""
        with self._listing_lock:
            self._listing = None

    def _variables(self, state: State) -> dict[str, str]:
        """The compose file's variables for this sandbox, from what each component says of itself (ports, host
        folders, settings) and what this runtime chose (images, the secrets' folder, Airflow's uid)."""
        ctx = ComponentContext(self.paths, {**self.default_ports(), **state.ports}, {}, runtime=self.name)
        out = compose.variables(self.components.values(), ctx, set(HOST_PORTS))  # the page: the host's
        return {**out, "SANDBOX_CONTAINER_SECRETS": str(self.paths.container_secrets),
                **{compose.uid_variable(c.name): str(run_as(c.image_user)) for c in self.components.values()
                   if c.image_user is not None},
                **{image_variable(c): state.image_ids.get(c, ref) for c, ref in state.images.items()}}

    def compose_variables(self) -> dict[str, str]:
        """The variables a hand-run `docker compose` needs to address this running sandbox (no secret among them:
        the containers read theirs from the files `up` wrote)."""
        return self._variables(statefile.load(self.paths.state) or State(runtime=self.name))

    def _services(self, state: State) -> dict[str, compose.Service]:
        return compose.load(self.compose_file, self._variables(state))

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
        return self._image_id(ref) is not None

    def _image_id(self, ref: str) -> str | None:
        from docker.errors import ImageNotFound

        try:
            return self.client.images.get(ref).id
        except ImageNotFound:
            return None

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

    # ---- the skeleton's hooks --------------------------------------------------------------------
    def component_state(self, name: str, state: State) -> str:
        return self._component_state(name, self._by_service())

    def before_start(self, state: State, running: set[str]) -> None:
        state.images = {**self.choose_images(), **{n: state.images[n] for n in running if n in state.images}}
        state.image_ids = {n: i for n, i in state.image_ids.items() if n in running}
        state.processes = {n: r for n, r in state.processes.items() if n in running}

    def stop_component(self, name: str, state: State) -> bool:
        state.processes.pop(name, None)
        return self._remove(self.services_of(name), self._by_service())

    def clear_for_start(self, name: str, state: State, progress: Progress) -> bool:
        # what is left (a crashed container and its log) stays until its new containers are made: `start_component`
        existing = self._by_service()
        return any(s in existing for s in self.services_of(name))

    def start_message(self, name: str, state: State) -> str:
        return f"starting ({state.images[name]})"

    def check_startable(self, to_start: list[str], state: State, progress: Progress) -> None:
        for name in to_start:
            self._ensure_image(state.images[name], name, progress)
            state.image_ids[name] = self._image_id(state.images[name]) or state.images[name]

    def prepare_host(self, state: State, secrets: dict[str, str]) -> None:
        self._prepare_host(state, secrets)
        self._ensure_network_and_volumes()
        self._services_now = self._services(state)

    def start_component(self, name: str, ctx: ComponentContext, state: State, progress: Progress) -> None:
        """Its containers in parallel as their services' `depends_on` allows (the components' own ordering): a
        one-shot (`airflow-init`) to its end, then the rest together (Airflow's: one, shared by its four services)."""
        services = self.services_of(name)
        self._remove(services, self._by_service())
        plan = self._containers_of(name, self._services_now)
        services = [s for s in services if s in plan]
        failed = start_in_order(services, {s: tuple(plan[s][0].depends_on) for s in services},
                                lambda s: self._start_service(plan[s][0], {}, progress, plan[s][1]))
        self._forget_listing()
        if failed:  # the first in the file's order: what the others waited for
            raise SandboxError(next(failed[s] for s in services if s in failed))

    def _containers_of(self, name: str, services: dict[str, compose.Service]) -> dict[str, tuple]:
        """The containers a start of `name` makes: service -> (what it runs, the services it runs). One container
        for all its long-running services where the component says how (`shared_container`), else one each."""
        comp = self.components[name]
        own = {s: (services[s], [s]) for s in self.services_of(name)}
        host = comp.service or comp.name
        units = [s for s in own if not services[s].one_shot]
        shared = comp.shared_container({s: list(services[s].command or []) for s in units}) \
            if host in units and len(units) > 1 else None
        if shared is None:
            return own
        cmd, env = shared
        svc = services[host]
        return {**{s: v for s, v in own.items() if s not in units},
                host: (dataclasses.replace(svc, command=cmd, environment={**svc.environment, **env}), units)}

    def _expected(self, name: str, existing: dict) -> list[str]:
        """The component's long-running services that must have a running container: each of its own, but a service
        a shared container runs only once it was restarted into a container of its own."""
        services = [s for s in self.services_of(name) if not s.endswith("-init")]
        hosted = {u for s in services if s in existing for u in units_of(existing[s]) if u != s}
        return [s for s in services if s not in hosted or s in existing]

    def after_wait(self, name: str, ctx: ComponentContext, state: State, res: Result, started: bool,
                   progress: Progress) -> None:
        if res.ok:  # a failed component's containers are not recorded: the sandbox does not run them
            self.record(name, state)

    def record(self, name: str, state: State) -> None:
        with self._lock:  # saved by the skeleton right after
            state.processes[name] = self._records(name)

    def died(self, name: str, state: State):
        def check() -> str | None:
            existing = self._recent_by_service()
            dead = [s for s in self._expected(name, existing)
                    if s in existing and existing[s].status in ("exited", "dead")]
            return f"container {dead[0]} exited{_said(which_unit_ended(existing[dead[0]]))}" if dead else None

        return check

    def tail(self, name: str, lines: int) -> tuple[list[str], str]:
        out = []
        existing = self._by_service()
        for svc in self.services_of(name):
            if svc in existing:
                text = existing[svc].logs(tail=lines).decode(errors="replace")
                out += [f"{svc}| {line}" for line in text.splitlines()]
        return out[-lines:], "its containers"

    def replace_unit(self, component: str, unit: str, extra_env: dict[str, str], ctx: ComponentContext,
                     state: State) -> None:
        existing = self._by_service()
        own = existing.get(unit)
        host = next((c for c in existing.values() if unit in units_of(c) and c is not own), None)
        if own is not None and own.status == "running" and len(units_of(own)) > 1:
            self._restart_host(component, unit, own, existing, extra_env, state)
            return
        if own is not None and own.status == "running":
            own.remove(force=True)
        elif host is not None and host.status == "running":
            if own is not None:  # its own container from an earlier restart, exited: its name is made again
                own.remove(force=True)
            self._release(host, component, unit)
        elif own is not None:  # its own container exited, and no other hosts it (one made again since): anew
            own.remove(force=True)
        else:
            raise SandboxError(f"{component} has no running container {unit}.", "run `sandbox up` first.")
        self._start_service(self._services(state)[unit], extra_env, lambda c, m: None)
        self._forget_listing()

    def _restart_host(self, component: str, unit: str, own, existing: dict, extra_env: dict[str, str],
                      state: State) -> None:
        """`unit`'s container is the shared one (its main service's): it cannot leave the others, so the container
        is made again with the services it still runs or should (not those running in containers of their own,
        restarted so since; those whose own container exited come back into it), all of them given `extra_env`
        — every Airflow process reads the `AIRFLOW__*` variables it is given, so a variable meant for one service
        reaches the others here, as it does not on the local runtime."""
        services = self._services(state)
        units = [s for s in self.services_of(component) if s in services and not services[s].one_shot]
        hosted = [u for u in units if u == unit or u not in existing or existing[u].status != "running"]
        for u in hosted:
            if u != unit and u in existing:  # its own container, exited: the shared one runs it again
                existing[u].remove(force=True)
        svc = services[unit]
        if len(hosted) > 1 and (shared := self.components[component].shared_container(
                {s: list(services[s].command or []) for s in hosted})) is not None:
            cmd, env = shared
            svc = dataclasses.replace(svc, command=cmd, environment={**svc.environment, **env})
        own.remove(force=True)
        self._start_service(svc, extra_env, lambda c, m: None, hosted)
        self._forget_listing()

    def _release(self, host, component: str, unit: str) -> None:
        """Stop one service of a shared container for good; the container goes on with the others."""
        code, out = host.exec_run(self.components[component].release_command(unit))
        if code != 0:
            raise SandboxError(f"could not stop {unit} in its shared container: {out.decode(errors='replace')}",
                               "`sandbox down` and `sandbox up` start it clean.")

    def observe(self) -> dict[str, object]:
        return self._by_service()  # one snapshot of the containers (and one client) for every row

    def seen(self, comp: Component, state: State, ctx: ComponentContext, secrets: dict[str, str],
             view: object) -> Seen:
        name = comp.name
        existing: dict = view  # type: ignore[assignment]
        st = "disabled" if name in state.disabled else self._component_state(name, existing)
        healthy, detail = None, state.images.get(name, "")
        if st in ("running", "crashed") and secrets:
            res: Result = comp.health(ctx)()
            healthy = res.ok
            detail = f"{state.images.get(name, '')}; {res.detail}" if not res.ok else detail
        dead: list[str] = []
        ended: list[str] = []
        if st == "crashed":
            dead = [s for s in self._expected(name, existing)
                    if s not in existing or existing[s].status != "running"]
            which = {s: which_unit_ended(existing[s]) if s in existing else None for s in dead}
            detail = f"container(s) not running: {', '.join(dead)}" + "".join(_said(w) for w in which.values())
            ended = [w[0] if w else s for s, w in which.items()]  # a shared container: the service that ended it
        return Seen(st, healthy, detail, [r.pid for r in state.processes.get(name, [])] if st == "running" else [],
                    ended, dead)

    def inner_url(self, name: str) -> str:
        return self.components[name].inner_url()

    def _prepare_host(self, state: State, secrets: dict[str, str]) -> None:
        """What the containers read from the host, made first (a folder Docker makes for a missing one is root's)."""
        ctx = ComponentContext(self.paths, state.ports, secrets, runtime=self.name)
        for comp in self.components.values():
            comp.prepare_host(ctx)
        self._write_container_secrets(secrets)
        if os.getuid() == 0:  # such a component runs as its image's user: the folders it uses become its own
            for comp in self.components.values():
                if comp.image_user is not None:
                    for folder in comp.host_folders(ctx).values():
                        hand_over(folder, comp.image_user, 0)

    def _write_container_secrets(self, secrets: dict[str, str]) -> None:
        """One file per secret a component reads, for its bind mount at /run/secrets/<name>. The folder is the
        user's alone (0700); the files are readable (0644) so that each container's own user reads the ones mounted
        into it, and only those."""
        folder = self.paths.container_secrets
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
        for name in sorted({s for comp in self.components.values() for s in comp.secrets}):
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

    def _start_service(self, svc: compose.Service, extra_env: dict[str, str], progress: Progress,
                       units: list[str] | None = None):
        """Create and start one service's container (running `units`, when it is shared); a one-shot service is run
        to its end (exit 0 or error)."""
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
                    EXTRA_ENV_LABEL: ",".join(sorted(extra_env)),
                    **({UNITS_LABEL: ",".join(units)} if units and len(units) > 1 else {})},
            ports={f"{p.container_port}/tcp": (p.host_ip, p.host_port) for p in svc.ports},
            volumes={(f"{self.project}_{v.source}" if v.named else v.source):
                     {"bind": v.target, "mode": "ro" if v.read_only else "rw"} for v in svc.volumes},
            network=self.network,
            networking_config={self.network: self.client.api.create_endpoint_config(aliases=[svc.name])},
            healthcheck={"test": hc["test"],
                         "interval": max(compose.duration_ns(hc.get("interval"), 30), CONTAINER_CHECK_EVERY * 10**9),
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
        from docker.errors import NotFound

        out = []
        existing = self._by_service()
        for svc in self.services_of(component):
            c = existing.get(svc)
            if c is None or c.status != "running" or svc.endswith("-init"):
                continue
            try:
                c.reload()  # the full inspect: its pid, environment and command
            except NotFound:
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
        svcs = self._expected(name, existing)
        have = [existing[s] for s in svcs if s in existing]
        if not have:
            return "stopped"
        return "running" if len(have) == len(svcs) and all(c.status == "running" for c in have) else "crashed"

    # ---- down ----------------------------------------------------------------------------------
    def down(self, force: bool = False, volumes: bool = False) -> list[str]:
        if not self.paths.home.exists():
            return []
        with file_lock(self.paths.lock):
            existing = self._by_service()
            stopped = [n for n in self.components
                       if any(existing[s].status == "running" for s in self.services_of(n) if s in existing)]
            remove_project(self.client, self.project, volumes)
            self._forget_processes(self._state_for_down(force))
            return stopped

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
