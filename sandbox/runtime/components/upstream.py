"""The downstream service behind the gateway: go-httpbin, whose /anything echoes what it received."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox import versions
from sandbox.provision import Say, cached_build, is_done, require_tool, run
from sandbox.readiness import Check, http_ok
from sandbox.runtime.components.base import Component, ComponentContext, ProcessSpec

GO_HINT = "Go 1.22 or newer (apt-get install golang, or the official tarball)"


class Upstream(Component):
    name = "upstream"
    default_ports = {"upstream": 28083}
    start_timeout = 20.0

    def _dir(self, cache: Path) -> Path:
        return cache / "upstream" / versions.UPSTREAM

    def binary(self, cache: Path) -> Path:
        return self._dir(cache) / "bin" / "go-httpbin"

    def provisioned(self, cache: Path) -> bool:
        return is_done(self._dir(cache))

    def provision(self, cache: Path, say: Say) -> None:
        def build(tmp: Path) -> None:
            go = require_tool("go", GO_HINT)
            say(f"go install {versions.UPSTREAM_MODULE}/cmd/go-httpbin@{versions.UPSTREAM}")
            env = {**os.environ, "GOBIN": str(tmp / "bin"), "CGO_ENABLED": "0"}
            run([go, "install", f"{versions.UPSTREAM_MODULE}/cmd/go-httpbin@{versions.UPSTREAM}"],
                "building go-httpbin", env=env)

        cached_build(self._dir(cache), build, say)

    def processes(self, ctx: ComponentContext) -> list[ProcessSpec]:
        return [ProcessSpec("go-httpbin", [str(self.binary(ctx.cache)), "-host", "127.0.0.1",
                                           "-port", str(ctx.ports["upstream"])])]

    def health(self, ctx: ComponentContext) -> Check:
        return http_ok(ctx.url("upstream") + "/get")
