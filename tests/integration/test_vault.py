"""The vault on the session's stack: a real OpenBao server, unsealed, holding every account's secret; Airflow
reads its own through its policy and nothing else; a restart loses nothing."""

from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from sandbox.systems.openbao.client import MOUNT, SANDBOX_MOUNT, Vault, VaultError

pytestmark = pytest.mark.integration


def _vaults(stack) -> tuple[Vault, Vault]:
    row = stack.status()["openbao"]
    return Vault(row["url"], row["secret"]), Vault(row["url"], stack.paths.airflow_vault_token.read_text().strip())


def test_the_vault_is_unsealed_and_holds_every_account_secret(stack):
    row = stack.status()["openbao"]
    assert row["state"] == "running" and row["healthy"] and row["url"].startswith("http://127.0.0.1:")
    root, _ = _vaults(stack)
    code, body = root.health()
    assert code == 200 and body["initialized"] and not body["sealed"]
    clients = json.loads(stack.paths.client_secrets.read_text())
    assert clients  # every account of the spec, both environments
    for name, secret in clients.items():
        assert root.kv_get(f"clients/{name}", SANDBOX_MOUNT) == {"secret": secret}, name
    # a real server, not dev mode: storage on disk in the home, the audit device on
    assert (stack.home / "data" / "openbao" / "storage").is_dir()
    assert "sandbox/" in root.call("GET", "sys/audit")["data"]


def test_airflow_reads_its_own_secrets_and_is_refused_the_rest(stack):
    root, airflow = _vaults(stack)
    clients = json.loads(stack.paths.client_secrets.read_text())
    assert airflow.kv_get("variables/sandbox_client_secret_dev_airflow") == {"value": clients["dev/airflow"]}
    for attempt in (lambda: airflow.kv_get("clients/dev/airflow", SANDBOX_MOUNT),  # another mount
                    lambda: airflow.kv_put("variables/planted", {"value": "x"}),  # its own, but writing
                    lambda: airflow.call("GET", "sys/policies/acl/airflow-worker")):
        with pytest.raises(VaultError) as e:
            attempt()
        assert e.value.status == 403 and "permission denied" in e.value.message
    # its token carries that policy alone (not even `default`: it cannot look itself up), and a period
    token = root.call("POST", "auth/token/lookup", {"token": airflow.token})["data"]
    assert token["policies"] == ["airflow-worker"] and token["period"] > 0
    # the vault's audit records say who read what, and what was refused, and show no secret
    out = stack.cli("audit", "--secrets", "-o", "json").stdout
    rows = json.loads(out)
    mine = [r for r in rows if r["identity"] == "token-airflow"]
    assert {"airflow/data/variables/sandbox_client_secret_dev_airflow", "sandbox/data/clients/dev/airflow"} <= {
        r["path"] for r in mine}
    assert any(r["path"] == "sandbox/data/clients/dev/airflow" and "permission denied" in r["outcome"] for r in mine)
    assert not [v for v in clients.values() if v in out] and root.token not in out


def test_no_secret_file_for_airflow_remains(stack):
    handed = stack.paths.airflow_vault_token.parent
    assert sorted(p.name for p in handed.iterdir()) == ["vault-token"]
    assert oct(stack.paths.airflow_vault_token.stat().st_mode & 0o777) == "0o600"
    secrets = list(json.loads(stack.paths.client_secrets.read_text()).values())
    # nothing Airflow's processes read holds a client secret: their files, the DAG and lib folders, the metastore
    folders = [stack.home / "data" / "airflow", stack.handle.handoff.lib, stack.handle.handoff.dag_folder, handed]
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                data = path.read_bytes()
                assert not [s for s in secrets if s.encode() in data], path


