"""The vault: every service account's client secret, and the ones Airflow's processes read where they read them.

Airflow's account: KV v2 `airflow/variables/<key>`, field `value` — the layout of the HashiCorp provider's
VaultBackend, so a team's own Airflow reading the same vault finds them where it looks; Airflow's token may read
these. Every account: `sandbox/clients/<realm>/<client>`, field `secret`, which Airflow's token may not read.
Written only when they differ (a rewrite would add a version for nothing); what the spec no longer has goes.
"""

from __future__ import annotations

from sandbox.plan import SECRET_PREFIX
from sandbox.systems.openbao.client import MOUNT, SANDBOX_MOUNT, Vault
from sandbox.systems.steps import Change


def _put(vault: Vault, mount: str, path: str, field: str, value: str, what: str) -> list[Change]:
    now = vault.kv_get(path, mount)
    if (now or {}).get(field) == value:
        return []
    vault.kv_put(path, {field: value}, mount)
    return [Change("openbao", "create" if now is None else "update", "secret", f"{mount}/{path}", what)]


def store(vault: Vault, airflow: dict[str, str], accounts: dict[str, str]) -> list[Change]:
    """`airflow`: Variable key -> secret (Airflow's account); `accounts`: "realm/client" -> secret (all)."""
    changes = []
    for key, value in sorted(airflow.items()):
        changes += _put(vault, MOUNT, f"variables/{key}", "value", value, "Airflow's client secret")
    for key in vault.kv_list("variables/"):
        if key.startswith(SECRET_PREFIX) and key not in airflow:
            vault.kv_delete(f"variables/{key}")
            changes.append(Change("openbao", "delete", "secret", f"{MOUNT}/variables/{key}"))
    for name, value in sorted(accounts.items()):
        changes += _put(vault, SANDBOX_MOUNT, f"clients/{name}", "secret", value, "client secret")
    for realm in vault.kv_list("clients/", SANDBOX_MOUNT):
        for client in vault.kv_list(f"clients/{realm}", SANDBOX_MOUNT):
            if f"{realm}{client}" not in accounts:
                vault.kv_delete(f"clients/{realm}{client}", SANDBOX_MOUNT)
                changes.append(Change("openbao", "delete", "secret", f"{SANDBOX_MOUNT}/clients/{realm}{client}"))
    return changes
