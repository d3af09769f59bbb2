"""Airflow's services from one process that imports Airflow once, then forks one child per service.

Each of Airflow's four services (scheduler, DAG processor, triggerer, API server) spends about a CPU-second
importing the same modules before it does its own work; on a two-core machine that is most of what a start
costs. Here they are imported once, and each service is a forked child that runs exactly what its own command
would (`airflow scheduler …`, `python -m sandbox_triggerer …`), in a session of its own, as if started alone.
The launcher then exits: what is left is the four services, as before.

    python -m sandbox_services scheduler dag-processor …   # the names only label the command line (`ps`)

The units come as JSON in SANDBOX_SERVICES ([[name, module, [args…]], …]); each child's pid is written as
"name pid" to the file descriptor SANDBOX_PIDS_FD, which the supervisor reads until the launcher exits.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import runpy
import sys

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


def name_process(name: str) -> None:
    """The child's name in `top`/`ps -o comm` (its command line stays the launcher's: rewriting it would also
    overwrite the environment /proc shows, which the sandbox's doctor reads)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, name[:15].encode(), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def serve(name: str, module: str, args: list[str]) -> None:
    """In the child: what `python -m <module> <args>` would run, in a session of its own (`sandbox down` ends
    its process group)."""
    os.setsid()
    name_process(name.removeprefix("airflow-"))
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


def main() -> None:
    units = json.loads(os.environ.pop("SANDBOX_SERVICES"))
    report = int(os.environ.pop("SANDBOX_PIDS_FD"))
    for module in SHARED:
        importlib.import_module(module)
    sys.stdout.flush()
    sys.stderr.flush()
    for name, module, args in units:
        pid = os.fork()
        if pid == 0:
            os.close(report)  # the supervisor reads until every copy of this descriptor is closed
            serve(name, module, args)
            return  # the service ended: the interpreter exits as that service's command would
        os.write(report, f"{name} {pid}\n".encode())
    os.close(report)


if __name__ == "__main__":
    main()
