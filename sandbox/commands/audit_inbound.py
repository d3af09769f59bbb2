"""`sandbox audit --inbound`: who called into Airflow through the gateway, and which DAG run or asset event it made.

The gateway's records of Airflow's route (its policies tag each caller's calls `account-<name>`) say who asked for
what and what the gateway answered; Airflow's own runs say who it recorded as the run's triggering user. A trigger is
`verified` when Airflow has a run of that DAG triggered by the caller's service account within a few seconds of the
gateway's record: the gateway's word and Airflow's agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.commands.audit import _iso, seconds_of, tag_value
from sandbox.spec import AIRFLOW_SERVICE

SLACK_S = 5.0  # the gateway's record and the run's queued time: one machine's clock, the exchange between them
_TRIGGER = re.compile(r"/api/v2/dags/([^/]+)/dagRuns/?$")
_ASSET_EVENT = re.compile(r"/api/v2/assets/events/?$")

# dag -> its runs as (run id, triggering user, queued at in epoch seconds)
Triggers = Callable[[str], list[tuple[str, str, float]]]


@dataclass
class InboundRow:
    when: str  # ISO 8601, UTC
    env: str
    account: str
    method: str
    path: str
    status: int
    action: str  # trigger <dag> | asset event | read | refused
    run_id: str | None = None  # the run Airflow recorded for this trigger
    verified: bool = False  # Airflow's record of the run names the caller


def service_account(account: str) -> str:
    """What Airflow records as the triggering user of a run a client's token made: Keycloak's service-account user."""
    return f"service-account-{account}"


def _action(method: str, path: str, status: int) -> tuple[str, str | None]:
    if status >= 400:
        return "refused", None
    if method == "POST" and (m := _TRIGGER.search(path)):
        return f"trigger {m.group(1)}", m.group(1)
    if method == "POST" and _ASSET_EVENT.search(path):
        return "asset event", None
    return "read", None


def rows(records: list[dict], triggers: Triggers | None, since: float | None = None) -> list[InboundRow]:
    """The records of Airflow's routes, oldest first; each trigger checked against Airflow's runs (`triggers` None:
    none is verified)."""
    out = []
    claimed: set[str] = set()
    for rec in records:
        tags = [str(t) for t in rec.get("Tags") or []]
        if tag_value(tags, "service-") != AIRFLOW_SERVICE:
            continue
        when = seconds_of(rec.get("TimeStamp"))
        if since is not None and when < since:
            continue
        path = str(rec.get("RawPath") or rec.get("Path") or "")
        method, status = str(rec.get("Method", "")), int(rec.get("ResponseCode", 0))
        action, dag = _action(method, path, status)
        row = InboundRow(_iso(when), tag_value(tags, "env-") or "", tag_value(tags, "account-") or "", method, path,
                         status, action)
        if dag and triggers is not None:
            user = service_account(row.account)
            run = next((r for r in triggers(dag) if r[1] == user and r[0] not in claimed
                        and abs(r[2] - when) <= SLACK_S), None)
            if run:
                claimed.add(run[0])
                row.run_id, row.verified = run[0], True
        out.append(row)
    return out


def airflow_triggers(api) -> Triggers:
    """`Triggers` from Airflow's REST API: a DAG's latest runs, asked once per DAG."""
    seen: dict[str, list[tuple[str, str, float]]] = {}

    def triggers(dag: str) -> list[tuple[str, str, float]]:
        if dag not in seen:
            r = api.call("GET", f"/dags/{dag}/dagRuns", ok404=True, params={"limit": 100, "order_by": "-run_after"})
            runs = r.json().get("dag_runs") or [] if r.status_code != 404 else []
            seen[dag] = [(x["dag_run_id"], x.get("triggering_user_name") or "",
                          seconds_of(x.get("queued_at") or x["run_after"])) for x in runs]
        return seen[dag]

    return triggers
