"""A service account's token helper, as the CLI and the test handle use it: the spec names the account, the
sandbox's 0600 file holds its secret, Keycloak issues the token."""

from __future__ import annotations

import json

from sandbox import clients
from sandbox.errors import SandboxError, use_one_of
from sandbox.paths import SandboxPaths
from sandbox.plan import token_url
from sandbox.runtime.base import Endpoints
from sandbox.spec import Spec
from sandbox.systems.airflow.token_helper import ClientCredentialsAuth


def check_account(spec: Spec, account: str, env: str) -> None:
    if account not in spec.accounts:
        raise SandboxError(f"No account named {account!r} in {spec.source}.",
                           use_one_of(account, spec.accounts), exit_code=2)
    if env not in spec.accounts[account].environments:
        raise SandboxError(f"{account} has no client in {env!r}.",
                           f"use --env with one of: {', '.join(spec.accounts[account].environments)}.", exit_code=2)


def client_secret(paths: SandboxPaths, env: str, account: str) -> str:
    try:
        return json.loads(paths.client_secrets.read_text())[f"{env}/{account}"]
    except (OSError, ValueError, KeyError) as e:
        raise SandboxError(f"No client secret is stored for {account} in {env}.",
                           "run `sandbox apply` (or `sandbox up`), and check the account and --env.") from e


def auth_for(spec: Spec, endpoints: Endpoints, paths: SandboxPaths, account: str, env: str,
             scope: str = "") -> ClientCredentialsAuth:
    """A `requests` auth that fetches (and refreshes) the account's client-credentials token."""
    check_account(spec, account, env)
    if why := clients.why_not_running(endpoints, "keycloak"):
        raise SandboxError(f"No token without Keycloak: {why}.", "run `sandbox up`.")
    client_secret(paths, env, account)  # a missing secret is said now, not at the first call
    return ClientCredentialsAuth(token_url(endpoints.url("keycloak"), env), account,
                                 lambda: client_secret(paths, env, account), scope)  # re-read: rotate changes it
