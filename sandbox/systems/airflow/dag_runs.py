"""DAG runs through Airflow's REST API: trigger one (waiting for the DAG to be parsed), wait for it to end."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sandbox.errors import SandboxError
from sandbox.systems.airflow.client import AirflowApi

DONE = ("success", "failed")
TASK_DONE = ("success", "failed", "skipped", "upstream_failed", "removed")


def trigger(api: AirflowApi, dag_id: str, conf: dict | None, deadline: float) -> str:
    """Unpause and trigger `dag_id`; returns the run id. A DAG file just written is waited for until parsed.

    The run id is ours, so a POST that fails on the server (Airflow's SQLite, locked for its 5 s while a restarted
    scheduler writes, answers 500) is sent again without ever making two runs: a second POST of a run that was
    made after all answers 409."""
    s, base = api.s, api.base
    run_id = f"manual__{datetime.now(UTC).isoformat()}"
    retried = False
    while True:
        r = s.patch(f"{base}/dags/{dag_id}", json={"is_paused": False}, timeout=30)
        if r.status_code >= 500 and time.monotonic() < deadline:  # the same locked SQLite: the PATCH is idempotent
            time.sleep(1)
            continue
        if r.status_code != 404:
            r.raise_for_status()
            # a DAG whose file was removed and put back is known (the PATCH passes) but has no parsed version to
            # run until the dag-processor sees the file again: the run is refused with 404 meanwhile
            run = s.post(f"{base}/dags/{dag_id}/dagRuns",
                         json={"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}, timeout=30)
            if run.status_code == 409 and retried:
                return run_id
            if run.status_code >= 500 and not retried:
                retried = True
                continue
            if run.status_code != 404:
                run.raise_for_status()
                return run.json()["dag_run_id"]
        if time.monotonic() > deadline:
            raise SandboxError(f"Airflow does not know DAG {dag_id!r}.",
                               "check the DAG folder and its import errors.")
        time.sleep(0.5)  # the dag-processor has not parsed it yet


def wait(api: AirflowApi, dag_id: str, run_id: str, deadline: float, timeout: float) -> str:
    """The run's final state (success or failed)."""
    while True:
        state = api.s.get(f"{api.base}/dags/{dag_id}/dagRuns/{run_id}", timeout=30).json()["state"]
        if state in DONE:
            return state
        if time.monotonic() > deadline:
            raise SandboxError(f"DAG run {run_id} of {dag_id} is still {state} after {timeout:.0f}s.",
                               "look at its task logs in the Airflow UI, or pass a longer timeout.")
        time.sleep(0.3)


def wait_tasks(api: AirflowApi, dag_id: str, run_id: str, tasks: set[str], deadline: float, timeout: float) -> None:
    """Until `tasks` of the run have ended — not the whole run: a task skipped beside them can take seconds more
    to report (its process exits late), and nobody waits on it."""
    while True:
        states = {t: ti.get("state") for t, ti in task_states(api, dag_id, run_id).items() if t in tasks}
        if states.keys() == tasks and all(st in TASK_DONE for st in states.values()):
            return
        run_state = api.s.get(f"{api.base}/dags/{dag_id}/dagRuns/{run_id}", timeout=30).json()["state"]
        if run_state in DONE:
            return
        if time.monotonic() > deadline:
            raise SandboxError(f"DAG run {run_id} of {dag_id} is still running {', '.join(sorted(tasks))} after "
                               f"{timeout:.0f}s.", "look at its task logs in the Airflow UI, or pass a longer timeout.")
        time.sleep(0.3)


def task_states(api: AirflowApi, dag_id: str, run_id: str) -> dict[str, dict]:
    tis = api.s.get(f"{api.base}/dags/{dag_id}/dagRuns/{run_id}/taskInstances", timeout=30).json()
    return {t["task_id"]: t for t in tis["task_instances"]}


def run_dag(api: AirflowApi, dag_id: str, conf: dict | None, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    run_id = trigger(api, dag_id, conf, deadline)
    state = wait(api, dag_id, run_id, deadline, timeout)
    return {"dag_run_id": run_id, "state": state,
            "tasks": {t: ti["state"] for t, ti in task_states(api, dag_id, run_id).items()}}
