"""Bugs of the vault: the one the client secrets live in (sealed, Airflow's token gone), and a team's own
VaultBackend reading its connections from it (a token that expired behind a stale copy, a KV version mismatch)."""

from __future__ import annotations

import json

from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom
from sandbox.scenarios.worker_env import WORKERS
from sandbox.systems.openbao.client import MOUNT
from sandbox.systems.openbao.component import bootstrap

VAULT = ("openbao", "openbao")  # the component, and its process (local) or container (docker)


class VaultSealed(Scenario):
    name = "vault-sealed"
    story = ("An operator sealed the vault during an incident drill (or it restarted with a manual unseal nobody "
             "did). Airflow, the gateway and Keycloak all look healthy; every task that calls a service fails "
             "before it gets a token.")
    cause = "the vault answers 503 `Vault is sealed` to every read: Airflow cannot have its client secret"
    fix = ("unseal the vault (the sandbox's unseals itself when it starts: `sandbox up` restarts a sealed one); "
           "alert on the vault's health, not only on Airflow's")
    expected = Symptom("token", None, "503 Vault is sealed", "failed at token")
    doctor_says = "Vault is sealed"

    def inject(self, ctx: ScenarioContext) -> None:
        ctx.clients.vault.call("PUT", "sys/seal")

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*VAULT, {})  # a restart unseals it with its static key


class VaultTokenExpired(Scenario):
    name = "vault-token-expired"
    story = ("Airflow's vault token was a periodic token nobody renewed: the laptop slept over the period, or the "
             "renewal job died. The secrets are all still in the vault; Airflow may no longer read them.")
    cause = "the vault refuses Airflow's token (403 `permission denied`): it expired or was revoked"
    fix = ("renew periodic tokens well within their period, or log in with a method that re-authenticates "
           "(AppRole, Kubernetes auth); `sandbox up` renews Airflow's, and makes a new one when it is gone")
    expected = Symptom("token", None, "403 permission denied", "failed at token")
    doctor_says = "403 permission denied"
    differs = ("vault.airflow_token",)

    def inject(self, ctx: ScenarioContext) -> None:
        token = ctx.handoff.vault_token.read_text().strip()
        ctx.clients.vault.call("POST", "auth/token/revoke", {"token": token})  # what an expiry does, now

    def revert(self, ctx: ScenarioContext) -> None:
        # what `up` does at each start of the vault: the token renewed, or (gone) made anew
        bootstrap(ctx.endpoints.url("openbao"), ctx.paths.vault_keys(ctx.runtime.name), ctx.handoff.vault_token,
                  lambda _m: None)


# ---- a team's own VaultBackend ([secrets] backend), which the sandbox's backend asks in Airflow's place ----------
TEAM_BACKEND = "airflow.providers.hashicorp.secrets.vault.VaultBackend"
TEAM_POLICY = "team-connections"  # the team's token reads its connections, nothing else
TEAM_TOKEN_PERIOD = "1h"  # a revert deletes the policy; a token left over is useless and soon gone
LEGACY = "-v1"  # the route before the migration: <route>-v1


class TeamVaultBackend(Scenario):
    """A team that moved its connection to the vault and reads it with HashiCorp's VaultBackend (`[secrets] backend`,
    set in the workers' environment as Airflow's Docker docs show), with a token of its own."""

    kv_engine_version = 2
    policy_text = f'path "{MOUNT}/data/connections/*" {{ capabilities = ["read"] }}\n'

    def team_env(self, ctx: ScenarioContext, token: str, **kwargs) -> dict[str, str]:
        """The workers' environment for the team's backend (`kwargs`: more of its backend_kwargs)."""
        return {"AIRFLOW__SECRETS__BACKEND": TEAM_BACKEND, "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(
            {"url": ctx.endpoints.inner("openbao"), "mount_point": MOUNT, "connections_path": "connections",
             "variables_path": None, "config_path": None, "kv_engine_version": self.kv_engine_version,
             "auth_type": "token", "token": token, **kwargs})}

    def move_to_vault(self, ctx: ScenarioContext) -> str:
        """The connection in the vault as the provider reads it (a JSON connection), and the team's token."""
        vault = ctx.clients.vault
        vault.kv_put(f"connections/{self.connection}", {
            "conn_type": "http", "host": ctx.routes()[self.connection]["url"],
            "description": "moved from the metastore to the vault"})
        vault.put_policy(TEAM_POLICY, self.policy_text)
        return vault.create_token([TEAM_POLICY], "team-airflow", TEAM_TOKEN_PERIOD)

    def revert(self, ctx: ScenarioContext) -> None:
        ctx.runtime.restart(*WORKERS, {})
        vault = ctx.clients.vault
        vault.kv_delete(f"connections/{self.connection}")
        vault.call("DELETE", f"sys/policies/acl/{TEAM_POLICY}")
        # `sandbox apply` (the caller's next step) puts the metastore's copy back as the spec has it


class VaultSilentFallback(TeamVaultBackend):
    name = "vault-silent-fallback"
    story = ("The team moved its connection to the vault and reads it with HashiCorp's VaultBackend; the old copy "
             "stayed in the metastore, pointing at the legacy route. The backend's vault token expired over the "
             "weekend. Nothing in the task log says so: the task calls the legacy route, as if nothing had moved.")
    cause = ("the vault refuses the backend's token; Airflow logs the backend's error at DEBUG only and resolves "
             "the connection from the next place that has it — the stale metastore copy")
    fix = ("renew the backend's token (or log in with a method that re-authenticates: AppRole, Kubernetes auth), "
           "and delete the copies left in the metastore, so that a vault failure fails the task loudly")
    expected = Symptom("connection", None, LEGACY, "failed at connection: host is")
    doctor_says = "logs that at DEBUG"

    def inject(self, ctx: ScenarioContext) -> None:
        token = self.move_to_vault(ctx)
        api = ctx.clients.airflow
        live = api.call("GET", f"/connections/{self.connection}").json()
        api.call("PATCH", f"/connections/{self.connection}",
                 json={**live, "host": ctx.routes()[self.connection]["url"] + LEGACY})  # the copy nobody deleted
        ctx.runtime.restart(*WORKERS, self.team_env(ctx, token))
        ctx.clients.vault.call("POST", "auth/token/revoke", {"token": token})  # what an expiry does, now


class KvVersionMismatch(TeamVaultBackend):
    name = "kv-version-mismatch"
    story = ("The team moved its connection to the vault and deleted the metastore's copy. Their VaultBackend "
             "settings came from an older project whose mount was KV version 1; this mount is version 2. Tasks "
             "fail with `conn_id isn't defined`, though the connection is right there in the vault.")
    cause = ("with kv_engine_version 1 the provider reads <mount>/connections/<id>, a path a KV v2 mount does not "
             "serve: the vault answers 404 and the provider returns nothing, without an error or a warning")
    fix = "set kv_engine_version to 2 in [secrets] backend_kwargs (the mount's version: `bao secrets list -detailed`)"
    expected = Symptom("connection", None, "isn't defined", "failed at connection")
    doctor_says = "KV version 1"
    kv_engine_version = 1
    policy_text = f'path "{MOUNT}/connections/*" {{ capabilities = ["read"] }}\n'  # written for a v1 mount

    def inject(self, ctx: ScenarioContext) -> None:
        token = self.move_to_vault(ctx)
        ctx.clients.airflow.call("DELETE", f"/connections/{self.connection}")
        ctx.runtime.restart(*WORKERS, self.team_env(ctx, token))
