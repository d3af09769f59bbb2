"""The compose file as data: read compose/docker-compose.yml, fill in its variables, and hand back services.

The docker runtime creates containers from these through the `docker` SDK, so `sandbox up --runtime docker`
and a hand-run `docker compose up` start the same stack from one file. Only what that file uses is read:
image, entrypoint, command, environment, user, ports, volumes, secrets, healthcheck, depends_on (YAML anchors
and `<<` merges are resolved by the YAML loader). A secret is what Compose makes of a file secret outside a
swarm: its file bind-mounted read-only at /run/secrets/<name>.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sandbox.errors import SandboxError

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Port:
    host_ip: str
    host_port: int
    container_port: int


@dataclass(frozen=True)
class Volume:
    source: str  # a named volume, or an absolute host path
    target: str
    read_only: bool
    named: bool


@dataclass
class Service:
    name: str
    image: str
    command: list[str] | None
    entrypoint: list[str] | None
    environment: dict[str, str]
    user: str | None
    ports: list[Port]
    volumes: list[Volume]
    healthcheck: dict | None
    depends_on: dict[str, str] = field(default_factory=dict)  # service -> condition

    @property
    def one_shot(self) -> bool:
        """Runs to completion before the services that depend on it start (`airflow-init`)."""
        return self.name.endswith("-init")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable syntax: $VAR, ${VAR}, ${VAR:-default} (unset or empty), ${VAR-default} (unset), $$,
    and ${VAR:?why} / ${VAR?why}, which stop with `why` when the variable is unset (or empty)."""

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        value = env.get(name)
        if (m.group(2) == ":?" and not value) or (m.group(2) == "?" and value is None):
            raise SandboxError(f"The compose file needs {name}: {m.group(3)}.",
                               "the sandbox sets it; by hand, see the compose recipe in docs/runtimes.md.")
        if m.group(2) == ":-" and not value:
            return m.group(3)
        if m.group(2) == "-" and value is None:
            return m.group(3)
        return value or ""

    return _VAR.sub(sub, text)


def _fill(value, env: Mapping[str, str]):
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [_fill(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, env) for k, v in value.items()}
    return value


def variables(components, ctx, host_ports: set[str]) -> dict[str, str]:
    """The compose file's variables every runtime that reads it sets, from what each component says of itself:
    ports (`host_ports`: served from the host, not from a container), host folders, settings."""
    out = {port_variable(k): str(v) for k, v in ctx.ports.items() if k not in host_ports}
    for comp in components:
        out.update({k: str(v) for k, v in comp.host_folders(ctx).items()})
        out.update(comp.compose_settings(ctx))
    return out


def component_of(service: str, components) -> str | None:
    """Which component a service belongs to: its name, or the name and a dash (`airflow-scheduler`)."""
    return next((c for c in components if service == c or service.startswith(c + "-")), None)


def project_name(home: Path) -> str:
    """One Compose project per sandbox home (a cluster namespace too): readable, a valid DNS label, and distinct for
    two homes of the same name."""
    slug = re.sub(r"[^a-z0-9]+", "-", home.name.lower()).strip("-") or "sandbox"
    return f"sandbox-{slug[:20]}-{hashlib.sha256(str(home).encode()).hexdigest()[:6]}"


def port_variable(port_name: str) -> str:
    return "SANDBOX_" + port_name.upper().replace("-", "_") + "_PORT"


def image_variable(component: str) -> str:
    return f"SANDBOX_IMAGE_{component.upper()}"


def uid_variable(component: str) -> str:
    """The uid its containers run as, for a component whose image user must own its host folders."""
    return f"SANDBOX_{component.upper()}_UID"


def raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def load(path: Path, env: Mapping[str, str]) -> dict[str, Service]:
    doc = _fill(raw(path), env)
    secrets = {name: body["file"] for name, body in (doc.get("secrets") or {}).items()}
    return {name: _service(name, body, path.parent, secrets) for name, body in doc["services"].items()}


def _words(value) -> list[str] | None:
    return [str(c) for c in value] if isinstance(value, list) else (value.split() if value else None)


def _service(name: str, body: dict, base: Path, secrets: Mapping[str, str]) -> Service:
    deps = body.get("depends_on") or {}
    return Service(
        name=name, image=body["image"], command=_words(body.get("command")), entrypoint=_words(body.get("entrypoint")),
        environment={str(k): "" if v is None else str(v) for k, v in (body.get("environment") or {}).items()},
        user=body.get("user"),
        ports=[parse_port(p) for p in body.get("ports") or []],
        volumes=[parse_volume(v, base) for v in body.get("volumes") or []]
        + [Volume(secrets[s], f"/run/secrets/{s}", True, False) for s in body.get("secrets") or []],
        healthcheck=body.get("healthcheck"),
        depends_on={d: "service_started" for d in deps} if isinstance(deps, list)
        else {d: (c or {}).get("condition", "service_started") for d, c in deps.items()},
    )


def parse_port(text: str) -> Port:
    parts = str(text).split(":")
    if len(parts) != 3:
        raise ValueError(f"port {text!r}: the sandbox publishes as HOST_IP:HOST_PORT:CONTAINER_PORT")
    return Port(parts[0], int(parts[1]), int(parts[2].split("/")[0]))


def parse_volume(text: str, base: Path) -> Volume:
    parts = str(text).split(":")
    source, target = parts[0], parts[1]
    read_only = len(parts) > 2 and "ro" in parts[2].split(",")
    named = not source.startswith((".", "/", "~"))
    if source.startswith("."):
        source = str((base / source).resolve())
    elif source.startswith("~"):
        source = str(Path(source).expanduser())
    return Volume(source, target, read_only, named)


def duration_ns(text: str | None, default: float) -> int:
    """A compose duration ('5s', '1m30s', '250ms') in nanoseconds, as the engine API wants."""
    if not text:
        return int(default * 1e9)
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text)):
        total += float(amount) * {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return int(total * 1e9)
