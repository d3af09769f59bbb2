"""`sandbox audit --secrets`: which identity read (or was refused) which secret of the vault, and when.

OpenBao's audit device (`file`, to the server's output) writes one JSON object per request and per response;
the runtime keeps that output as the vault's log. Responses are read: each names the token's display name and
policies, the operation, the path, and the error when refused. Values are never logged by OpenBao (they are
HMAC'd), so nothing secret reaches this report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime


@dataclass
class SecretAccess:
    identity: str  # the token's display name: token-airflow, root
    policies: str
    operation: str
    path: str
    outcome: str  # ok, or OpenBao's error
    count: int
    first_seen: str  # ISO 8601, as OpenBao wrote it
    last_seen: str


def records(lines: list[str]) -> list[dict]:
    """The audit device's response records among the log's lines (a container log's `service| ` prefix is cut)."""
    out = []
    for line in lines:
        text = line.split("| ", 1)[1] if line[:1] != "{" and "| {" in line else line
        if not text.startswith("{"):
            continue
        try:
            rec = json.loads(text)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("type") == "response" and isinstance(rec.get("request"), dict):
            out.append(rec)
    return out


def _epoch(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def summarise(recs: list[dict], since: float | None = None, prefix: str = "") -> list[SecretAccess]:
    """One row per identity, operation, path and outcome; `prefix` keeps the paths under it (e.g. `airflow/`)."""
    rows: dict[tuple, SecretAccess] = {}
    for rec in recs:
        req, auth = rec["request"], rec.get("auth") or {}
        path, when = req.get("path", ""), rec.get("time", "")
        if not path.startswith(prefix) or (since is not None and _epoch(when) < since):
            continue
        key = (auth.get("display_name") or "(no token)", ",".join(auth.get("policies") or []),
               req.get("operation", ""), path, rec.get("error") or "ok")
        row = rows.get(key)
        if row is None:
            rows[key] = SecretAccess(*key, 1, when, when)
        else:
            row.count += 1
            row.first_seen, row.last_seen = min(row.first_seen, when), max(row.last_seen, when)
    return sorted(rows.values(), key=lambda r: (r.last_seen, r.identity, r.path), reverse=True)
