"""Airflow: one HTTP connection per environment x service, through the REST API v2.

Connections hold where to go and how to get a token — never the client secret. The secret is kept in
the sandbox's Airflow secrets backend (a 0600 file read by LocalFilesystemBackend), named by the
connection's `credential_variable`.
"""

from __future__ import annotations

import json

from sandbox.apply import Change, Step
from sandbox.clients import AirflowApi
from sandbox.plan import MANAGED, AirflowConnection, Desired


def connection_body(c: AirflowConnection) -> dict:
    return {"connection_id": c.conn_id, "conn_type": "http", "host": c.host, "port": c.port, "schema": "http",
            "description": f"{c.service} in {c.env}, through the Tyk gateway (managed by airflow-tyk-sandbox)",
            "login": None, "password": None, "extra": json.dumps(c.extra(), sort_keys=True)}


def _extra(live: dict) -> dict:
    try:
        return json.loads(live.get("extra") or "{}")
    except ValueError:
        return {}


def _differs(live: dict, body: dict) -> list[str]:
    out = [k for k in ("conn_type", "host", "port", "schema", "login") if live.get(k) != body[k]]
    if _extra(live) != json.loads(body["extra"]):
        out.append("extra")
    return out


def steps(api: AirflowApi, desired: Desired) -> list[Step]:
    out: list[Step] = []
    live = {c["connection_id"]: c for c in api.connections()}
    wanted = {c.conn_id: c for c in desired.connections}
    for cid, c in wanted.items():
        body = connection_body(c)
        if cid not in live:
            out.append(Step(Change("airflow", "create", "connection", cid, f"{c.host}:{c.port}{c.base_path}"),
                            lambda b=body: api.call("POST", "/connections", json=b)))
        elif _extra(live[cid]).get(MANAGED) and (diff := _differs(live[cid], body)):
            out.append(Step(Change("airflow", "update", "connection", cid, ", ".join(diff)),
                            lambda b=body, i=cid: api.call("PATCH", f"/connections/{i}", json=b)))
    for cid, c in live.items():
        if cid not in wanted and _extra(c).get(MANAGED):
            out.append(Step(Change("airflow", "delete", "connection", cid),
                            lambda i=cid: api.call("DELETE", f"/connections/{i}")))
    return out
