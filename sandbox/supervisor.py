"""Native process supervision: each process in its own process group, with a log and a record.

Every process carries SANDBOX_OWNER=<sandbox home> in its environment and works in its component's data folder
(`<home>/data/<component>`); children inherit both. A process-title rewrite (Airflow's LocalExecutor workers,
`airflow worker -- LocalExecutor: <idle>`) overwrites the memory /proc reads the environment from, so the mark
can vanish — the working folder stays. So even without a state file (`down --force`), and for orphans whose
parent died, every process of a sandbox, and its component, can be found.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from sandbox.state import ProcessRecord

OWNER_VAR = "SANDBOX_OWNER"


# Variables a spawned process keeps from the caller; everything else is dropped so a developer's shell
# (an AIRFLOW_CONN_* export, a proxy setting) cannot change what the sandbox does.
KEPT_VARS = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE")


def base_env() -> dict[str, str]:
    return {k: v for k in KEPT_VARS if (v := os.environ.get(k)) is not None}


def spawn(name: str, cmd: list[str], env: dict[str, str], cwd: Path, log: Path, owner: Path) -> ProcessRecord:
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    full_env = {**base_env(), **env, OWNER_VAR: str(owner)}
    # logs may echo configuration: readable by the owner only
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab", buffering=0) as out:
        out.write(f"\n=== sandbox: starting {name}: {' '.join(cmd)}\n".encode())
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: survives the CLI, and TERM reaches all its children
        )
    return ProcessRecord(name=name, pid=proc.pid, create_time=psutil.Process(proc.pid).create_time(), cmd=cmd)


def _process(rec: ProcessRecord) -> psutil.Process | None:
    """The live process behind a record, or None; a reused pid (other start time) counts as gone."""
    try:
        p = psutil.Process(rec.pid)
        if abs(p.create_time() - rec.create_time) > 1.0 or p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p
    except psutil.Error:
        return None


def alive(rec: ProcessRecord) -> bool:
    return _process(rec) is not None


def _inside(path: str, folder: Path) -> bool:
    return path == str(folder) or path.startswith(str(folder).rstrip("/") + "/")


def belongs(environ: dict[str, str], cwd: str, owner: Path) -> bool:
    """Whether a process belongs to the sandbox at `owner`: its environment carries the mark, or its environment
    was overwritten by a title rewrite (not even PATH is left, which every sandbox process is given) and it works
    inside one of the sandbox's component data folders. A shell someone opened there keeps its PATH: it is not
    the sandbox's. (Callers also require the sandbox's own uid.)"""
    if environ.get(OWNER_VAR) == str(owner):
        return True
    # Without the mark, only what works in a component's own data folder: a process someone started with an
    # empty environment elsewhere in the home (or in a home such as /tmp) is not the sandbox's.
    return "PATH" not in environ and component_of(cwd, owner) is not None


def component_of(cwd: str, owner: Path) -> str | None:
    """The component whose data folder a process works in (None: elsewhere in the home)."""
    data = owner / "data"
    if not _inside(cwd, data) or cwd == str(data):
        return None
    return cwd[len(str(data)) + 1:].split("/", 1)[0]


def is_ours(p: psutil.Process, owner: Path) -> bool:
    """Whether a live process is the sandbox's at `owner`: run as its uid (another user's process never is,
    whatever it looks like), and `belongs`. psutil.Error when it cannot be read."""
    return p.uids().real == os.getuid() and belongs(p.environ(), p.cwd(), owner)


def owned_processes(owner: Path, component: str | None = None) -> list[psutil.Process]:
    """Every process of the sandbox at `owner` (optionally: of one component), whatever its parent."""
    found = []
    me = os.getpid()
    for p in psutil.process_iter(["pid"]):
        if p.pid == me:
            continue
        try:
            if is_ours(p, owner) and (component is None or component_of(p.cwd(), owner) == component):
                found.append(p)
        except psutil.Error:  # gone, a zombie, or another user's
            continue
    return found


def tree(records: Iterable[ProcessRecord]) -> list[psutil.Process]:
    procs: dict[int, psutil.Process] = {}
    for rec in records:
        p = _process(rec)
        if p is None:
            continue
        procs[p.pid] = p
        try:
            for c in p.children(recursive=True):
                procs[c.pid] = c
        except psutil.Error:
            pass
    return list(procs.values())


def terminate(procs: list[psutil.Process], grace: float = 8.0) -> list[psutil.Process]:
    """TERM every process (and its group), KILL what is left after `grace`. Returns survivors (none)."""
    if not procs:
        return []
    groups = set()
    for p in procs:
        try:
            if os.getpgid(p.pid) == p.pid:  # a group the sandbox made (it leads it), never a group it joined
                groups.add(p.pid)
        except OSError:
            pass
    _signal_all(procs, groups, signal.SIGTERM)
    left = _wait_gone(procs, grace)
    if left:
        _signal_all(left, groups, signal.SIGKILL)
        left = _wait_gone(left, 5.0)
    return left


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    # One short poll over all of them: psutil.wait_procs backs off per process and, for processes
    # that are not our children, notices an exit seconds late.
    deadline = time.monotonic() + timeout
    left = [p for p in procs if _running(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if _running(p)]
    return left


def _signal_all(procs: list[psutil.Process], groups: set[int], sig: signal.Signals) -> None:
    my_group = os.getpgrp()
    for g in groups:
        if g != my_group:
            try:
                os.killpg(g, sig)
            except OSError:
                pass
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


def tail(log: Path, lines: int = 20) -> list[str]:
    if not log.exists():
        return []
    with open(log, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64 * 1024))
        data = f.read().decode(errors="replace")
    return data.splitlines()[-lines:]
