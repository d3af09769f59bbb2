"""A gateway record's X-Airflow-* tags are the caller's word: a call counts as a DAG's only when Airflow's own task
instance of that DAG, run and task was running when the gateway saw it."""

from __future__ import annotations

from sandbox.commands import audit, trust_map

RUNS = {("sandbox_smoke_dev", "manual__2026-12-07T08:00:00"): {"orders": (1000.0, 1010.0), "billing": (1000.0, None)}}


def runs(dag: str, run: str):
    return RUNS.get((dag, run))


def record(dag: str, task: str, run: str, when: float, api: str = "dev-orders") -> dict:
    return {"Tags": [f"x-airflow-dag-id-{dag}", f"x-airflow-task-id-{task}", f"x-airflow-run-id-{run}",
                     f"api-{api}"], "TimeStamp": [int(when), 0], "APIID": api, "ResponseCode": 200,
            "RequestTime": 12}


SMOKE_RUN = "manual__2026-12-07T08:00:00"


def test_a_call_inside_its_task_instances_run_is_verified():
    assert audit.explained(record("sandbox_smoke_dev", "orders", SMOKE_RUN, 1005), runs)
    assert audit.explained(record("sandbox_smoke_dev", "billing", SMOKE_RUN, 5000), runs)  # still running


def test_forged_headers_are_not_verified():
    forged = [record("sandbox_smoke_dev", "orders", "manual__forged", 1005),  # no such run
              record("sandbox_smoke_dev", "export", SMOKE_RUN, 1005),  # no such task in the run
              record("sandbox_smoke_dev", "orders", SMOKE_RUN, 1100),  # after the task ended
              record("sandbox_smoke_dev", "orders", SMOKE_RUN, 900),  # before it started
              {"Tags": ["x-airflow-dag-id-sandbox_smoke_dev"], "TimeStamp": [1005, 0]}]  # no task or run
    assert [audit.explained(r, runs) for r in forged] == [False] * 5


def test_every_output_carries_the_verdict():
    recs = [record("sandbox_smoke_dev", "orders", SMOKE_RUN, 1005),
            record("sandbox_smoke_dev", "orders", "manual__forged", 1006)]
    rows = audit.summarise(recs, runs=runs)
    assert [(r.dag, r.task, r.count, r.verified) for r in rows] == [
        ("sandbox_smoke_dev", "orders", 1, False), ("sandbox_smoke_dev", "orders", 1, True)]
    assert [c["verified"] for c in trust_map.audit_calls(recs, runs)] == [True, False]
    assert [r.verified for r in audit.summarise(recs)] == [False]  # not checked: nothing is verified


def test_the_records_a_table_leaves_out_are_counted_by_why():
    tagged = {"Tags": ["x-airflow-dag-id-d", "x-airflow-task-id-t"], "TimeStamp": 1000, "APIID": "dev-orders",
              "ResponseCode": 200, "RequestTime": 3}
    other_dag = {**tagged, "Tags": ["x-airflow-dag-id-e"]}
    untagged = {"Tags": [], "TimeStamp": 1000, "APIID": "dev-orders", "ResponseCode": 200, "RequestTime": 3}
    t = audit.tally([tagged, other_dag, untagged, untagged], audit.Filters(dag="d"))
    assert (t.read, t.untagged, t.filtered) == (4, 2, 1)
    assert sum(r.count for r in audit.summarise([tagged, other_dag, untagged, untagged], audit.Filters(dag="d"))) == \
        t.read - t.untagged - t.filtered
