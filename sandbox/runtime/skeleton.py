"""The flow every runtime shares — `up`, `restart`, `status`, and `down`'s bookkeeping — over a few hooks.

A runtime says only how it does what differs: start a component, tell whether it runs or died, stop it, tail its
log, and what its status row adds. Everything else (state, secrets, ports, --without, the dependency order,
health waits, a crash's cause, one recorded runtime per sandbox) happens here, once, for every runtime; a new
runtime is one module with these hooks and its registration in `factory`.
"""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from sandbox.errors import SandboxError
from sandbox.host import credentials
from sandbox.host import ports as portcheck
from sandbox.host.privacy import private_umask
from sandbox.host.provision import file_lock
from sandbox.host.readiness import Result, wait_for
from sandbox.paths import SandboxPaths
from sandbox.runtime import startup
from sandbox.runtime import state as statefile
from sandbox.runtime.base import ComponentStatus, Endpoints, Progress, Runtime, UpResult
from sandbox.runtime.component import Component, ComponentContext
from sandbox.runtime.state import State


# what a runtime says of one component in `status`: state, healthy, detail, pids
class Seen(NamedTuple):
    """A component as its runtime sees it: its state, health, what to tell a person, its processes, and by name the
    units (processes, services, pods) that exited of themselves (`ended`) or are not running (`stopped`: the ended
    ones and those that stopped with them, such as services sharing a container)."""

    state: str
    healthy: bool | None
    detail: str
    pids: list[int]
    ended: tuple[str, ...] | list[str] = ()
    stopped: tuple[str, ...] | list[str] = ()

HOST_PORTS = {"ui": 28090}  # the sandbox's page (`sandbox ui`), a process of the host whatever the runtime