def test_a_restarted_vault_comes_back_unsealed_with_everything(stack):
    root, airflow = _vaults(stack)
    before = root.kv_get("variables/sandbox_client_secret_prod_airflow", MOUNT)
    pid = stack.status()["openbao"]["pids"][0]
    os.killpg(pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(pid)], timeout=10) if psutil.pid_exists(pid) else None
    assert stack.status()["openbao"]["state"] == "crashed"
    out = json.loads(stack.cli(*stack.up_args()).stdout)
    assert {c["name"]: c["action"] for c in out["components"]}["openbao"] in ("started", "restarted")
    assert root.health()[0] == 200  # unsealed by its static key, nobody typed anything
    assert root.kv_get("variables/sandbox_client_secret_prod_airflow", MOUNT) == before
    # Airflow's token survived (renewed, not replaced): its processes need no restart
    assert airflow.kv_get("variables/sandbox_client_secret_prod_airflow") == before
    assert stack.paths.airflow_vault_token.read_text().strip() == airflow.token


def test_up_remakes_a_revoked_airflow_token_while_the_vault_runs(stack):
    root, airflow = _vaults(stack)
    root.call("POST", "auth/token/revoke", {"token": airflow.token})
    with pytest.raises(VaultError) as e:
        airflow.kv_get("variables/sandbox_client_secret_dev_airflow")
    assert e.value.status == 403
    out = json.loads(stack.cli(*stack.up_args()).stdout)
    assert {c["name"]: c["action"] for c in out["components"]}["openbao"] == "already-running"
    _, remade = _vaults(stack)
    assert remade.token != airflow.token
    assert remade.kv_get("variables/sandbox_client_secret_dev_airflow")["value"]


def test_a_teams_own_vault_backend_keeps_serving_its_tasks(stack, sandbox_run_dag):
    """Airflow's workers use `[secrets] backend` only while `[workers] secrets_backend` is unset, and the sandbox sets
    that: its backend asks the team's in Airflow's place, for the team's own connections and variables and for a
    sandbox route the team moved into the vault (the credential still added)."""
    import shutil

    from sandbox.scenarios.base import ScenarioContext
    from sandbox.scenarios.vault import TEAM_POLICY, VaultSilentFallback
    from sandbox.scenarios.worker_env import WORKERS
    from sandbox.spec import fixture_path
    from sandbox.spec import load as load_spec
    from sandbox.stack.factory import make_runtime

    rt = make_runtime(stack.paths)
    ctx = ScenarioContext.of(load_spec(), rt)
    team = VaultSilentFallback().on(ctx.spec)  # its helpers: the route moved into the vault, the team's token
    root, _ = _vaults(stack)
    try:
        token = team.move_to_vault(ctx)
        root.put_policy(TEAM_POLICY, f'path "{MOUNT}/data/connections/*" {{ capabilities = ["read"] }}\n'
                                     f'path "{MOUNT}/data/variables/team_*" {{ capabilities = ["read"] }}\n')
        root.kv_put("connections/team_warehouse", {"conn_type": "http", "host": "warehouse.team.example",
                                                   "login": "etl", "password": "from-the-team-vault"})
        root.kv_put("variables/team_bucket", {"value": "s3://team-bucket"})
        ctx.clients.airflow.call("DELETE", f"/connections/{team.connection}")  # the team keeps it in the vault only
        rt.restart(*WORKERS, team.team_env(ctx, token, variables_path="variables"))
        shutil.copy(fixture_path("dags/team_vault_backend.py"), ctx.handoff.dag_folder)
        result = sandbox_run_dag("team_vault_backend", timeout=240)
        assert result["state"] == "success", result
        assert result["tasks"] == {"read_team_secrets": "success", "operator": "success", "sensor": "success"}, result
    finally:
        (ctx.handoff.dag_folder / "team_vault_backend.py").unlink(missing_ok=True)
        team.revert(ctx)
        root.kv_delete("connections/team_warehouse")
        root.kv_delete("variables/team_bucket")
        ctx.apply()  # the metastore copy back, as repro reverts
