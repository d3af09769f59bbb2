"""`sandbox smoke`: run the smoke DAGs through Airflow's REST API and read back each connection's hops.

The DAGs (fixtures/dags/sandbox_smoke.py, installed by apply) do the calls inside real Airflow tasks; this
module triggers them, waits, and turns their XCom records and task logs into one row per connection.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from sandbox.clients import Clients, why_not_running
from sandbox.errors import SandboxError
from sandbox.host.credentials import write_private
from sandbox.paths import SandboxPaths
from sandbox.plan import Addresses, plan
from sandbox.runtime.base import Endpoints
from sandbox.spec import Spec
from sandbox.systems.airflow import dag_runs
from sandbox.systems.airflow.client import AirflowApi

XCOM_KEY = "sandbox_smoke"  # as in the smoke DAG file
HOPS = ("connection", "token", "gateway", "upstream")
LOG_LINES = 6  # of a failed task's log, the last lines that say why


def dag_id(env: str) -> str:
    return f"sandbox_smoke_{env}"


@dataclass
class SmokeRow:
    connection: str
    env: str
    service: str
    ok: bool
    status: int | None
    hops: list[dict]  # name, ok (None: not reached), detail, ms
    gateway_error: str | None = None
    verdict: str = ""
    task_state: str = ""
    log: list[str] = field(default_factory=list)


@dataclass
class SmokeReport:
    ok: bool
    rows: list[SmokeRow]
    seconds: float  # start to verdict
    calls_seconds: float  # of which the calls themselves took (the slowest task's hops); the rest is Airflow
    runs: dict[str, str]  # dag id -> run id


def run(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, env: str | None = None, service: str | None = None,
        timeout: float = 180) -> SmokeReport:
    for name in ("airflow", "keycloak", "tyk"):
        if why := why_not_running(endpoints, name):
            raise SandboxError(f"The smoke needs {name}, and {why}.", "run `sandbox up`, then `sandbox smoke`.")
    every = plan(spec, Addresses.of(endpoints)).connections
    conns = [c for c in every if (env is None or c.env == env) and (service is None or c.service == service)]
    if not conns:
        raise SandboxError(f"No connection of {service or 'any service'} in {env or 'any environment'} in "
                           f"{spec.source}.", "check --env and --service against the spec.", exit_code=2)
    api = Clients(endpoints).airflow
    t0 = time.monotonic()
    deadline = t0 + timeout
    conf = {"service": service} if service else {}
    for e in sorted({c.env for c in conns}):  # a spec just applied: wait until Airflow has parsed its DAGs
        _wait_for_tasks(api, dag_id(e), {c.service for c in every if c.env == e}, deadline)
    runs = {dag_id(e): dag_runs.trigger(api, dag_id(e), conf, deadline) for e in sorted({c.env for c in conns})}
    for e in sorted({c.env for c in conns}):
        if service is None:  # every task of the run is one of ours: its end is theirs (and the gateway's analytics
            dag_runs.wait(api, dag_id(e), runs[dag_id(e)], deadline, timeout)  # have settled by then)
        else:  # the others are skipped, and a skipped task can report its end seconds late: not waited for
            dag_runs.wait_tasks(api, dag_id(e), runs[dag_id(e)], {c.service for c in conns if c.env == e},
                                deadline, timeout)
    seconds = time.monotonic() - t0
    states = {d: dag_runs.task_states(api, d, run_id) for d, run_id in runs.items()}
    rows = [_row(api, c.conn_id, c.env, c.service, dag_id(c.env), c.service, runs[dag_id(c.env)],
                 states[dag_id(c.env)].get(c.service, {})) for c in conns]
    calls = max((sum(h.get("ms") or 0 for h in r.hops) for r in rows), default=0) / 1000
    report = SmokeReport(all(r.ok for r in rows), rows, round(seconds, 2), round(calls, 3), runs)
    write_private(paths.smoke_result, json.dumps(asdict(report), indent=2))
    _remember_verdicts(paths, rows)
    return report


def _remember_verdicts(paths: SandboxPaths, rows: list[SmokeRow]) -> None:
    verdicts = verdicts_of(paths)
    now = time.time()
    verdicts.update({r.connection: {"ok": r.ok, "verdict": r.verdict, "at": now} for r in rows})
    write_private(paths.smoke_verdicts, json.dumps(verdicts, indent=2, sort_keys=True))


def verdicts_of(paths: SandboxPaths) -> dict[str, dict]:
    """connection -> {"ok", "verdict", "at" (epoch seconds)}: each one's latest smoke, of any smoke run."""
    try:
        raw = json.loads(paths.smoke_verdicts.read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def probe_dag(endpoints: Endpoints, dag: str, conn_id: str, env: str, service: str,
              timeout: float = 180) -> SmokeRow:
    """Run one of the repro DAGs (fixtures/dags/sandbox_repro.py: one task, `call`) for a connection."""
    api = Clients(endpoints).airflow
    deadline = time.monotonic() + timeout
    _wait_for_tasks(api, dag, {"call"}, deadline)
    run_id = dag_runs.trigger(api, dag, {"connection": conn_id}, deadline)
    dag_runs.wait(api, dag, run_id, deadline, timeout)
    ti = dag_runs.task_states(api, dag, run_id).get("call", {})
    return _row(api, conn_id, env, service, dag, "call", run_id, ti)


def _wait_for_tasks(api: AirflowApi, dag: str, tasks: set[str], deadline: float) -> None:
    while True:
        r = api.s.get(f"{api.base}/dags/{dag}/tasks", timeout=30)
        have = {t["task_id"] for t in r.json().get("tasks", [])} if r.ok else set()
        if tasks == have:  # equal: a run made from a stale parse would hold tasks the spec no longer has
            return
        if time.monotonic() > deadline:
            raise SandboxError(f"Airflow has not loaded the smoke DAG {dag} with tasks {', '.join(sorted(tasks))} "
                               f"(it has {', '.join(sorted(have)) or 'none'}).",
                               "check the DAG folder's import errors in the Airflow UI, then `sandbox smoke` again.")
        time.sleep(0.5)


def last(paths: SandboxPaths) -> SmokeReport | None:
    """The last smoke's report, as `sandbox smoke` (or `up`) left it."""
    try:
        raw = json.loads(paths.smoke_result.read_text())
    except (OSError, ValueError):
        return None
    return SmokeReport(raw["ok"], [SmokeRow(**r) for r in raw["rows"]], raw["seconds"], raw["calls_seconds"],
                       raw["runs"])


def _row(api: AirflowApi, conn_id: str, env: str, service: str, dag: str, task: str, run_id: str,
         ti: dict) -> SmokeRow:
    base = f"{api.base}/dags/{dag}/dagRuns/{run_id}/taskInstances/{task}"
    r = api.s.get(f"{base}/xcomEntries/{XCOM_KEY}", params={"deserialize": "true"}, timeout=30)
    record = _xcom_value(r.json()) if r.ok else None
    state = ti.get("state") or "missing"
    if record is None:
        row = SmokeRow(conn_id, env, service, False, None, [], verdict=f"the smoke task recorded nothing ({state})")
    else:
        row = SmokeRow(conn_id, env, service, bool(record["ok"]), record.get("status"), record["hops"],
                       record.get("gateway_error"), record.get("verdict", ""))
    reached = {h["name"] for h in row.hops}
    row.hops += [{"name": h, "ok": None, "detail": "not reached", "ms": None} for h in HOPS if h not in reached]
    row.task_state = state
    if not row.ok:
        row.log = _failure_lines(api, base, ti.get("try_number") or 1)
    return row


def _xcom_value(body: dict):
    value = body.get("value")
    if isinstance(value, str):  # some versions hand the value back serialised
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _failure_lines(api: AirflowApi, base: str, try_number: int) -> list[str]:
    r = api.s.get(f"{base}/logs/{try_number}", params={"full_content": "true"},
                  headers={"Accept": "application/json"}, timeout=30)
    if not r.ok:
        return []
    try:
        content = r.json().get("content", "")
    except ValueError:
        content = r.text
    lines = []
    for item in content if isinstance(content, list) else str(content).splitlines():
        if isinstance(item, dict):  # Airflow 3's structured log: the error events carry the exception
            if item.get("level") != "error":
                continue
            event = str(item.get("event", ""))
            if "Traceback" in event:  # a traceback as text (a trigger's failure): its last line is the error
                event = [line for line in event.splitlines() if line.strip()][-1]
            text = " ".join([event, *(f"{d.get('exc_type')}: {d.get('exc_value')}"
                                      for d in item.get("error_detail") or [])])
        elif "ERROR" in (text := str(item)) or "sandbox smoke" in text:
            pass
        else:
            continue
        lines.append(text.strip()[:300])
    return lines[-LOG_LINES:]