class SkeletonRuntime(Runtime):
    def __init__(self, paths: SandboxPaths, env_ports: dict[str, int] | None = None, *,
                 components: list[Component]):
        """`env_ports`: ports asked for in the environment (SANDBOX_PORTS), parsed once at the edge. `components`:
        what it runs, in order (`sandbox.systems.all_components()`): a runtime names no system."""
        self.paths = paths
        self.env_ports = env_ports or {}
        self.components: dict[str, Component] = {c.name: c for c in components}
        self._lock = threading.Lock()

    # ---- what every runtime has ------------------------------------------------------------------
    def component_names(self) -> list[str]:
        return list(self.components)

    def first_use_urls(self, endpoints: Endpoints) -> list[str]:
        """What the running components build on first request (`Component.first_use`), as the host reaches it."""
        return [endpoints.url(name) + path for name, comp in self.components.items() for path in comp.first_use
                if name in endpoints.components and endpoints.components[name].state == "running"]

    def default_ports(self) -> dict[str, int]:
        """Every component's ports, and the sandbox's own page (served from the host on either runtime)."""
        return {**{k: v for c in self.components.values() for k, v in c.default_ports.items()}, **HOST_PORTS}

    def _save(self, state: State) -> None:
        with self._lock:
            statefile.save(self.paths.state, state)

    def _load(self) -> State:
        return statefile.load(self.paths.state) or State(runtime=self.name)

    # ---- hooks: what differs between runtimes ----------------------------------------------------
    def tidy_home(self, progress: Progress) -> None:
        """Before `up` takes the lock: repair what an older home left (the local runtime makes it private)."""

    @abstractmethod
    def component_state(self, name: str, state: State) -> str:
        """running | crashed | stopped, from what runs now."""

    def before_start(self, state: State, running: set[str]) -> None:
        """After ports are settled, before anything stops or starts (the docker runtime picks its images)."""

    @abstractmethod
    def stop_component(self, name: str, state: State) -> bool:
        """Stop what runs of `name` (left out with --without); whether anything did. Drops its records."""

    @abstractmethod
    def clear_for_start(self, name: str, state: State, progress: Progress) -> bool:
        """`name` is not running and will start: clear what is left of an earlier start (now, or as it starts);
        whether anything was (the start is then a restart)."""

    def start_message(self, name: str, state: State) -> str:
        return "starting"

    def check_startable(self, to_start: list[str], state: State, progress: Progress) -> None:
        """What can fail before anything starts, beyond taken ports: prerequisites, builds, images."""

    def prepare_host(self, state: State, secrets: dict[str, str]) -> None:
        """Once per `up`, before any component starts: what the host must hold for them."""

    @abstractmethod
    def start_component(self, name: str, ctx: ComponentContext, state: State, progress: Progress) -> None:
        """Start `name`'s processes or containers and record them in `state` (not waiting for health)."""

    def after_wait(self, name: str, ctx: ComponentContext, state: State, res: Result, started: bool,
                   progress: Progress) -> None:
        """`up` waited for `name`'s health (`started`: this `up` started it); `res` says how it ended."""
        self.record(name, state)

    def after_failure(self, name: str, state: State) -> None:
        """`name` did not become healthy, and `up` has read its log: what to do with what is left of it."""

    @abstractmethod
    def died(self, name: str, state: State) -> Callable[[], str | None]:
        """A check that says which process or container of `name` exited, or None: ends a health wait early."""

    @abstractmethod
    def tail(self, name: str, lines: int) -> tuple[list[str], str]:
        """The last `lines` log lines of `name`, and where the whole log is."""

    @abstractmethod
    def replace_unit(self, component: str, unit: str, extra_env: dict[str, str], ctx: ComponentContext,
                     state: State) -> None:
        """Stop one running unit of `component` (a process, a container) and start it again with `extra_env`
        added; refuses with the fix when it is not running."""

    def record(self, name: str, state: State) -> None:
        """After a health wait: refresh `state`'s records of `name` where the runtime learns them late."""

    def observe(self) -> object:
        """Once per `status`, before the components are looked at (in parallel): what they all read."""
        return None

    @abstractmethod
    def seen(self, comp: Component, state: State, ctx: ComponentContext, secrets: dict[str, str],
             view: object) -> Seen:
        """`status` of one component: its state, health (None: not checked), detail and live pids. `view`: what
        `observe` returned."""

    def inner_url(self, name: str) -> str:
        """Where the stack's other components reach `name`, when not at its host URL."""
        return ""

    def replica_urls(self, name: str) -> dict[str, str]:
        """Replica (its pod) -> host URL of each replica of `name` where it runs several ({}: one, at its URL)."""
        return {}

    # ---- up --------------------------------------------------------------------------------------
    def up(self, without: list[str], ports: dict[str, int], progress: Progress) -> list[UpResult]:
        self.check_names(without, "--without")
        with private_umask():  # the home, and everything the components write into it, is the user's alone
            self.paths.home.mkdir(parents=True, exist_ok=True)
            self.tidy_home(progress)
            with file_lock(self.paths.lock):
                return self._up(without, ports, progress)

    def _up(self, without: list[str], overrides: dict[str, int], progress: Progress) -> list[UpResult]:
        state = self._load()
        if state.runtime != self.name:
            # One recorded runtime per sandbox, which every later command obeys: a switch is refused while the
            # other runtime still runs something, and recorded once it does not (else `down` would not see us).
            if any(state.processes.values()):
                raise SandboxError(f"This sandbox runs on the {state.runtime} runtime.",
                                   f"run `sandbox down` first, then `sandbox up --runtime {self.name}`.", exit_code=2)
            state.runtime = self.name
        secrets = credentials.load_or_create(self.paths.secrets)
        wanted = [n for n in self.components if n not in without]
        startup.check_without(self.components, wanted, without)
        running = {n for n in wanted if self.component_state(n, state) == "running"}
        requested = {**self.env_ports, **overrides}
        startup.check_port_changes(self.components, running, state.ports, requested)
        state.ports = portcheck.resolve(self.default_ports(), state.ports, requested)
        state.disabled = sorted(without)
        healed = self._restart_unhealthy(running, state, secrets, progress)
        running -= healed
        self.before_start(state, running)
        results: dict[str, UpResult] = {}

        # Components left out this time stop; components partly alive are cleared before a restart.
        for name in without:
            if self.stop_component(name, state):
                results[name] = UpResult(name, "stopped", 0.0, "left out with --without")
        to_start = [n for n in wanted if n not in running]
        restarts = healed | {n for n in to_start if self.clear_for_start(n, state, progress)}
        self._save(state)

        startup.check_ports_free(self.components, to_start, state.ports)
        self.check_startable(to_start, state, progress)
        self.prepare_host(state, secrets)
        ctx = ComponentContext(self.paths, state.ports, secrets, runtime=self.name)

        def bring_up(name: str) -> None:
            comp = self.components[name]
            t0 = time.monotonic()
            if name not in running:
                progress(name, self.start_message(name, state))
                self.start_component(name, ctx, state, progress)
            res = wait_for(comp.health(ctx), comp.start_timeout, abort=self.died(name, state))
            if res.ok:  # what needs the running service, from the host, on any runtime
                if name not in running:
                    comp.post_start(ctx, lambda m: progress(name, m))
                comp.ensure(ctx, lambda m: progress(name, m))
            self.after_wait(name, ctx, state, res, name not in running, progress)
            self._save(state)
            if not res.ok:
                raise SandboxError(res.detail)
            secs = time.monotonic() - t0
            action = "already-running" if name in running else "restarted" if name in restarts else "started"
            if action != "already-running":
                progress(name, f"healthy in {secs:.1f}s")
            results[name] = UpResult(name, action, secs)

        order = {n: self.components[n].start_after(ctx) for n in wanted}
        failed = startup.start_all(wanted, order, bring_up, results, progress)
        if failed:
            # Its log is read before the rest of it is stopped: what the other processes log while they stop
            # (broken pipes, signal 15) is not why the first one exited.
            name, why = next(iter(failed.items()))
            lines, where = self.tail(name, 400)
            error = startup.not_healthy(self.components[name], why, lines, where,
                                        [n for n in wanted if n not in failed])
            for bad in failed:
                self.after_failure(bad, state)
            self._save(state)
            raise error
        return [results[n] for n in self.components if n in results]

    def _restart_unhealthy(self, running: set[str], state: State, secrets: dict[str, str],
                           progress: Progress) -> set[str]:
        """Running components that a restart heals (a sealed vault unseals itself at start) and that are unhealthy
        now: stopped here, so this `up` starts them again."""
        ctx = ComponentContext(self.paths, state.ports, secrets, runtime=self.name)
        out = set()
        for name in sorted(running):
            comp = self.components[name]
            if comp.restart_heals and not (res := comp.health(ctx)()).ok:
                progress(name, f"running but unhealthy ({res.detail}): restarting it")
                self.stop_component(name, state)
                out.add(name)
        return out

    # ---- restart one process ---------------------------------------------------------------------
    def restart(self, component: str, unit: str, extra_env: dict[str, str]) -> None:
        self.check_names([component], "restart")
        comp = self.components[component]
        with private_umask(), file_lock(self.paths.lock):
            state = self._load()
            secrets = credentials.read(self.paths.secrets)
            ctx = ComponentContext(self.paths, state.ports, secrets, runtime=self.name)
            self.replace_unit(component, unit, extra_env, ctx, state)
            self._save(state)
            res = wait_for(comp.health(ctx), comp.start_timeout, abort=self.died(component, state))
            self.record(component, state)
            self._save(state)
            if not res.ok:
                raise SandboxError(f"{component} did not become healthy after restarting {unit}: {res.detail}",
                                   f"see `sandbox logs {component}`; `sandbox down` and `sandbox up` start it clean.")

    # ---- down's bookkeeping ----------------------------------------------------------------------
    def _state_for_down(self, force: bool) -> State | None:
        """The state `down` stops from; None when it is unreadable and `force` says to go on without it."""
        try:
            return statefile.load(self.paths.state)
        except SandboxError:
            if not force:
                raise
            return None

    def _forget_processes(self, state: State | None) -> None:
        if state is None:
            statefile.reset(self.paths.state)
        else:
            state.processes, state.starting = {}, []
            self._save(state)

    # ---- status ----------------------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        state = self._load()
        # a running sandbox is where it was started, whatever SANDBOX_PORTS says now
        ports = {**self.default_ports(), **state.ports} if state.ports else \
            portcheck.resolve(self.default_ports(), {}, self.env_ports)
        secrets = credentials.read(self.paths.secrets)
        ctx = ComponentContext(self.paths, ports, secrets, runtime=self.name)
        view = self.observe()

        def one(comp: Component) -> ComponentStatus:
            seen = Seen(*self.seen(comp, state, ctx, secrets, view))
            login = comp.login
            return ComponentStatus(
                name=comp.name, state=seen.state, healthy=seen.healthy, detail=seen.detail, url=comp.url(ctx),
                urls=comp.extra_urls(ctx), ports={k: ports[k] for k in comp.default_ports}, pids=seen.pids,
                ended=list(seen.ended), stopped=list(seen.stopped),
                username=login.username if login else None,
                secret=comp.login_secret(ctx), secret_elsewhere=comp.secret_elsewhere(ctx),
                inner_url=self.inner_url(comp.name), runtime=self.name, replicas=self.replica_urls(comp.name),
            )

        with ThreadPoolExecutor(max_workers=len(self.components)) as pool:
            return list(pool.map(one, self.components.values()))
