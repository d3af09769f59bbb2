"""The pytest plugin, exercised the way a user's suite would: separate pytest runs in subprocesses.

These runs use a light stack (Redis and the upstream) on their own ports and home, so they are quick and
leave the session's main stack alone; what is tested is the lifecycle, which is the same for any component.
"""

from __future__ import annotations

import json

import psutil
import pytest

from sandbox.paths import SandboxPaths, default_cache
from sandbox.runtime.local import LocalRuntime
from sandbox.systems import all_components

pytestmark = pytest.mark.integration
CACHE = default_cache()  # read now: pytester replaces HOME while a test runs
LIGHT = ["--sandbox-without=keycloak", "--sandbox-without=airflow", "--sandbox-without=tyk",
         "--sandbox-without=openbao"]

RECORDING_TEST = """
import json, os

def test_record(sandbox, tmp_path_factory):
    up = sandbox.endpoints.components["upstream"]
    out = os.environ["RECORD_DIR"] + f"/{os.getpid()}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.json"
    with open(out, "w") as f:
        json.dump({"attached": sandbox.attached, "seconds": sandbox.setup_seconds, "upstream_pids": up.pids,
                   "left_out": sorted(sandbox.left_out)}, f)
    assert up.healthy
"""


@pytest.fixture
def light(pytester, tmp_path, monkeypatch):
    home = tmp_path / "home"
    records = tmp_path / "records"
    records.mkdir()
    monkeypatch.setenv("SANDBOX_PORTS", "redis=29479,upstream=29483")
    monkeypatch.setenv("RECORD_DIR", str(records))
    # pytester gives the inner run a fresh HOME: keep it on this machine's provisioned cache
    monkeypatch.setenv("SANDBOX_CACHE", str(CACHE))
    monkeypatch.delenv("SANDBOX_WITHOUT", raising=False)
    pytester.makepyfile(test_user=RECORDING_TEST)

    def run(*extra: str):
        result = pytester.runpytest_subprocess(f"--sandbox-home={home}", *LIGHT, "-p", "no:cacheprovider", *extra)
        recs = [json.loads(p.read_text()) for p in sorted(records.iterdir())]
        for p in records.iterdir():
            p.unlink()
        return result, recs

    rt = LocalRuntime(SandboxPaths(home, CACHE), components=all_components())
    yield run, rt
    rt.down(force=True)


def running(rt: LocalRuntime) -> set[str]:
    return {s.name for s in rt.status() if s.state == "running"}


def test_a_session_starts_the_stack_and_stops_it(light):
    run, rt = light
    result, recs = run()
    result.assert_outcomes(passed=1)
    assert recs[0]["attached"] is False and recs[0]["left_out"] == ["airflow", "keycloak", "openbao", "tyk"]
    # what is left out is said where nobody misses it: the report header and the terminal summary
    result.stdout.fnmatch_lines(["sandbox: LEAVING OUT keycloak, airflow, tyk, openbao: *"])
    result.stdout.fnmatch_lines(["*sandbox: components left out*", "airflow: left out by option",
                                 "keycloak: left out by option", "openbao: left out by option",
                                 "tyk: left out by option"])
    assert running(rt) == set()
    assert not [p for p in recs[0]["upstream_pids"]
                if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_keep_then_a_second_session_attaches(light):
    run, rt = light
    result, first = run("--sandbox-keep")
    result.assert_outcomes(passed=1)
    assert running(rt) == {"redis", "upstream"}
    result, second = run()
    result.assert_outcomes(passed=1)
    assert second[0]["attached"] is True
    assert second[0]["upstream_pids"] == first[0]["upstream_pids"]
    # (how fast attaching is, is measured in bench/bench_apply.py, not asserted here)
    # it was running before that session came, so that session leaves it running
    assert running(rt) == {"redis", "upstream"}


def test_xdist_workers_share_one_stack(light, pytester):
    run, rt = light
    pytester.makepyfile(test_more=RECORDING_TEST.replace("test_record", "test_record_too"))
    result, recs = run("-n", "2")
    result.assert_outcomes(passed=2)
    assert len(recs) == 2 and len({tuple(r["upstream_pids"]) for r in recs}) == 1
    assert sorted(r["attached"] for r in recs) == [False, True]
    starts = (rt.log_path("upstream")).read_text().count("=== sandbox: starting go-httpbin")
    assert starts == 1
    assert running(rt) == set()  # the last worker out stopped it


def test_a_bad_spec_fails_the_session_with_its_message(light, pytester):
    run, _ = light
    (pytester.path / "bad.yaml").write_text("version: 1\nenvironments: {}\nservices: {}\naccounts: {}\ngrants: []\n"
                                            "colour: blue\n")
    result, recs = run("--sandbox-spec=bad.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "sandbox spec: " in err and "line 6: colour: unknown key 'colour'" in err
    assert "Traceback" not in err and recs == []


def test_a_module_runs_against_its_own_spec(light, pytester):
    run, _ = light
    (pytester.path / "alt.yaml").write_text(
        "version: 1\nenvironments: {qa: {token_lifespan: 60}}\nservices: {stock: {}}\n"
        "accounts: {airflow: {environments: [qa]}}\n"
        "grants: [{account: airflow, service: stock, scopes: [stock.read], rate: 1/s}]\n")
    pytester.makepyfile(test_alt="""
import pytest
pytestmark = pytest.mark.sandbox_spec("alt.yaml")

def test_alt(sandbox):
    assert list(sandbox.spec.environments) == ["qa"] and sandbox.spec.source.endswith("alt.yaml")
""", test_zdefault="""
def test_default_again(sandbox):
    assert set(sandbox.spec.environments) == {"dev", "prod"}
""")
    result, _ = run()
    result.assert_outcomes(passed=3)


def test_ctrl_c_still_stops_the_stack(light, pytester):
    run, rt = light
    pytester.makepyfile(test_user="""
import os, signal

def test_interrupted(sandbox):
    assert sandbox.endpoints.components["upstream"].healthy
    os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C was pressed mid-test
""")
    result, _ = run()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert running(rt) == set()
    assert rt.log_path("upstream").read_text().count("=== sandbox: starting") == 1  # it did start


def test_a_failing_test_leaves_a_snapshot_of_its_sandbox(stack, pytester, monkeypatch, tmp_path):
    # a user's suite attached to the session's whole stack, with a test that fails for its own reason
    monkeypatch.setenv("SANDBOX_CACHE", str(CACHE))
    pytester.makepyfile(test_user="""
def test_orders_answer_teapot(sandbox):
    r = sandbox.session("dev", "orders").get("/get", timeout=30)
    assert r.status_code == 418
""")
    snaps = tmp_path / "snaps"
    result = pytester.runpytest_subprocess(f"--sandbox-home={stack.home}", f"--sandbox-snapshot-on-failure={snaps}",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sandbox snapshot*", f"written to {snaps}/*test_orders_answer_teapot.json*"])
    (snap,) = snaps.glob("*.json")
    taken = json.loads(snap.read_text())
    # the sandbox was healthy: the snapshot says so, connection by connection, in the stack's own terms
    assert taken["machine"]["runtime"] == "local" and taken["doctor"]
    assert all(d["ok"] for d in taken["doctor"].values()), taken["doctor"]
    assert taken["connections"]["tyk_dev_orders"]["metastore"]["host"].startswith("<tyk>/dev/orders")
