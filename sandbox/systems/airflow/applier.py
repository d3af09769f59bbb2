"""Airflow: one HTTP connection per environment x service, through the REST API v2.

A connection holds only where to go (the gateway route as its host), so Airflow's HTTP hook uses it as it
is: no extra key to become a stray header, no login to turn into Basic auth. The sandbox's mark is in the
description; how to get a token is in the routes file beside the token helper in the DAG folder, and the
client secret in the secrets backend (a 0600 file read by LocalFilesystemBackend).
"""

from __future__ import annotations

import json

from sandbox.plan import CONNECTION_MARK, MANAGED, AirflowConnection, Desired
from sandbox.systems.airflow.client import AirflowApi
from sandbox.systems.steps import Change, Step


def connection_body(c: AirflowConnection) -> dict:
    return {"connection_id": c.conn_id, "conn_type": "http", "host": c.url, "port": None, "schema": None,
            "description": c.description, "login": None, "password": None, "extra": None}


def _extra(live: dict) -> dict:
    try:
        return json.loads(live.get("extra") or "{}")
    except ValueError:
        return {}


def differences(live: dict, body: dict) -> list[str]:
    """What of a live connection departs from the wanted one (an empty extra equals none)."""
    out = [k for k in ("conn_type", "host", "port", "schema", "login", "description") if live.get(k) != body[k]]
    if live.get("password"):  # the API shows a set one masked
        out.append("password")
    if _extra(live):
        out.append("extra")
    return out


def _replace(api: AirflowApi, cid: str, body: dict) -> None:
    """Airflow's PATCH keeps a password it is asked to clear: a connection holding one is made anew."""
    api.call("DELETE", f"/connections/{cid}")
    api.call("POST", "/connections", json=body)


def managed(live: dict) -> bool:
    # the old format kept the mark in the extra; both count, so an upgrade converges instead of duplicating
    return (live.get("description") or "").startswith(CONNECTION_MARK) or bool(_extra(live).get(MANAGED))


def steps(api: AirflowApi, desired: Desired) -> list[Step]:
    out: list[Step] = []
    live = {c["connection_id"]: c for c in api.connections()}
    wanted = {c.conn_id: c for c in desired.connections}
    for cid, c in wanted.items():
        body = connection_body(c)
        if cid not in live:
            out.append(Step(Change("airflow", "create", "connection", cid, c.url),
                            lambda b=body: api.call("POST", "/connections", json=b)))
        elif managed(live[cid]) and (diff := differences(live[cid], body)):
            update = (lambda b=body, i=cid: _replace(api, i, b)) if {"password", "extra"} & set(diff) else \
                (lambda b=body, i=cid: api.call("PATCH", f"/connections/{i}", json=b))
            out.append(Step(Change("airflow", "update", "connection", cid, ", ".join(diff)), update))
    for cid, c in live.items():
        if cid not in wanted and managed(c):
            out.append(Step(Change("airflow", "delete", "connection", cid),
                            lambda i=cid: api.call("DELETE", f"/connections/{i}")))
    return out
