"""`sandbox repro` on the real stack: each scenario's exact symptom through a real DAG run, reverted to green;
kept faults named by doctor; an unknown name; Ctrl-C reverting."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.scenarios import CATALOGUE
from sandbox.scenarios.repro import runnable
from tests.cli_checks import kept_fault_is_named_and_reverted, repro, secrets_in

LOCAL = runnable("local")  # the suite's stack runs on the local runtime; tests/integration/test_docker.py has the rest

pytestmark = pytest.mark.integration


# the scenarios `sandbox compare` must name, from a snapshot of the green sandbox against the sandbox with the fault in
COMPARED = ("proxy-env", "netrc-override", "env-shadowed-connection", "clock-skew", "wrong-audience",
            "signing-key-rotation", "vault-token-expired", "stale-quota-after-reseed")


@pytest.fixture(scope="module")
def green_snapshot(stack, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("snapshots") / "green.json"
    stack.cli("snapshot", str(path))
    return path


def test_two_snapshots_of_an_unchanged_sandbox_compare_equal_and_hold_no_secret(stack, green_snapshot):
    p = stack.cli("compare", str(green_snapshot), "-o", "json", check=False)  # against this machine now
    c = json.loads(p.stdout)
    assert p.returncode == 0 and c["equal"] and c["failing"] == {"A": [], "B": []}, c
    text = green_snapshot.read_text()
    taken = json.loads(text)
    assert set(taken["connections"]) == set(taken["doctor"]) and taken["connections"]
    assert taken["versions"]["airflow"] == "3.3.2"  # as Airflow's API reports it, its providers beside it
    assert "apache-airflow-providers-keycloak" in taken["versions"]["providers"], taken["versions"]
    kept = secrets_in(stack.paths.home)
    assert kept and not [f for f, secret in kept if secret in text]
    assert "eyJ" not in text  # no token: only claims


@pytest.mark.parametrize("name", LOCAL)
def test_each_scenario_shows_its_symptom_is_named_by_doctor_and_reverts_to_green(stack, name, green_snapshot):
    # one run per scenario, kept (the next test runs one scenario without --keep)
    kept_fault_is_named_and_reverted(stack, name, green_snapshot if name in COMPARED else None)


def test_a_scenario_not_kept_reverts_itself_and_proves_green(stack):
    rc, (r,), _ = repro(stack, "rotated-secret")
    assert rc == 0 and r["matched"] and r["green_after"] and not r["kept"]  # timings: bench/bench_repro.py


def test_an_unknown_name_lists_the_known_ones(stack):
    p = stack.cli("repro", "nope", check=False)
    assert p.returncode == 2 and "No scenario named 'nope'" in p.stderr
    assert ", ".join(CATALOGUE) in " ".join(p.stderr.split())
    listed = json.loads(stack.cli("repro", "list", "-o", "json").stdout)
    assert [s["name"] for s in listed] == list(CATALOGUE)


def test_ctrl_c_during_a_scenario_still_reverts(stack):
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.cli", "repro", "rotated-secret"], env=stack.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    seen = ""
    while "running the smoke DAG" not in seen and time.monotonic() < deadline:  # the fault is in place now
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "running the smoke DAG" in seen, seen + err
    p = stack.cli("doctor", "-o", "json", "--connection", "tyk_dev_orders", check=False)
    assert p.returncode == 0, p.stdout  # the rotated secret was redistributed: green again


def test_a_scenario_of_another_runtime_says_where_it_runs(stack):
    p = stack.cli("repro", "container-vs-host-issuer", check=False)
    assert p.returncode == 2
    said = " ".join(p.stderr.split())
    assert "container-vs-host-issuer needs the docker runtime" in said and "runs on the local runtime" in said
    assert "sandbox up --runtime docker" in said
