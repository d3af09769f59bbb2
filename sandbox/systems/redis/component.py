"""Redis, the Tyk gateway's store: `redis-server` from PATH, no persistence, loopback only."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.host.credentials import write_private
from sandbox.host.provision import Say, require_tool
from sandbox.host.readiness import Check, redis_ping
from sandbox.runtime.component import Component, ComponentContext, Login, ProcessSpec

HINT = "apt-get install redis-server (Debian/Ubuntu), dnf install redis, or brew install redis"


class Redis(Component):
    name = "redis"
    default_ports = {"redis": 28379}
    start_timeout = 20.0
    login = Login("default", "redis_password")
    inner_port, inner_scheme = 6379, "redis"
    secrets = ("redis_password",)

    def provisioned(self, cache: Path) -> bool:
        return shutil.which("redis-server") is not None

    def provision(self, cache: Path, say: Say) -> None:
        self.preflight()
        say("redis-server found on PATH")

    def preflight(self) -> None:
        exe = require_tool("redis-server", HINT)
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"v=(\d+)\.(\d+)", out)
        if not m or (int(m.group(1)), int(m.group(2))) < versions.REDIS_MIN:
            have = f"{m.group(1)}.{m.group(2)}" if m else "an unknown version"
            raise SandboxError(f"redis-server is {have}; the sandbox needs Redis "
                               f"{'.'.join(map(str, versions.REDIS_MIN))} or newer.", f"upgrade it: {HINT}.")

    def processes(self, ctx: ComponentContext) -> list[ProcessSpec]:
        data = ctx.data_dir(self.name)
        return [ProcessSpec("redis-server", [shutil.which("redis-server") or "redis-server", str(data / "redis.conf")])]

    def prepare(self, ctx: ComponentContext, say: Say) -> None:
        data = ctx.data_dir(self.name)
        # A config file (0600) rather than arguments: a password on the command line is visible in `ps`.
        write_private(data / "redis.conf", "\n".join([
            "bind 127.0.0.1", f"port {ctx.ports['redis']}", f"requirepass {ctx.secrets['redis_password']}",
            'save ""', "appendonly no", f"dir {data}", "protected-mode yes", "daemonize no", 'logfile ""', "",
        ]))

    def health(self, ctx: ComponentContext) -> Check:
        return redis_ping(ctx.ports["redis"], ctx.secrets["redis_password"])

    def url(self, ctx: ComponentContext) -> str:
        return f"redis://127.0.0.1:{ctx.ports['redis']}/0"

    def inner_url(self) -> str:
        return super().inner_url() + "/0"
