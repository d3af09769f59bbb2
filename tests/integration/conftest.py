"""One real stack for the whole integration session, started through the CLI and stopped at the end.

It runs on its own ports and SANDBOX_HOME, so a developer's own sandbox is left alone. Tyk is left out
only when it cannot be provisioned on this machine; the tests that need it then skip, naming why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TEST_PORTS = {"keycloak": 29081, "keycloak-management": 29091, "redis": 29379, "tyk": 29082,
              "airflow": 29080, "upstream": 29083}


def sandbox(*args: str, env: dict[str, str], check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "sandbox.cli", *args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"sandbox {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    without: list[str]
    tyk_reason: str

    def cli(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return sandbox(*args, env=self.env, check=check, **kw)

    def status(self) -> dict[str, dict]:
        return {row["name"]: row for row in json.loads(self.cli("status", "-o", "json", "--show-secrets").stdout)}

    def up_args(self) -> list[str]:
        return ["up", "-o", "json", *[a for n in self.without for a in ("--without", n)]]


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    home = tmp_path_factory.mktemp("sandbox-home")
    env = {**os.environ, "SANDBOX_HOME": str(home),
           "SANDBOX_PORTS": ",".join(f"{k}={v}" for k, v in TEST_PORTS.items())}
    env.pop("SANDBOX_WITHOUT", None)
    prov = sandbox("provision", "-o", "json", env=env, check=False)
    results = {r["name"]: r for r in json.loads(prov.stdout)}
    failed = {n: r["detail"] for n, r in results.items() if not r["ok"]}
    assert set(failed) <= {"tyk"}, f"provisioning failed: {failed}"
    s = Stack(home, env, sorted(failed), failed.get("tyk", ""))
    s.cli(*s.up_args())
    yield s
    sandbox("down", env=env, check=False)


@pytest.fixture
def needs_tyk(stack):
    if "tyk" in stack.without:
        pytest.skip(f"Tyk could not be provisioned on this machine: {stack.tyk_reason}")
