"""Bugs of the vault the client secrets live in: a sealed vault, and Airflow's vault token gone."""

from __future__ import annotations

from sandbox.runtime.components.openbao import bootstrap
from sandbox.scenarios.base import Scenario, ScenarioContext, Symptom

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

    def inject(self, ctx: ScenarioContext) -> None:
        token = ctx.handoff.vault_token.read_text().strip()
        ctx.clients.vault.call("POST", "auth/token/revoke", {"token": token})  # what an expiry does, now

    def revert(self, ctx: ScenarioContext) -> None:
        # what `up` does at each start of the vault: the token renewed, or (gone) made anew
        bootstrap(ctx.endpoints.url("openbao"), ctx.paths.vault_keys(ctx.runtime.name), ctx.handoff.vault_token,
                  lambda _m: None)
