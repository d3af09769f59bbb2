"""The downstream service behind the gateway: go-httpbin, whose /anything echoes what it received.

It is built from `main/`, a small program of the sandbox's own around go-httpbin's handlers (pinned in its
go.mod and go.sum) that answers no cross-origin request with credentials: go-httpbin itself grants any origin
credentialed access, and its /cookies echoes every loopback cookie (cookies ignore ports)."""

from __future__ import annotations

import hashlib
import os
import shutil
from functools import cache
from pathlib import Path

from sandbox import versions
from sandbox.host.go_source import GO_HINT, GO_PINNED
from sandbox.host.provision import Say, cached_build, is_done, require_tool, run
from sandbox.host.readiness import Check, http_ok
from sandbox.runtime.component import Component, ComponentContext, ProcessSpec

PROGRAM = Path(__file__).with_name("main")


@cache  # the package's files do not change while it runs; every status asks where the binary is
def _program_digest() -> str:
    h = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        h.update((PROGRAM / name).read_bytes())
    return h.hexdigest()[:12]


class Upstream(Component):
    name = "upstream"
    default_ports = {"upstream": 28083}
    start_timeout = 20.0

    def _dir(self, cache: Path) -> Path:
        return cache / "upstream" / f"{versions.UPSTREAM}-{_program_digest()}"  # a changed program is built anew

    def binary(self, cache: Path) -> Path:
        return self._dir(cache) / "bin" / "go-httpbin"

    def provisioned(self, cache: Path) -> bool:
        return is_done(self._dir(cache))

    def provision(self, cache: Path, say: Say) -> None:
        def build(tmp: Path) -> None:
            go = require_tool("go", GO_HINT)
            say(f"go build of the sandbox's upstream ({versions.UPSTREAM_MODULE} {versions.UPSTREAM})")
            src = tmp / "src"
            shutil.copytree(PROGRAM, src)  # the installed package may be read-only; Go writes nothing there anyway
            env = {**os.environ, "CGO_ENABLED": "0", **GO_PINNED}
            run([go, "build", "-trimpath", "-o", str(tmp / "bin" / "go-httpbin"), "."], "building go-httpbin",
                cwd=src, env=env)
            shutil.rmtree(src)

        cached_build(self._dir(cache), build, say)

    def processes(self, ctx: ComponentContext) -> list[ProcessSpec]:
        return [ProcessSpec("go-httpbin", [str(self.binary(ctx.cache)), "-host", "127.0.0.1",
                                           "-port", str(ctx.ports["upstream"])])]

    def health(self, ctx: ComponentContext) -> Check:
        return http_ok(ctx.url("upstream") + "/get")
