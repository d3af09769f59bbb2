"""OpenBao's HTTP API, the few calls the sandbox makes: initialise, configure, read and write its KV v2 mount.

Plain requests, no client library: what is sent is what OpenBao's API reference shows. Errors carry OpenBao's
own words (`permission denied`, `Vault is sealed`) and never a token.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from sandbox.errors import SandboxError

MOUNT = "airflow"  # the KV v2 mount of Airflow's secrets (the HashiCorp provider's `mount_point`; its default: secret)
SANDBOX_MOUNT = "sandbox"  # the KV v2 mount of every account's client secret, which Airflow may not read
AIRFLOW_POLICY = "airflow-worker"
# Airflow's processes read, and only read, what the HashiCorp provider's VaultBackend reads: its connections and
# variables (secret/data/<kind>/<key> on a KV v2 mount)
AIRFLOW_POLICY_TEXT = f"""path "{MOUNT}/data/variables/*" {{ capabilities = ["read"] }}
path "{MOUNT}/data/connections/*" {{ capabilities = ["read"] }}
"""
AUDIT_DEVICE = "sandbox"  # declared in the server's configuration
# a periodic token lives as long as it is renewed within its period; every start of the vault renews it
AIRFLOW_TOKEN_PERIOD = "768h"
INIT_TIMEOUT_S = 120.0


class VaultError(SandboxError):
    def __init__(self, message: str, status: int | None,
                 fix: str = "check `sandbox status` and `sandbox logs openbao`."):
        super().__init__(message, fix)
        self.status = status


@dataclass
class Vault:
    url: str
    token: str = ""
    timeout: float = 5.0

    def call(self, method: str, path: str, json: dict | None = None, ok404: bool = False,
             timeout: float | None = None) -> dict | None:
        headers = {"X-Vault-Token": self.token} if self.token else {}
        try:
            r = requests.request(method, f"{self.url}/v1/{path}", json=json, headers=headers,
                                 timeout=timeout or self.timeout)
        except requests.RequestException as e:
            raise VaultError(f"OpenBao at {self.url} did not answer {method} /v1/{path} ({type(e).__name__}).",
                             None) from e
        if r.status_code == 404 and ok404:
            return None
        if not r.ok:
            try:
                words = "; ".join(r.json().get("errors") or []) or r.reason
            except ValueError:
                words = r.reason
            raise VaultError(f"OpenBao refused {method} /v1/{path}: {r.status_code} {words}.", r.status_code)
        return r.json() if r.content else {}

    # ---- the server ------------------------------------------------------------------------------
    def health(self) -> tuple[int, dict]:
        """sys/health's status code (200 active, 501 not initialised, 503 sealed) and body."""
        try:
            r = requests.get(f"{self.url}/v1/sys/health", timeout=self.timeout)
        except requests.RequestException as e:
            raise VaultError(f"OpenBao at {self.url} did not answer ({type(e).__name__}).", None) from e
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, {}

    def initialised(self) -> bool:
        return bool(self.call("GET", "sys/init")["initialized"])

    def initialise(self) -> dict:
        """Once per vault: an auto-unsealed vault hands back a root token and recovery keys. Its own timeout: the
        answer holds the only copy of the root token, and a loaded machine took more than 5 s to give it (the CI's
        docker stack while a kind cluster loaded its images): a client that gave up left a vault nobody could open."""
        return self.call("POST", "sys/init", {"recovery_shares": 1, "recovery_threshold": 1}, timeout=INIT_TIMEOUT_S)

    # ---- configuration (root) --------------------------------------------------------------------
    def ensure_kv2(self, *mounts: str) -> None:
        """Each of `mounts` a KV v2 mount: the mounts listed once, the missing ones made."""
        listed = self.call("GET", "sys/mounts") or {}
        have = listed.get("data", listed)
        for mount in mounts:
            if f"{mount}/" not in have:
                self.call("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "2"}})

    def put_policy(self, name: str, text: str) -> None:
        self.call("POST", f"sys/policies/acl/{name}", {"policy": text})

    def create_token(self, policies: list[str], display_name: str, period: str) -> str:
        body = {"policies": policies, "no_default_policy": True, "display_name": display_name, "period": period,
                "renewable": True}
        return self.call("POST", "auth/token/create-orphan", body)["auth"]["client_token"]

    def renew(self, token: str) -> bool:
        """Renew another token (root may); False when it no longer exists or has expired."""
        try:
            self.call("POST", "auth/token/renew", {"token": token})
            return True
        except VaultError as e:
            if e.status in (400, 403, 404):
                return False
            raise

    # ---- KV v2 -----------------------------------------------------------------------------------
    def kv_get(self, path: str, mount: str = MOUNT) -> dict | None:
        body = self.call("GET", f"{mount}/data/{path}", ok404=True)
        return None if body is None else body["data"]["data"]

    def kv_put(self, path: str, data: dict, mount: str = MOUNT) -> None:
        self.call("POST", f"{mount}/data/{path}", {"data": data})

    def kv_delete(self, path: str, mount: str = MOUNT) -> None:
        self.call("DELETE", f"{mount}/metadata/{path}", ok404=True)

    def kv_list(self, folder: str, mount: str = MOUNT) -> list[str]:
        body = self.call("LIST", f"{mount}/metadata/{folder}", ok404=True)
        return [] if body is None else list(body["data"]["keys"])
