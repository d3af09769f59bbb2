"""`sandbox map` on the session's stack: every grant an edge checked against the live systems, with the last
smoke's verdict and the DAGs the gateway saw; a policy deleted by hand is drift; every format parses."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sandbox.host import credentials
from sandbox.plan import Addresses, plan
from sandbox.spec import load as load_spec
from sandbox.systems.tyk.client import TykGateway

pytestmark = pytest.mark.integration
CONNECTIONS = {"tyk_dev_orders", "tyk_dev_billing", "tyk_prod_orders", "tyk_prod_billing"}
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _map(stack, fmt: str = "json"):
    out = stack.cli("map", "-o", fmt).stdout
    return json.loads(out) if fmt == "json" else out


def test_every_grant_is_an_edge_checked_against_the_live_systems(stack):
    stack.cli("smoke")
    m = _map(stack)
    want = plan(load_spec(), Addresses.nowhere()).policies
    assert {(e["env"], e["account"], e["service"], e["policy"]) for e in m["edges"]} == {
        (p.env, p.account, p.service, p.policy_id) for p in want}
    by_conn = {e["connection"]: e for e in m["edges"] if e["connection"]}
    assert set(by_conn) == CONNECTIONS
    assert all(e["state"] == "ok" and e["smoke"] == "ok" and not e["drift"] for e in by_conn.values()), by_conn
    # the smoke's own calls, from the gateway's audit records
    assert {d["dag"] for d in by_conn["tyk_dev_orders"]["dags"]} >= {"sandbox_smoke_dev"}
    assert {d["dag"] for d in by_conn["tyk_prod_billing"]["dags"]} >= {"sandbox_smoke_prod"}
    assert all(e["secret_age_s"] is not None for e in m["edges"])
    assert m["checked"]["drift"].startswith("Keycloak, Tyk and Airflow compared")


def test_a_policy_deleted_by_hand_is_drift_on_exactly_its_edge(stack):
    row = stack.status()["tyk"]
    gw = TykGateway(row["url"], row["secret"])
    gw.call("DELETE", "/policies/dev-airflow-billing")
    gw.reload()
    try:
        m = _map(stack)
        drifted = {e["policy"]: e["drift"] for e in m["edges"] if e["drift"]}
        assert list(drifted) == ["dev-airflow-billing"], drifted
        assert drifted["dev-airflow-billing"][0].startswith("tyk: create policy dev-airflow-billing"), drifted
        assert "## Drift from the spec" in _map(stack, "md")
    finally:
        stack.cli("apply")
    assert not any(e["drift"] for e in _map(stack)["edges"])


def test_markdown_csv_and_svg_parse_and_name_every_connection(stack):
    md = _map(stack, "md")
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(_map(stack)["edges"]) and all(c in md for c in CONNECTIONS)  # a header, an edge each
    rows = list(csv.DictReader(io.StringIO(_map(stack, "csv"))))
    assert {r["connection"] for r in rows} == CONNECTIONS | {"-"}
    svg = _map(stack, "svg")
    root = ET.fromstring(svg)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert all(c in texts for c in CONNECTIONS)
    # the docs' picture is this one, made anew by every run, with no secret of the sandbox in it
    assert not [k for k, v in _secrets(stack).items() if v in svg]
    (DOCS / "trust-map.svg").write_text(svg)


def _secrets(stack) -> dict[str, str]:
    """Every value the sandbox keeps as a secret: its own (passwords, keys, tokens) and each account's client secret."""
    own = credentials.read(stack.paths.secrets)
    clients = json.loads(stack.paths.client_secrets.read_text()) if stack.paths.client_secrets.exists() else {}
    return {k: v for k, v in {**own, **{f"client {k}": v for k, v in clients.items()}}.items()
            if isinstance(v, str) and len(v) >= 8}


def test_the_map_and_the_audit_fit_a_terminal_of_100_columns(stack):
    from tests.integration.conftest import sandbox

    env = {**stack.env, "COLUMNS": "100"}
    for args in (("map",), ("audit",)):
        out = sandbox(*args, env=env).stdout
        assert max(len(line) for line in out.splitlines()) <= 100, out
    assert "records read" in sandbox("audit", env=env).stdout
    dev = json.loads(stack.cli("map", "--env", "dev", "--service", "orders", "-o", "json").stdout)["edges"]
    assert dev and {(e["env"], e["service"]) for e in dev} == {("dev", "orders")}
    assert "Every field of every edge: `sandbox map -o md`" in " ".join(sandbox("map", env=env).stdout.split())


def test_the_access_plan_of_a_spec_edit_names_exactly_its_changes(stack, tmp_path):
    from sandbox.spec import fixture_path

    text = fixture_path("sandbox.yaml").read_text()
    edited = tmp_path / "edited.yaml"  # a grant added, a rate lowered
    text = text.replace("    scopes: [billing.read]\n    rate: 20/s", "    scopes: [billing.read]\n    rate: 5/s")
    edited.write_text(text.replace("\nairflow:\n", "  - account: reporting\n    service: billing\n"
                                                  "    scopes: [billing.export]\n    rate: 1/s\n\nairflow:\n"))
    want = ["| dev | airflow | billing | **rate lowered** | 20/s | 5/s |",
            "| dev | reporting | billing | **gains access** | - | billing.export; rate 1/s; quota none |",
            "| prod | airflow | billing | **rate lowered** | 20/s | 5/s |"]
    for base in ([], ["--base", str(fixture_path("sandbox.yaml"))]):  # against the gateway, and against the base spec
        md = stack.cli("plan", "-o", "md", "--spec", str(edited), *base).stdout
        assert [line for line in md.splitlines() if line.startswith("| ") and "environment" not in line] == want, md
    assert "No access changes" in stack.cli("plan", "-o", "md").stdout
