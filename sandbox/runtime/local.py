"""The local runtime: every component as native processes on 127.0.0.1, no Docker needed.

Its parts live beside it: ports are resolved in `sandbox.ports`, the parallel start order in `scheduler`,
provisioning in `provisioning`, state I/O in `sandbox.state`, processes in `sandbox.supervisor`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox import credentials, supervisor
from sandbox import ports as portcheck
from sandbox import state as statefile
from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths
from sandbox.privacy import make_private, private_umask
from sandbox.provision import file_lock
from sandbox.readiness import Result, wait_for
from sandbox.runtime import startup
from sandbox.runtime.base import ComponentStatus, Progress, ProvisionResult, Runtime, UpResult
from sandbox.runtime.components import all_components
from sandbox.runtime.components.base import Component, Context
from sandbox.runtime.provisioning import provision_all
from sandbox.state import State

STRAY_GRACE = 3.0  # for processes of the sandbox no record names (lost state, orphans)


class LocalRuntime(Runtime):
    name = "local"

    def __init__(self, paths: SandboxPaths, env_ports: dict[str, int] | None = None):
        """`env_ports`: ports asked for in the environment (SANDBOX_PORTS), parsed once at the edge."""
        self.paths = paths
        self.env_ports = env_ports or {}
        self.components: dict[str, Component] = {c.name: c for c in all_components()}
        self._lock = threading.Lock()
        self._checked: dict[str, Result] = {}  # health seen by `up`, so `status` right after need not ask again

    # ---- helpers -------------------------------------------------------------------------------
    def component_names(self) -> list[str]:
        return list(self.components)

    def default_ports(self) -> dict[str, int]:
        return {k: v for c in self.components.values() for k, v in c.default_ports.items()}

    def log_path(self, component: str) -> Path:
        return self.paths.log(component)

    def _save(self, state: State) -> None:
        with self._lock:
            statefile.save(self.paths.state, state)

    def _records_state(self, state: State, name: str) -> str:
        recs = state.processes.get(name, [])
        if not recs:
            return "stopped"
        alive = [supervisor.alive(r) for r in recs]
        return "running" if all(alive) and name not in state.starting else "crashed"

    # ---- provision -----------------------------------------------------------------------------
    def provision(self, only: list[str], progress: Progress) -> list[ProvisionResult]:
        self.check_names(only, "provision")
        return provision_all([self.components[n] for n in only or self.components], self.paths.cache, progress)

    # ---- up ------------------------------------------------------------------------------------
    def up(self, without: list[str], ports: dict[str, int], progress: Progress) -> list[UpResult]:
        self.check_names(without, "--without")
        with private_umask():  # the home, and everything the components write into it, is the user's alone
            self.paths.home.mkdir(parents=True, exist_ok=True)
            if repaired := make_private(self.paths.home):
                progress("sandbox", f"made {repaired} files and folders of {self.paths.home} private to you")
            with file_lock(self.paths.lock):
                return self._up(without, ports, progress)

    def _up(self, without: list[str], overrides: dict[str, int], progress: Progress) -> list[UpResult]:
        state = statefile.load(self.paths.state) or State()
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
        running = {n for n in self.components if self._records_state(state, n) == "running"}
        requested = {**self.env_ports, **overrides}
        startup.check_port_changes(self.components, running, state.ports, requested)
        state.ports = portcheck.resolve(self.default_ports(), state.ports, requested)
        state.disabled = sorted(without)
        ctx = Context(self.paths, state.ports, secrets)
        results: dict[str, UpResult] = {}

        # Components left out this time stop; components partly alive are cleared before a restart.
        for name in self.components:
            if name in without and state.processes.get(name):
                self._stop(name, state.processes.pop(name))
                results[name] = UpResult(name, "stopped", 0.0, "left out with --without")
        to_start, restarts = [], set()
        for name in wanted:
            if name in running:
                continue
            if state.processes.get(name):
                restarts.add(name)
                progress(name, "crashed; restarting")
                self._stop(name, state.processes.pop(name))
            self._reap(name, progress)
            to_start.append(name)
        self._save(state)

        self._preflight(to_start, state, progress)


        def bring_up(name: str) -> None:
            comp = self.components[name]
            t0 = time.monotonic()
            if name in running:
                res = wait_for(comp.health(ctx), comp.start_timeout, abort=self._died(state, name))
                action = "already-running"
            else:
                progress(name, "starting")
                comp.prepare(ctx, lambda m: progress(name, m))
                recs = []
                with self._lock:
                    state.starting = sorted({*state.starting, name})
                for spec in comp.processes(ctx):
                    recs.append(supervisor.spawn(spec.name, spec.cmd, spec.env, self._cwd(name, spec),
                                                 self.log_path(name), self.paths.home))
                    with self._lock:
                        state.processes[name] = list(recs)
                    self._save(state)
                with self._lock:
                    state.starting = [n for n in state.starting if n != name]
                self._save(state)
                res = wait_for(comp.health(ctx), comp.start_timeout, abort=self._died(state, name))
                if res.ok:
                    comp.post_start(ctx, lambda m: progress(name, m))
                action = "restarted" if name in restarts else "started"
            self._checked[name] = res
            if not res.ok:
                raise SandboxError(res.detail)
            secs = time.monotonic() - t0
            if action != "already-running":
                progress(name, f"healthy in {secs:.1f}s")
            results[name] = UpResult(name, action, secs)

        failed = startup.start_all(self.components, wanted, bring_up, results, progress)

        if failed:
            # Its log is read before the rest of it is stopped: what the other processes log while they stop
            # (broken pipes, signal 15) is not why the first one exited.
            name, why = next(iter(failed.items()))
            error = startup.not_healthy(self.components[name], why, supervisor.tail(self.log_path(name), 400),
                                        str(self.log_path(name)), [n for n in wanted if n not in failed])
            # A component that did not become healthy is stopped, so the next `up` starts it cleanly.
            for bad in failed:
                self._checked.pop(bad, None)
                if state.processes.get(bad):
                    self._stop(bad, state.processes.pop(bad))
            self._save(state)
            raise error
        return [results[n] for n in self.components if n in results]

    def _cwd(self, name: str, spec) -> Path:
        """Where a process works: its component's data folder, the mark that survives a process-title rewrite."""
        cwd = spec.cwd or self.paths.data(name)
        cwd.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cwd

    def _reap(self, name: str, progress: Progress) -> None:
        """End what is left of an earlier start of `name` that no record names: an orphaned JVM whose wrapper
        died, LocalExecutor workers whose scheduler was killed. Otherwise they hold its ports and memory."""
        leftovers = supervisor.owned_processes(self.paths.home, name)
        if leftovers:
            progress(name, f"ending {len(leftovers)} leftover process(es) of an earlier start: "
                           + ", ".join(f"pid {p.pid}" for p in leftovers[:4]))
            supervisor.terminate(leftovers, self._grace(name))

    def _grace(self, name: str) -> float:
        return self.components[name].stop_grace if name in self.components else STRAY_GRACE

    def _stop(self, name: str, records) -> None:
        supervisor.terminate(supervisor.tree(records), self._grace(name))

    def _died(self, state: State, name: str):
        def check() -> str | None:
            recs = state.processes.get(name, [])
            dead = [r.name for r in recs if not supervisor.alive(r)]
            return f"process {dead[0]} exited" if dead else None

        return check

    def _preflight(self, to_start: list[str], state: State, progress: Progress) -> None:
        """Everything that can fail before a process starts: taken ports, missing prerequisites."""
        startup.check_ports_free(self.components, to_start, state.ports)
        for name in to_start:
            self.components[name].preflight()
        missing = [n for n in to_start if not self.components[n].provisioned(self.paths.cache)]
        if missing:
            bad = [r for r in self.provision(missing, progress) if not r.ok]
            if bad:
                raise SandboxError(f"{bad[0].name} could not be provisioned: {bad[0].detail}")

    # ---- restart one process -------------------------------------------------------------------
    def restart(self, component: str, process: str, extra_env: dict[str, str]) -> None:
        self.check_names([component], "restart")
        comp = self.components[component]
        with private_umask(), file_lock(self.paths.lock):
            state = statefile.load(self.paths.state) or State()
            recs = state.processes.get(component, [])
            old = next((r for r in recs if r.name == process and supervisor.alive(r)), None)
            if old is None:
                raise SandboxError(f"{component} has no running process {process}.", "run `sandbox up` first.")
            ctx = Context(self.paths, state.ports, credentials.read(self.paths.secrets))
            spec = next(s for s in comp.processes(ctx) if s.name == process)
            supervisor.terminate(supervisor.tree([old]), comp.stop_grace)
            new = supervisor.spawn(spec.name, spec.cmd, {**spec.env, **extra_env}, self._cwd(component, spec),
                                   self.log_path(component), self.paths.home)
            new.extra_env = dict(extra_env)
            state.processes[component] = [new if r is old else r for r in recs]
            self._save(state)
            res = wait_for(comp.health(ctx), comp.start_timeout, abort=self._died(state, component))
            if not res.ok:
                raise SandboxError(f"{component} did not become healthy after restarting {process}: {res.detail}",
                                   f"see `sandbox logs {component}`; `sandbox down` and `sandbox up` start it clean.")

    # ---- down ----------------------------------------------------------------------------------
    def down(self, force: bool = False, volumes: bool = False) -> list[str]:
        if not self.paths.home.exists():
            return []
        with file_lock(self.paths.lock):
            try:
                state = statefile.load(self.paths.state)
            except SandboxError:
                if not force:
                    raise
                state = None
            recorded = state.processes if state else {}
            stopped = [n for n, recs in recorded.items() if recs and any(supervisor.alive(r) for r in recs)]
            trees = {name: supervisor.tree(recs) for name, recs in recorded.items()}
            known = {p.pid for procs in trees.values() for p in procs}
            # Also whatever carries this sandbox's mark but fell out of the records (lost state, Ctrl-C).
            strays = [p for p in supervisor.owned_processes(self.paths.home) if p.pid not in known]
            # Every component at once, each with its own grace between TERM and KILL.
            jobs = [(procs, self._grace(name)) for name, procs in trees.items()] + [(strays, STRAY_GRACE)]
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                left = [p for survivors in pool.map(lambda job: supervisor.terminate(*job), jobs) for p in survivors]
            if left:
                raise SandboxError(f"{len(left)} process(es) survived SIGKILL: {[p.pid for p in left]}.",
                                   "check them with ps; they may be stuck in the kernel.")
            self._checked.clear()
            if state is None:
                statefile.reset(self.paths.state)
                return ["unrecorded processes"] if known or strays else []
            state.processes, state.starting = {}, []
            self._save(state)
            return stopped

    # ---- status --------------------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        state = statefile.load(self.paths.state) or State()
        # a running sandbox is where it was started, whatever SANDBOX_PORTS says now
        ports = {**self.default_ports(), **state.ports} if state.ports else \
            portcheck.resolve(self.default_ports(), {}, self.env_ports)
        secrets = credentials.read(self.paths.secrets)
        ctx = Context(self.paths, ports, secrets)

        def one(comp: Component) -> ComponentStatus:
            name = comp.name
            st = "disabled" if name in state.disabled else self._records_state(state, name)
            healthy, detail = None, ""
            every_dead = st == "crashed" and not any(supervisor.alive(r) for r in state.processes[name])
            port = ports[next(iter(comp.default_ports))]
            if every_dead and not portcheck.listened_by_sandbox(port, self.paths.home):
                # nothing of ours is left: a health check would hand our credentials to whoever holds the port
                healthy, detail = False, ""
            elif st in ("running", "crashed") and secrets:
                res: Result = self._checked.pop(name, None) or comp.health(ctx)()
                healthy, detail = res.ok, res.detail
            if st == "crashed":
                dead = [r.name for r in state.processes[name] if not supervisor.alive(r)]
                detail = f"exited: {', '.join(dead)}"
                if healthy and len(dead) == len(state.processes[name]):
                    # every recorded process is gone, yet it answers: a leftover serves, and nothing supervises it
                    st = "unsupervised"
                    detail = (f"serving, but {', '.join(dead)} exited (what answers is a leftover); "
                              "`sandbox up` restarts it under supervision")
            login = comp.login
            return ComponentStatus(
                name=name, state=st, healthy=healthy, detail=detail, url=comp.url(ctx),
                urls=comp.extra_urls(ctx), ports={k: ports[k] for k in comp.default_ports},
                pids=[r.pid for r in state.processes.get(name, []) if supervisor.alive(r)],
                username=login.username if login else None,
                secret=secrets.get(login.secret_name) if login else None, runtime=self.name,
            )

        with ThreadPoolExecutor(max_workers=len(self.components)) as pool:
            return list(pool.map(one, self.components.values()))
