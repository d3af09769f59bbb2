"""The vault's part of `sandbox doctor`: the secret hop (a client secret as Airflow's processes read it)."""

from __future__ import annotations

from sandbox.plan import AirflowConnection
from sandbox.runtime.base import AirflowHandoff, Endpoints
from sandbox.systems.checks import Hop, Judged
from sandbox.systems.openbao.client import Vault, VaultError


def judge_secret(want: AirflowConnection, secret: str | None, stale: list[tuple[str, int]],
                 refused: str | None = None) -> Judged:
    """The client secret as a task reads it (from the vault, with Airflow's token), and tokens a DAG stored in
    Variables that have expired since. `refused`: the vault's words when it would not answer Airflow."""
    if refused:
        return Hop("secret", False, refused), (
            f"The vault did not give Airflow {want.client_id}'s client secret: {refused.rstrip('.')}. Fix: `sandbox "
            "up` (it restarts a stopped or sealed vault and renews or remakes Airflow's vault token), then `sandbox "
            "apply`.")
    if stale and secret is not None:
        key, age = stale[0]
        return Hop("secret", False, f"Variable {key} holds a token that expired {age}s ago"), (
            f"Airflow Variable {key} holds an access token that expired {age}s ago: a task reusing it gets HTTP 401 "
            "\"token has expired\". Fix: refresh tokens before they expire (auth_type=SandboxAuth does) and delete "
            "the Variable.")
    if secret is None:
        return Hop("secret", False, f"{want.secret_key} is missing"), (
            f"No client secret for {want.client_id} in the vault. Fix: `sandbox apply`.")
    return Hop("secret", True, f"{want.secret_key} in the vault" if secret else
               f"{want.secret_key} is missing"), None


def vault_secret(endpoints: Endpoints, handoff: AirflowHandoff, secret_key: str) -> tuple[str | None, str | None]:
    """The client secret as Airflow's processes read it: from the vault, with Airflow's own token. Returns (the
    secret, None), or (None, why it could not be read)."""
    if "openbao" not in endpoints.components:
        return None, "the sandbox runs no vault"
    try:
        token = handoff.vault_token.read_text().strip()
    except OSError:
        return None, f"Airflow's vault token {handoff.vault_token} is missing"
    try:
        found = Vault(endpoints.url("openbao"), token).kv_get(f"variables/{secret_key}")
    except VaultError as e:
        return None, e.message
    return (found or {}).get("value"), None
