"""Test sessions holding a sandbox: start it or attach to it, seed it, and stop it when the last holder leaves.

Used by the pytest plugin; kept free of pytest so the rules are plain code. Several processes (pytest-xdist
workers, or two test runs) may hold one sandbox: the first starts it, the others attach, and the last one
out stops it, unless asked to keep it or it was already running before any of them came.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from sandbox.host.credentials import write_private
from sandbox.host.provision import file_lock
from sandbox.paths import SandboxPaths
from sandbox.runtime.base import Progress, Runtime
from sandbox.settings import Settings
from sandbox.spec import load as load_spec
from sandbox.stack.factory import down_everywhere, make_runtime
from sandbox.stack.handle import Handle
from sandbox.stack.seed import start_and_seed


@dataclass(frozen=True)
class Holders:
    """Who holds the sandbox, and whether one of them started it (then the last one out stops it)."""

    pids: tuple[int, ...] = ()
    started: bool = False

    def joined(self, pid: int, started_it: bool = False) -> Holders:
        return Holders((*self.pids, pid), self.started or started_it)

    def left(self, pid: int) -> Holders:
        rest = tuple(p for p in self.pids if p != pid)
        return Holders(rest, self.started and bool(rest))

    def last_out_stops(self, pid: int, keep: bool) -> bool:
        """Whether `pid` leaving should stop the sandbox: it is the last holder of a stack a holder started."""
        return self.started and not self.left(pid).pids and not keep

    @classmethod
    def read(cls, path: Path, alive: Callable[[int], bool] = psutil.pid_exists) -> Holders:
        """Live holders only; the "started" flag counts only while someone holds it."""
        try:
            raw = json.loads(path.read_text())
            pids = tuple(p for p in raw["users"] if alive(p))
            return cls(pids, bool(raw.get("started")) and bool(pids))
        except (OSError, ValueError, KeyError, TypeError):
            return cls()

    def write(self, path: Path) -> None:
        write_private(path, json.dumps({"users": list(self.pids), "started": self.started}))


def unavailable(rt: Runtime) -> dict[str, str]:
    """Components that cannot be provisioned on this machine, with the reason (provisions the others)."""
    return {r.name: r.detail for r in rt.provision([], lambda *_: None) if not r.ok}


def acquire(paths: SandboxPaths, settings: Settings, spec_path: Path | None, without: list[str],
            progress: Progress, runtime: str | None = None) -> Handle:
    """Start (or attach to) the sandbox at `paths.home` and converge it to the spec. `runtime`: for a sandbox
    that is not running yet (a running one keeps its own)."""
    t0 = time.monotonic()
    spec = load_spec(spec_path)  # fails before anything starts
    paths.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    rt = make_runtime(paths, settings, runtime)
    left_out: dict[str, str] = {}
    if "unavailable" in without:
        left_out = unavailable(rt)
        without = [w for w in without if w != "unavailable"] + list(left_out)
    left_out.update({w: "left out by option" for w in without if w not in left_out})
    with file_lock(paths.holders_lock):
        wanted = [n for n in rt.component_names() if n not in without]
        rows = rt.status()
        status = {s.name: s for s in rows}
        attached = all(status[n].state == "running" and status[n].healthy for n in wanted)
        # "started": a holder brought it up, so the last holder stops it; a stack that was already running
        # when the first holder came (someone's `sandbox up`) is left running.
        holders = Holders.read(paths.holders)
        try:
            started = start_and_seed(rt, spec, without, {}, progress, running=rows if attached else None)
        except BaseException:
            if not attached:  # it was not running before us: leave nothing behind a failed setup
                rt.down()
            raise
        holders.joined(os.getpid(), started_it=not attached).write(paths.holders)
        write_private(paths.left_out, json.dumps(left_out))
    return Handle(paths, spec, started.endpoints, rt.handoff(), started.report, attached, left_out,
                  time.monotonic() - t0, rt.name)


def left_out(paths: SandboxPaths) -> dict[str, str]:
    """What the last start by a holder left out, and why."""
    try:
        return json.loads(paths.left_out.read_text())
    except (OSError, ValueError):
        return {}


def hold(paths: SandboxPaths) -> None:
    """Hold the sandbox without starting it: the pytest-xdist controller does, so the stack outlives every worker
    (a worker that finishes early would otherwise be the last holder and stop it under the others)."""
    paths.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with file_lock(paths.holders_lock):
        Holders.read(paths.holders).joined(os.getpid()).write(paths.holders)


def release(paths: SandboxPaths, keep: bool) -> bool:
    """Drop this process's hold; the last holder stops the sandbox if a holder started it. True if stopped."""
    with file_lock(paths.holders_lock):
        holders = Holders.read(paths.holders)
        holders.left(os.getpid()).write(paths.holders)
        if not holders.last_out_stops(os.getpid(), keep):
            return False
        down_everywhere(paths)
        return True

