"""`sandbox audit --inbound` from plain records: the gateway's word on each call into Airflow, and Airflow's."""

from __future__ import annotations

from sandbox.commands import audit_inbound


def _rec(when, method, path, status, account="ci", service="airflow"):
    return {"TimeStamp": when, "Method": method, "RawPath": f"/dev/{service}{path}", "ResponseCode": status,
            "APIID": f"dev-{service}", "Tags": ["env-dev", f"account-{account}", f"service-{service}"]}


def test_a_trigger_is_verified_by_the_run_airflow_recorded_for_the_caller_and_nothing_else_is():
    records = [_rec(1000.0, "POST", "/api/v2/dags/sandbox_smoke_dev/dagRuns", 200),
               _rec(1001.0, "POST", "/api/v2/dags/sandbox_smoke_prod/dagRuns", 403),
               _rec(1002.0, "GET", "/api/v2/dags/sandbox_smoke_dev/dagRuns/r1", 200),
               _rec(1003.0, "POST", "/api/v2/dags/sandbox_smoke_dev/dagRuns", 200),  # no run of ci's: unverified
               _rec(1004.0, "GET", "/get", 200, account="airflow", service="orders")]  # out of Airflow: not listed
    runs = {"sandbox_smoke_dev": [("r1", "service-account-ci", 1000.4), ("r2", "admin", 1003.1)]}
    rows = audit_inbound.rows(records, lambda dag: runs.get(dag, []))
    assert [(r.action, r.status, r.run_id, r.verified) for r in rows] == [
        ("trigger sandbox_smoke_dev", 200, "r1", True), ("refused", 403, None, False), ("read", 200, None, False),
        ("trigger sandbox_smoke_dev", 200, None, False)]
    assert {r.account for r in rows} == {"ci"} and rows[0].when == "1970-01-01T00:16:40+00:00"
    assert [r.action for r in audit_inbound.rows(records, None, since=1002.5)] == ["trigger sandbox_smoke_dev"]


def test_the_records_are_read_in_the_order_of_their_requests_not_of_the_gateways_batches():
    import msgpack

    from sandbox.commands import audit

    class Redis:  # the list as Tyk's analytics workers left it: each flushed a batch of its own
        def lrange(self, key, start, end):
            made = ((1.0, "GET"), (3.0, "GET"), (2.0, "POST"))
            return [msgpack.packb({"TimeStamp": t, "Method": m}) for t, m in made]

    assert [r["Method"] for r in audit.read(Redis())] == ["GET", "POST", "GET"]
