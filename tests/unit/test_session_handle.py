"""The test handle's gateway session, with plain data: no gateway, one clear sentence."""

from __future__ import annotations

import pytest

from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths
from sandbox.runtime.base import AirflowHandoff, ComponentStatus, Endpoints
from sandbox.spec import load
from sandbox.stack.handle import Handle


def test_a_gateway_session_without_the_gateway_says_why(tmp_path):
    tyk = ComponentStatus("tyk", "disabled", None, "", "http://127.0.0.1:28082")
    paths = SandboxPaths(tmp_path, tmp_path / "cache")
    handle = Handle(paths, load(), Endpoints({"tyk": tyk}), AirflowHandoff.of(paths), None, False,
                    {"tyk": "left out by option"})
    with pytest.raises(SandboxError, match=r"No gateway session: tyk is not running \(left out by option\)"):
        handle.session("dev", "orders")
