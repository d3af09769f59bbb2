"""Airflow's services from one process that imports Airflow once, then forks one child per service.

Each of Airflow's four services (scheduler, DAG processor, triggerer, API server) spends about a CPU-second
importing the same modules before it does its own work; on a two-core machine that is most of what a start
costs. Here they are imported once, and each service is a forked child that runs exactly what its own command
would (`airflow scheduler …`, `python -m sandbox_triggerer …`), in a session of its own, as if started alone.
The launcher then exits: what is left is the four services, as before.

    python -m sandbox_services scheduler dag-processor …   # the names only label the command line (`ps`)

The units come as JSON in SANDBOX_SERVICES ([[name, module, [args…], {its own variables}?], …]); each child's pid
is written as "name pid" to the file descriptor SANDBOX_PIDS_FD, which the supervisor reads until the launcher
exits.

In a container (no SANDBOX_PIDS_FD: the docker runtime) the launcher stays, as the container's main process: it
passes TERM on to every service, and when one service ends on its own it stops the others and exits with that
service's code, so the container's exit shows it. `python -m sandbox_services --release NAME` (a `docker exec`)
stops one service for good — the runtime then starts that service in a container of its own, with another
environment — and the launcher goes on with the rest.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import runpy
import signal
import sys
import time
from pathlib import Path

# What at least two of the services import: paid once here instead of in each. (Not the API server's web app,
# nor the scheduler's job runner: one service each, so loading them here would only delay the others.) The last
# three (FastAPI, the JWT token code, the daemon helpers: ~0.25 CPU-s) every one of the four services imports as it
# starts — measured by the modules each child adds after the fork.
SHARED = ("airflow", "airflow.cli.cli_parser", "airflow.models", "airflow.jobs.job", "airflow.sdk",
          "airflow.serialization.serialized_objects", "airflow.executors.executor_loader",
          "airflow.sdk.execution_time.supervisor",
          "fastapi", "airflow.api_fastapi.auth.tokens", "airflow.cli.commands.daemon_utils")
# What a task process imports that the scheduler does not: requests, the HTTP provider's hook (with aiohttp) and the
# task decorators. The LocalExecutor's workers are forked from the scheduler and fork each task's process in turn,
# so loaded once in the scheduler (before its workers) they are not paid again by every task: measured in the
# smoke's four tasks, 0.4-0.6 CPU-s each. Only in the scheduler: no other service runs tasks.
TASK_SHARED = ("requests", "airflow.providers.http.hooks.http", "airflow.sdk.definitions.decorators")
PRELOAD = {"airflow-scheduler": TASK_SHARED}
# In a container: each service's pid, and a mark for one released on purpose (its end does not stop the others)
RUN_DIR = Path(os.environ.get("SANDBOX_SERVICES_RUN", "/tmp/sandbox-services"))
GRACE = 2.0  # seconds between TERM and KILL: as the local runtime stops Airflow (nothing needs a graceful end)
# Python's cyclic GC at its default thresholds (700, 10, 10) runs thousands of times while Airflow imports and the
# API server builds its ~800 routes, and finds almost nothing to free: measured, a quarter of their CPU (import + app
# 10.5 -> 8.1 CPU-s). The launcher imports with it off and freezes what it imported before forking (never scanned
# again, in any service, and left shared copy-on-write); each service then collects at these thresholds (+4 MB).
GC_THRESHOLDS = (50_000, 20, 20)


def name_process(name: str) -> None:
    """The child's name in `top`/`ps -o comm` (its command line stays the launcher's: rewriting it would also
    overwrite the environment /proc shows, which the sandbox's doctor reads)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name[:15].encode(), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def serve(name: str, module: str, args: list[str], env: dict[str, str] | None = None) -> None:
    """In the child: what `python -m <module> <args>` would run, in a session of its own (`sandbox down` ends
    its process group), with what its own environment has beyond the others' (`env`)."""
    os.setsid()
    os.environ.update(env or {})
    name_process(name.removeprefix("airflow-"))
    gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()
    from airflow import settings

    engine = getattr(settings, "engine", None)
    if engine is not None:  # connections the launcher's imports opened are not the child's to use
        engine.dispose(close=False)
    for extra in PRELOAD.get(name, ()):
        try:
            importlib.import_module(extra)
        except ImportError:  # a provider the install lacks: its tasks would not import it either
            pass
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _await_own_session(pid: int, timeout: float = 5.0) -> None:
    """Until the forked child has made its own session (its first act), or it ended, or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.getsid(pid) == pid:
                return
        except ProcessLookupError:
            return
        time.sleep(0.001)


def main() -> None:
    if sys.argv[1:2] == ["--release"]:
        sys.exit(release(sys.argv[2]))
    units = json.loads(os.environ.pop("SANDBOX_SERVICES"))
    report = os.environ.pop("SANDBOX_PIDS_FD", None)
    gc.disable()
    for module in SHARED:
        importlib.import_module(module)
    gc.freeze()
    sys.stdout.flush()
    sys.stderr.flush()
    pids: dict[int, str] = {}
    for name, module, args, *env in units:
        pid = os.fork()
        if pid == 0:
            if report is not None:
                os.close(int(report))  # the supervisor reads until every copy of this descriptor is closed
            serve(name, module, args, *env)
            return  # the service ended: the interpreter exits as that service's command would
        pids[pid] = name
        if report is not None:
            _await_own_session(pid)  # reported once `down` can end its group: not while it is still in ours
            os.write(int(report), f"{name} {pid}\n".encode())
    gc.enable()  # the launcher itself: in a container it stays, supervising
    if report is not None:
        os.close(int(report))
        return
    sys.exit(supervise(pids))


def supervise(pids: dict[int, str]) -> int:
    """In a container: wait on the services; TERM/INT go on to each one's process group; the first to end on its
    own (not released) stops the others, and its exit code is the container's."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    for pid, name in pids.items():
        (RUN_DIR / f"{name}.released").unlink(missing_ok=True)
        (RUN_DIR / name).write_text(str(pid))
        print(f"=== sandbox: {name} started (pid {pid})", flush=True)
    code = 0
    ended = ""  # which service's end stopped the others: said again as the launcher's last line
    stop_at: float | None = None

    def stop(*_: object) -> None:
        nonlocal stop_at
        if stop_at is None:
            stop_at = time.monotonic() + GRACE
            signal_groups(pids, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while pids:
        if stop_at is not None and time.monotonic() >= stop_at:
            signal_groups(pids, signal.SIGKILL)
            stop_at = float("inf")
        try:
            # not a blocking wait: one is resumed after a signal's handler (PEP 475), and KILL would never follow
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.1 if stop_at is not None else 0.5)
            continue
        name = pids.pop(pid, None)
        if name is None or stop_at is not None or (RUN_DIR / f"{name}.released").exists():
            continue
        exit_code = os.waitstatus_to_exitcode(status)  # -N: killed by signal N
        # ended on its own: the container must not look finished; a signal's end as a shell gives it (128 + N)
        code = 128 - exit_code if exit_code < 0 else exit_code or 1
        ended = f"=== sandbox: {name} exited with {exit_code}: stopping the others"
        print(ended, flush=True)
        signal_groups({pid: name}, signal.SIGKILL)  # what it forked and left behind
        stop()
    if ended:  # the others' shutdown lines came after it: the runtime reads the log's tail for it
        print(ended, flush=True)
    return code


def signal_groups(pids: dict[int, str], sig: int) -> None:
    for pid in list(pids):
        try:
            os.killpg(pid, sig)  # the service and what it forked (the scheduler's workers, their tasks)
        except (ProcessLookupError, PermissionError):
            pass


def release(name: str) -> int:
    """Stop one service for good (TERM, KILL after GRACE) and mark it so the launcher goes on without it."""
    try:
        pid = int((RUN_DIR / name).read_text())
    except (OSError, ValueError):
        print(f"no service {name} runs here", file=sys.stderr)
        return 2
    (RUN_DIR / f"{name}.released").write_text("released\n")
    deadline = time.monotonic() + GRACE
    sig: int = signal.SIGTERM
    while True:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return 0  # its whole group is gone (the launcher reaped it)
        sig = signal.SIGKILL if time.monotonic() >= deadline else 0  # TERM once; then look, and KILL after GRACE
        time.sleep(0.05)


if __name__ == "__main__":
    main()
