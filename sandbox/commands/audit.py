"""`sandbox audit`: which DAG called which service, from the gateway's own analytics records.

Tyk appends one msgpack record per call to a Redis list (no pump needed). The gateway APIs keep the
X-Airflow-Dag-Id, -Task-Id and -Run-Id headers as tags, so each record names the DAG, task and run that made
the call. The list is read with LRANGE, which consumes nothing: a pump or a later audit reads the same records.
Records live as long as the gateway's analytics TTL (`ANALYTICS_TTL` of the Tyk component, 24 h).

Those headers are the caller's word: anyone with a token can send them. So each record is checked against Airflow's
own record of its task instances: a call is `verified` only when the run it names has that task, and the task had
started and not yet ended when the gateway saw the call; every other call is shown as unverified.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgpack

KEY = "analytics-tyk-system-analytics"
DAG_TAG, TASK_TAG, RUN_TAG = "x-airflow-dag-id-", "x-airflow-task-id-", "x-airflow-run-id-"
DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


SLACK = 2.0  # seconds either side of a task's run: the gateway's and Airflow's clocks are one machine's or close


@dataclass
class AuditRow:
    dag: str
    task: str
    api: str
    status: int
    count: int
    p50_ms: float
    p95_ms: float
    first_seen: str  # ISO 8601, UTC
    last_seen: str
    verified: bool = True  # False: no task instance of Airflow's explains these calls (the headers were set by hand)


# (dag, run) -> task id -> (started, ended or None while it runs), in epoch seconds; None when Airflow has no such run
Runs = Callable[[str, str], dict[str, tuple[float | None, float | None]] | None]


def explained(rec: dict, runs: Runs) -> bool:
    """Whether Airflow's task instance named by the record's tags was running when the gateway saw the call."""
    tags = [str(t) for t in rec.get("Tags") or []]
    dag, task, run = tag_value(tags, DAG_TAG), tag_value(tags, TASK_TAG), tag_value(tags, RUN_TAG)
    if not (dag and task and run):
        return False
    tasks = runs(dag, run)
    if not tasks or task not in tasks:
        return False
    started, ended = tasks[task]
    when = seconds_of(rec.get("TimeStamp"))
    return started is not None and started - SLACK <= when and (ended is None or when <= ended + SLACK)


# (Airflow's URL, dag, run) -> its task instances, once the run has ended: they no longer change, and the page's
# evidence asks again every 15 s
_ENDED: dict[tuple[str, str, str], dict[str, tuple[float | None, float | None]]] = {}


def airflow_runs(api) -> Runs:
    """`Runs` from Airflow's REST API: one call per run, remembered in this process once the run has ended."""
    def runs(dag: str, run: str) -> dict | None:
        key = (api.url, dag, run)
        if key in _ENDED:
            return _ENDED[key]
        r = api.call("GET", f"/dags/{dag}/dagRuns/{run}/taskInstances", ok404=True, params={"limit": 1000})
        if r.status_code == 404:
            return None
        found = {t["task_id"]: (_epoch(t.get("start_date")), _epoch(t.get("end_date")))
                 for t in r.json().get("task_instances") or []}
        if found and all(end is not None for _, end in found.values()):  # a running one is asked again
            _ENDED[key] = found
        return found

    return runs


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else None


def parse_duration(text: str) -> int:
    """'15m', '2h', '1d', '30s' -> seconds."""
    m = DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 15m, 2h or 1d")
    return int(m.group(1)) * UNITS[m.group(2)]


def decode(raw: bytes) -> dict:
    return msgpack.unpackb(raw, raw=False, timestamp=3, strict_map_key=False)


def tag_value(tags: list[str], prefix: str) -> str | None:
    return next((t[len(prefix):] for t in tags if t.startswith(prefix)), None)


def seconds_of(ts) -> float:
    """A record's TimeStamp, however the encoder wrote it, as epoch seconds."""
    if isinstance(ts, datetime):
        return ts.timestamp()
    if isinstance(ts, int | float):
        return float(ts)
    if isinstance(ts, list | tuple) and len(ts) == 2:  # Tyk's encoder writes time.Time as [seconds, nanoseconds]
        return ts[0] + ts[1] / 1e9
    if isinstance(ts, str):
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Filters:
    """Which tagged calls a summary keeps: since when, one DAG, one environment, one service (None: every one)."""

    since: float | None = None
    dag: str | None = None
    env: str | None = None
    service: str | None = None

    def keeps(self, dag_id: str, rec: dict) -> bool:
        api = str(rec.get("APIID", ""))  # the gateway API of a route: <env>-<service>
        return ((self.dag is None or dag_id == self.dag) and (self.env is None or api.startswith(f"{self.env}-"))
                and (self.service is None or api.endswith(f"-{self.service}"))
                and (self.since is None or seconds_of(rec.get("TimeStamp")) >= self.since))


def summarise(records: list[dict], filters: Filters = Filters(), runs: Runs | None = None) -> list[AuditRow]:
    """DAG -> task -> API -> status -> verified: call counts, latency p50/p95, first and last seen. Calls without a
    DAG tag are not in it; `runs` checks each against Airflow's task instances (None: every call unverified)."""
    groups: dict[tuple[str, str, str, int, bool], list[tuple[float, float]]] = {}
    for rec in records:
        tags = [str(t) for t in rec.get("Tags") or []]
        dag_id = tag_value(tags, DAG_TAG)
        if dag_id is None or not filters.keeps(dag_id, rec):
            continue
        key = (dag_id, tag_value(tags, TASK_TAG) or "", str(rec.get("APIID", "")), int(rec.get("ResponseCode", 0)),
               runs is not None and explained(rec, runs))
        groups.setdefault(key, []).append((seconds_of(rec.get("TimeStamp")), float(rec.get("RequestTime", 0))))
    rows = []
    for (dag_id, task, api, status, verified), seen in sorted(groups.items()):
        times, latencies = [w for w, _ in seen], [ms for _, ms in seen]
        rows.append(AuditRow(dag_id, task, api, status, len(seen), _percentile(latencies, 0.5),
                             _percentile(latencies, 0.95), _iso(min(times)), _iso(max(times)), verified))
    return rows


@dataclass(frozen=True)
class Tally:
    """What the rows stand for among the records read: so that a count of rows never reads as a count of calls."""

    read: int
    untagged: int  # no X-Airflow-Dag-Id: not a task's call (`sandbox call`, curl, a script)
    filtered: int  # tagged, but left out by the filters (--since, --dag, --env, --service)


def tally(records: list[dict], filters: Filters = Filters()) -> Tally:
    untagged = filtered = 0
    for rec in records:
        dag_id = tag_value([str(t) for t in rec.get("Tags") or []], DAG_TAG)
        if dag_id is None:
            untagged += 1
        elif not filters.keeps(dag_id, rec):
            filtered += 1
    return Tally(len(records), untagged, filtered)


def read(redis_client) -> list[dict]:
    """Every analytics record in Redis, oldest first, without consuming any. Sorted by the request's time: the
    gateway's analytics workers each flush a batch of their own, so the list is not in request order (seen: a
    call's record after those of the next four calls)."""
    records = [decode(raw) for raw in redis_client.lrange(KEY, 0, -1)]
    return sorted(records, key=lambda r: seconds_of(r.get("TimeStamp")))
