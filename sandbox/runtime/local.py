"""The local runtime: every component as native processes on 127.0.0.1, no Docker needed.

The flow (up, restart, status) is the skeleton's; here is only how native processes start, die and stop:
`sandbox.host.supervisor` spawns and ends them; `provision_all` fills the per-user cache they run from.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.host import ports as portcheck
from sandbox.host import provision, supervisor
from sandbox.host.privacy import make_private
from sandbox.host.provision import file_lock
from sandbox.host.readiness import Result
from sandbox.paths import SandboxPaths
from sandbox.runtime.base import Progress, ProvisionResult
from sandbox.runtime.component import Component, ComponentContext, ProcessSpec
from sandbox.runtime.skeleton import Seen, SkeletonRuntime
from sandbox.runtime.state import ProcessRecord, State

STRAY_GRACE = 3.0  # for processes of the sandbox no record names (lost state, orphans)


class LocalRuntime(SkeletonRuntime):
    name = "local"

    def __init__(self, paths: SandboxPaths, env_ports: dict[str, int] | None = None, *,
                 components: list[Component]):
        super().__init__(paths, env_ports, components=components)
        self._checked: dict[str, Result] = {}  # health seen by `up`, so `status` right after need not ask again

    def log_path(self, component: str) -> Path:
        return self.paths.log(component)

    def provision(self, only: list[str], progress: Progress) -> list[ProvisionResult]:
        self.check_names(only, "provision")
        return provision_all([self.components[n] for n in only or self.components], self.paths.cache, progress)

    # ---- the skeleton's hooks --------------------------------------------------------------------
    def tidy_home(self, progress: Progress) -> None:
        if repaired := make_private(self.paths.home):
            progress("sandbox", f"made {repaired} files and folders of {self.paths.home} private to you")

    def component_state(self, name: str, state: State) -> str:
        recs = state.processes.get(name, [])
        if not recs:
            return "stopped"
        alive = [supervisor.alive(r) for r in recs]
        return "running" if all(alive) and name not in state.starting else "crashed"

    def stop_component(self, name: str, state: State) -> bool:
        records = state.processes.pop(name, None)
        self._checked.pop(name, None)
        if records:
            supervisor.terminate(supervisor.tree(records), self._grace(name))
        return bool(records)

    def clear_for_start(self, name: str, state: State, progress: Progress) -> bool:
        """A crashed component's recorded processes stop; then what an earlier start left that no record names
        ends too: an orphaned JVM whose wrapper died, LocalExecutor workers whose scheduler was killed (otherwise
        they hold its ports and memory)."""
        crashed = self.stop_component(name, state)
        if crashed:
            progress(name, "crashed; restarting")
        leftovers = supervisor.owned_processes(self.paths.home, name)
        if leftovers:
            progress(name, f"ending {len(leftovers)} leftover process(es) of an earlier start: "
                           + ", ".join(f"pid {p.pid}" for p in leftovers[:4]))
            supervisor.terminate(leftovers, self._grace(name))
        return crashed

    def check_startable(self, to_start: list[str], state: State, progress: Progress) -> None:
        """Missing prerequisites, and what is not provisioned yet (provisioned now)."""
        for name in to_start:
            self.components[name].preflight()
        missing = [n for n in to_start if not self.components[n].provisioned(self.paths.cache)]
        if missing:
            bad = [r for r in self.provision(missing, progress) if not r.ok]
            if bad:
                raise SandboxError(f"{bad[0].name} could not be provisioned: {bad[0].detail}")

    def start_component(self, name: str, ctx: ComponentContext, state: State, progress: Progress) -> None:
        comp = self.components[name]
        comp.prepare(ctx, lambda m: progress(name, m))
        recs: list[ProcessRecord] = []
        with self._lock:
            state.starting = sorted({*state.starting, name})
        def record(started: list[ProcessRecord]) -> None:  # saved as each starts: a crash mid-way leaves no orphan
            recs.extend(started)
            with self._lock:
                state.processes[name] = list(recs)
            self._save(state)

        units = comp.processes(ctx)
        if (launcher := comp.launcher(ctx, units)) is not None:  # all at once, what they share loaded once
            record(supervisor.spawn_forked(launcher.name, launcher.cmd, [(u.name, u.cmd) for u in units],
                                           launcher.env, self._cwd(name, launcher), self.log_path(name),
                                           self.paths.home))
        else:
            for u in units:
                record([supervisor.spawn(u.name, u.cmd, u.env, self._cwd(name, u), self.log_path(name),
                                         self.paths.home)])
        with self._lock:
            state.starting = [n for n in state.starting if n != name]
        self._save(state)

    def after_wait(self, name: str, ctx: ComponentContext, state: State, res: Result, started: bool,
                   progress: Progress) -> None:
        self._checked[name] = res

    def after_failure(self, name: str, state: State) -> None:
        self.stop_component(name, state)  # so the next `up` starts it cleanly

    def died(self, name: str, state: State):
        def check() -> str | None:
            recs = state.processes.get(name, [])
            dead = [r.name for r in recs if not supervisor.alive(r)]
            return f"process {dead[0]} exited" if dead else None

        return check

    def tail(self, name: str, lines: int) -> tuple[list[str], str]:
        return supervisor.tail(self.log_path(name), lines), str(self.log_path(name))

    def replace_unit(self, component: str, unit: str, extra_env: dict[str, str], ctx: ComponentContext,
                     state: State) -> None:
        comp = self.components[component]
        recs = state.processes.get(component, [])
        old = next((r for r in recs if r.name == unit and supervisor.alive(r)), None)
        if old is None:
            raise SandboxError(f"{component} has no running process {unit}.", "run `sandbox up` first.")
        proc = next(s for s in comp.processes(ctx) if s.name == unit)
        supervisor.terminate(supervisor.tree([old]), comp.stop_grace)
        new = supervisor.spawn(proc.name, proc.cmd, {**proc.env, **extra_env}, self._cwd(component, proc),
                               self.log_path(component), self.paths.home)
        new.extra_env = dict(extra_env)
        state.processes[component] = [new if r is old else r for r in recs]

    def seen(self, comp: Component, state: State, ctx: ComponentContext, secrets: dict[str, str],
             view: object) -> Seen:
        name = comp.name
        st = "disabled" if name in state.disabled else self.component_state(name, state)
        healthy, detail = None, ""
        every_dead = st == "crashed" and not any(supervisor.alive(r) for r in state.processes[name])
        port = ctx.ports[next(iter(comp.default_ports))]
        if every_dead and not portcheck.listened_by_sandbox(port, self.paths.home):
            # nothing of ours is left: a health check would hand our credentials to whoever holds the port
            healthy, detail = False, ""
        elif st in ("running", "crashed") and secrets:
            res: Result = self._checked.pop(name, None) or comp.health(ctx)()
            healthy, detail = res.ok, res.detail
        dead: list[str] = []
        if st == "crashed":
            dead = [r.name for r in state.processes[name] if not supervisor.alive(r)]
            detail = f"exited: {', '.join(dead)}"
            if healthy and len(dead) == len(state.processes[name]):
                # every recorded process is gone, yet it answers: a leftover serves, and nothing supervises it
                st = "unsupervised"
                detail = (f"serving, but {', '.join(dead)} exited (what answers is a leftover); "
                          "`sandbox up` restarts it under supervision")
        return Seen(st, healthy, detail, [r.pid for r in state.processes.get(name, []) if supervisor.alive(r)],
                    dead, dead)

    # ---- helpers ---------------------------------------------------------------------------------
    def _cwd(self, name: str, proc: ProcessSpec) -> Path:
        """Where a process works: its component's data folder, the mark that survives a process-title rewrite."""
        cwd = proc.cwd or self.paths.data(name)
        cwd.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cwd

    def _grace(self, name: str) -> float:
        return self.components[name].stop_grace if name in self.components else STRAY_GRACE

    # ---- down ----------------------------------------------------------------------------------
    def down(self, force: bool = False, volumes: bool = False) -> list[str]:
        if not self.paths.home.exists():
            return []
        with file_lock(self.paths.lock):
            state = self._state_for_down(force)
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
            self._forget_processes(state)
            if state is None:
                return ["unrecorded processes"] if known or strays else []
            return stopped


def provision_all(components: list[Component], cache: Path, progress: Progress) -> list[ProvisionResult]:
    """Provision several components at once into the per-user cache, each failure reported, none lost."""
    def one(comp: Component) -> ProvisionResult:
        name = comp.name
        t0 = time.monotonic()
        if comp.provisioned(cache):
            return ProvisionResult(name, True, "cached", 0.0)
        progress(name, "provisioning")
        try:
            comp.provision(cache, lambda msg: progress(name, msg))
        except Exception as e:  # noqa: BLE001 - report it per component; the others go on
            progress(name, "failed")
            why = str(e) if isinstance(e, SandboxError) else f"{type(e).__name__}: {e}"
            return ProvisionResult(name, False, "failed", time.monotonic() - t0, why)
        progress(name, f"provisioned in {time.monotonic() - t0:.0f}s")
        return ProvisionResult(name, True, "provisioned", time.monotonic() - t0)

    pool = ThreadPoolExecutor(max_workers=max(len(components), 1))
    try:
        return list(pool.map(one, components))
    except KeyboardInterrupt:  # the builds run in threads: stop their processes, or Ctrl-C waits for them
        provision.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
