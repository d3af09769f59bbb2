"""Native process supervision: each process in its own process group, with a log and a record.

Every process carries SANDBOX_OWNER=<sandbox home> in its environment and works in its component's data folder
(`<home>/data/<component>`); children inherit both. A process-title rewrite (Airflow's LocalExecutor workers,
`airflow worker -- LocalExecutor: <idle>`) overwrites the memory /proc reads the environment from, so the mark
can vanish — the working folder stays. So even without a state file (`down --force`), and for orphans whose
parent died, every process of a sandbox, and its component, can be found.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sandbox.errors import SandboxError

OWNER_VAR = "SANDBOX_OWNER"


# Variables a spawned process keeps from the caller; everything else is dropped so a developer's shell
# (an AIRFLOW_CONN_* export, a proxy setting) cannot change what the sandbox does.
KEPT_VARS = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE")


@dataclass
class ProcessRecord:
    name: str
    pid: int
    create_time: float
    cmd: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)  # added for this run by `restart` (repro faults)


def base_env() -> dict[str, str]:
    return {k: v for k in KEPT_VARS if (v := os.environ.get(k)) is not None}


def _start(cmd: list[str], env: dict[str, str], cwd: Path, log: Path, owner: Path, headlines: list[str],
           pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """One process of the sandbox: its mark in the environment, its output appended to the component's log after
    `headlines`, a session of its own."""
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    full_env = {**base_env(), **env, OWNER_VAR: str(owner)}
    # logs may echo configuration: readable by the owner only
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab", buffering=0) as out:
        out.write("".join(f"\n=== sandbox: {line}\n" for line in headlines).encode())
        return subprocess.Popen(
            cmd, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: survives the CLI, and TERM reaches all its children
            pass_fds=pass_fds,
        )


def spawn(name: str, cmd: list[str], env: dict[str, str], cwd: Path, log: Path, owner: Path) -> ProcessRecord:
    proc = _start(cmd, env, cwd, log, owner, [f"starting {name}: {' '.join(cmd)}"])
    return ProcessRecord(name=name, pid=proc.pid, create_time=psutil.Process(proc.pid).create_time(), cmd=cmd)


def spawn_forked(launcher: str, cmd: list[str], units: list[tuple[str, list[str]]], env: dict[str, str], cwd: Path,
                 log: Path, owner: Path, timeout: float = 120.0) -> list[ProcessRecord]:
    """Start `units` (name, the command each stands for) through one launcher process that loads what they share
    once and forks each (Airflow's `sandbox_services`): it reports "name pid" lines on a pipe, then exits. Records
    as `spawn` makes them, one per unit, each the leader of its own session. SandboxError when the launcher exits
    before reporting them all (its log says why)."""
    read_end, write_end = os.pipe()
    try:
        proc = _start(cmd, {**env, "SANDBOX_PIDS_FD": str(write_end)}, cwd, log, owner,
                      [f"starting {name}: {' '.join(unit_cmd)} (forked by {launcher})" for name, unit_cmd in units],
                      pass_fds=(write_end,))
    finally:
        os.close(write_end)
    data = _read_until_eof(read_end, time.monotonic() + timeout)  # EOF: the launcher and its children closed it
    if proc.poll() is None:  # it hangs (or the deadline passed): it starts nothing more
        proc.kill()
    code = proc.wait()
    pids = {name: int(pid) for name, pid in (line.split() for line in data.decode().splitlines() if line.strip())}
    missing = [name for name, _ in units if name not in pids]
    if missing:
        terminate([p for p in map(_alive_pid, pids.values()) if p is not None], 2.0)
        raise SandboxError(f"process {launcher} exited with {code} before starting {', '.join(missing)}")
    return [ProcessRecord(name=name, pid=pids[name], create_time=_create_time(pids[name]), cmd=unit_cmd)
            for name, unit_cmd in units]


def _read_until_eof(fd: int, deadline: float) -> bytes:
    chunks = []
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([pipe], [], [], left)[0]:
                break
            chunk = pipe.read(4096)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _alive_pid(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _create_time(pid: int) -> float:
    """0 for a child that already exited: its record then says it is dead, and `up` reads the log for why."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


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
