"""The kubernetes runtime's suite: one sandbox on a real cluster for the session, started and stopped with the CLI
as a user does (`sandbox up --runtime kubernetes`), on ports of its own beside the main suite's.

It needs a cluster in the kubeconfig (`tools/kind_cluster.sh up` builds a kind one here; `eval "$(tools/
kind_cluster.sh env)"` points the shell at it). Without one the session fails with that fix: nothing is skipped.
Run it apart from the main suite: `pytest -ra tests/kube`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.paths import SandboxPaths, default_cache
from sandbox.runtime import state as statefile
from sandbox.systems.airflow.client import AirflowApi

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".sandbox-kube-test"
KUBE_PORTS = {"keycloak": 31081, "keycloak-management": 31091, "redis": 31379, "tyk": 31082, "airflow": 31080,
              "upstream": 31083, "openbao": 31200, "ui": 31090}
PART_OF = "app.kubernetes.io/part-of=airflow-tyk-sandbox"


@dataclass
class KubeStack:
    env: dict[str, str]
    namespace: str = ""

    @property
    def home(self) -> Path:
        return HOME

    @property
    def paths(self) -> SandboxPaths:
        return SandboxPaths(HOME, default_cache())

    def cli(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "sandbox.cli", *args], env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"sandbox {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
        return p

    def status(self) -> dict[str, dict]:
        return {row["name"]: row for row in json.loads(self.cli("status", "-o", "json", "--show-secrets").stdout)}

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        p = subprocess.run([kubectl(), *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=180)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p.stdout

    def items(self, kinds: str, *args: str) -> list[dict]:
        return json.loads(self.kubectl("get", kinds, *args, "-o", "json"))["items"]

    def airflow(self) -> AirflowApi:
        af = self.status()["airflow"]
        return AirflowApi.of_status(af)


def kubectl() -> str:
    return os.environ.get("SANDBOX_KUBECTL") or shutil.which("kubectl") or "kubectl"


@pytest.fixture(scope="session")
def kube() -> KubeStack:
    env = {**os.environ, "SANDBOX_HOME": str(HOME), "SANDBOX_RUNTIME": "kubernetes",
           "SANDBOX_PORTS": ",".join(f"{k}={v}" for k, v in KUBE_PORTS.items())}
    env.pop("SANDBOX_WITHOUT", None)
    stack = KubeStack(env)
    nodes = subprocess.run([kubectl(), "get", "nodes", "-o", "name"], env=env, capture_output=True, text=True)
    if nodes.returncode != 0 or not nodes.stdout.strip():
        pytest.fail(f"tests/kube needs a Kubernetes cluster and kubectl ({nodes.stderr.strip()[:200]}). Fix: "
                    "`tools/kind_cluster.sh up` and `eval \"$(tools/kind_cluster.sh env)\"`, or point KUBECONFIG "
                    "at a cluster.", pytrace=False)
    stack.cli("down", "--volumes", "--force", check=False)  # what an interrupted run left
    up = stack.cli("up", "-o", "json", timeout=1800)
    stack.up_report = json.loads(up.stdout)  # type: ignore[attr-defined]
    stack.namespace = statefile.load(stack.paths.state).cluster["namespace"]
    yield stack
    stack.cli("down", "--volumes", check=False)
