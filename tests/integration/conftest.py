"""The integration tests use the project's own pytest plugin: one real stack per session, on test ports.

pyproject's ini options point the plugin at .sandbox-test/. Every component runs: one that cannot be
provisioned fails the session with its reason (nothing is skipped).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from keycloak import KeycloakAdmin

from sandbox.paths import SandboxPaths
from sandbox.stack.handle import Handle
from sandbox.systems.airflow.client import AirflowApi
from sandbox.systems.keycloak.client import keycloak_admin
from tests.conftest import TEST_PORTS  # also in SANDBOX_PORTS, which the `sandbox` fixture's stack runs on


def sandbox(*args: str, env: dict[str, str], check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "sandbox.cli", *args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"sandbox {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


@dataclass
class Stack:
    """The plugin's handle, plus the CLI pointed at the same sandbox."""

    handle: Handle
    env: dict[str, str]

    @property
    def home(self) -> Path:
        return self.handle.home

    @property
    def paths(self) -> SandboxPaths:
        return self.handle.paths

    @property
    def without(self) -> list[str]:
        return sorted(self.handle.left_out)

    def cli(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return sandbox(*args, env=self.env, check=check, **kw)

    def status(self) -> dict[str, dict]:
        return {row["name"]: row for row in json.loads(self.cli("status", "-o", "json", "--show-secrets").stdout)}

    def up_args(self) -> list[str]:
        return ["up", "-o", "json", *[a for n in self.without for a in ("--without", n)]]


@pytest.fixture(scope="session")
def stack(sandbox) -> Stack:
    env = {**os.environ, "SANDBOX_HOME": str(sandbox.home)}
    env.pop("SANDBOX_WITHOUT", None)
    return Stack(sandbox, env)


def airflow_session(stack) -> tuple[str, requests.Session]:
    """Airflow's REST API v2 base URL and a session signed in as the sandbox's own caller (the product's client)."""
    af = stack.status()["airflow"]
    api = AirflowApi.of_status(af)
    return api.base, api.s


def kc_admin(stack, realm: str) -> KeycloakAdmin:
    """Keycloak's admin (the product's client), working in `realm`."""
    a = keycloak_admin(f"http://127.0.0.1:{TEST_PORTS['keycloak']}", stack.status()["keycloak"]["secret"])
    a.change_current_realm(realm)
    return a
