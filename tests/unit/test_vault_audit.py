"""The vault's audit records as `sandbox audit --secrets` reads them (lines as OpenBao's file device writes them)."""

from __future__ import annotations

import json

from sandbox.systems.openbao.audit_log import records, summarise


def _line(kind: str, path: str, who: str, when: str, error: str = "") -> str:
    rec = {"type": kind, "time": when, "auth": {"display_name": who, "policies": ["airflow-worker"]},
           "request": {"operation": "read", "path": path}}
    if error:
        rec["error"] = error
    return json.dumps(rec)


def test_responses_are_read_from_either_runtimes_log_and_grouped():
    lines = [
        "2026-12-01T05:00:00.000Z [INFO]  core: vault is unsealed",
        _line("request", "airflow/data/variables/k", "token-airflow", "2026-12-01T05:00:01Z"),
        _line("response", "airflow/data/variables/k", "token-airflow", "2026-12-01T05:00:01Z"),
        "openbao| " + _line("response", "airflow/data/variables/k", "token-airflow", "2026-12-01T05:00:03Z"),
        _line("response", "sandbox/data/clients/dev/x", "token-airflow", "2026-12-01T05:00:02Z", "permission denied"),
        "openbao| not json {",
    ]
    recs = records(lines)
    assert len(recs) == 3  # responses only
    rows = summarise(recs)
    assert [(r.path, r.outcome, r.count) for r in rows] == [
        ("airflow/data/variables/k", "ok", 2), ("sandbox/data/clients/dev/x", "permission denied", 1)]
    assert rows[0].first_seen == "2026-12-01T05:00:01Z" and rows[0].last_seen == "2026-12-01T05:00:03Z"
    assert rows[0].identity == "token-airflow" and rows[0].policies == "airflow-worker"
    # a window keeps the newer records only
    assert [r.count for r in summarise(recs, since=1_796_101_202.5)] == [1]
