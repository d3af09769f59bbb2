"""A new system is its own folder: the skeleton identity provider in tests/third_system runs on the local runtime
unchanged (up, status, down), and no runtime names any system. What it took is counted here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import psutil
import requests

from sandbox.paths import SandboxPaths
from sandbox.runtime.local import LocalRuntime
from tests.third_system.component import ThirdIdp

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("keycloak", "tyk", "openbao", "airflow", "redis", "upstream")
PROJECT = "airflow-tyk-sandbox"  # the project's own name (its labels): not a system's


def test_a_third_identity_system_runs_from_its_own_folder_on_an_unchanged_runtime(tmp_path):
    files = sorted(p.name for p in (ROOT / "tests" / "third_system").glob("*.py"))
    assert files == ["__init__.py", "component.py"]  # its whole code; the product would add 2 registration lines
    rt = LocalRuntime(SandboxPaths(tmp_path / "home", tmp_path / "cache"), {}, components=[ThirdIdp()])
    try:
        (result,) = rt.up([], {}, lambda *_: None)
        assert (result.name, result.action) == ("thirdidp", "started")
        (row,) = rt.status()
        assert (row.state, row.healthy) == ("running", True)
        discovery = requests.get(f"{row.url}/.well-known/openid-configuration", timeout=5).json()
        assert discovery["issuer"] == f"{row.url}/"
        pids = row.pids
        assert pids and all(psutil.pid_exists(p) for p in pids)
    finally:
        rt.down()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_no_runtime_names_a_system():
    said = []
    for path in (ROOT / "sandbox" / "runtime").rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                text = node.value.replace(PROJECT, "")
                said += [f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}" for name in SYSTEMS
                         if re.search(rf"(^|[^\w.]){name}($|[-_\s/:])", text)]
    assert said == []
