"""A team's own `[secrets] backend` in Airflow's processes, and what HashiCorp's VaultBackend there reads for one
connection, checked from the host (doctor's evidence; `judge` says what it means, of plain data).

The sandbox's backend asks the team's backend first (Airflow would, were `[workers] secrets_backend` unset), and
Airflow's chain swallows its errors (logged at DEBUG): a refused token or a KV version mismatch shows only as a
connection taken from somewhere else, or not found at all. Doctor reads the setting from the processes' environment
(`AIRFLOW__SECRETS__BACKEND`, the way Airflow's Docker docs set it) and repeats the provider's read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

VAULT_BACKEND = "airflow.providers.hashicorp.secrets.vault.VaultBackend"
BACKEND_VAR = "AIRFLOW__SECRETS__BACKEND"
KWARGS_VAR = "AIRFLOW__SECRETS__BACKEND_KWARGS"
V2_ONLY = "Invalid path for a versioned K/V"  # the vault's warning for a KV v1 read of a KV v2 mount


@dataclass(frozen=True)
class TeamBackend:
    """The `[secrets] backend` a team set, in how many of Airflow's processes, with its arguments (never shown:
    they may hold a token)."""

    cls: str
    processes: int
    kwargs: dict


@dataclass(frozen=True)
class VaultRead:
    """One read the way VaultBackend makes it: where, and the vault's answer."""

    path: str  # e.g. airflow/data/connections/<id>
    kv_version: int
    status: int | None  # None: the vault did not answer
    words: str  # the vault's errors or warnings, or why no read was made
    found: dict | None = None
    checked: bool = True  # False: no read could be made from the host (`words` says why)


def configured(environs: dict[str, dict[str, str]]) -> TeamBackend | None:
    """The team's `[secrets] backend` as Airflow's processes have it in their environment (the first found)."""
    having = [env for env in environs.values() if env.get(BACKEND_VAR)]
    if not having:
        return None
    env = having[0]
    try:
        kwargs = json.loads(env.get(KWARGS_VAR) or "{}")
    except ValueError:
        kwargs = {}
    return TeamBackend(env[BACKEND_VAR], len(having), kwargs if isinstance(kwargs, dict) else {})


def read_path(kwargs: dict, conn_id: str) -> tuple[str, int] | None:
    """The path VaultBackend reads a connection from (its defaults: mount `secret`, `connections`, KV version 2), or
    None when it reads no connections."""
    base = kwargs.get("connections_path", "connections")
    if isinstance(base, list):
        base = base[0] if base else None
    if base is None:
        return None
    mount = kwargs.get("mount_point", "secret")
    version = int(kwargs.get("kv_engine_version", 2))
    parts = [mount, "data"] if version == 2 else [mount]
    return "/".join(p.strip("/") for p in [*parts, base, conn_id] if p), version


def token_of(kwargs: dict) -> str | None:
    if kwargs.get("token"):
        return str(kwargs["token"])
    try:  # a path inside a container is not the host's: then no read is made
        return Path(kwargs["token_path"]).read_text().strip() if kwargs.get("token_path") else None
    except OSError:
        return None


def read(team: TeamBackend, conn_id: str, to_host: Callable[[str], tuple[str, dict]]) -> VaultRead | None:
    """VaultBackend's read of `conn_id`, from the host (`to_host`: a URL the components use -> the host's, and the
    Host header); None when the backend is not VaultBackend, reads no connections, or logs in otherwise."""
    if team.cls != VAULT_BACKEND or team.kwargs.get("auth_type", "token") != "token":
        return None
    where = read_path(team.kwargs, conn_id)
    if where is None:
        return None
    path, version = where
    token = token_of(team.kwargs)
    if not token or not team.kwargs.get("url"):
        return VaultRead(path, version, None, "its token or URL is not readable from the host", checked=False)
    url, host = to_host(str(team.kwargs["url"]).rstrip("/"))
    try:
        r = requests.get(f"{url}/v1/{path}", headers={**host, "X-Vault-Token": token}, timeout=5)
    except requests.RequestException as e:
        return VaultRead(path, version, None, f"unreachable: {type(e).__name__}")
    try:
        body = r.json()
    except ValueError:
        body = {}
    words = "; ".join(str(w).strip() for w in (body.get("errors") or body.get("warnings") or [])) or r.reason
    data = (body.get("data") or {}) if r.ok else None
    if data is not None and version == 2:
        data = data.get("data")
    return VaultRead(path, version, r.status_code, words, data)


def judge(conn_id: str, team: TeamBackend | None, got: VaultRead | None,
          live_host: str | None) -> tuple[str, str] | None:
    """(the connection hop's detail, the verdict with its fix) when the team's backend does not give `conn_id` to
    the tasks; `live_host`: where the rest of Airflow's chain (the metastore) would send them instead."""
    if team is None or got is None or got.status in (200, 404) and V2_ONLY not in got.words or not got.checked:
        return None  # found, not the team's to serve (the metastore's copy is what the spec says), or not read
    setting = f"[secrets] backend {team.cls.rsplit('.', 1)[1]} ({team.processes} Airflow process(es))"
    if got.status == 404:
        return (f"{setting} reads {got.path}: KV version 1 on a KV version 2 mount (the vault answers 404)",
                f"The team's {setting} reads KV version 1 paths (kv_engine_version=1) on a KV version 2 mount: the "
                f"vault answers 404 for {got.path}, and the provider returns nothing for {conn_id}, without an error. "
                f"Fix: kv_engine_version 2 in [secrets] backend_kwargs, then restart Airflow's workers.")
    instead = (f"resolves {conn_id} from the metastore instead ({live_host})" if live_host else
               f"finds {conn_id} nowhere else (`conn_id isn't defined`)")
    return (f"{setting} is refused a read of {got.path}: {got.status or ''} {got.words}".replace("  ", " "),
            f"The vault refuses the team's {setting} ({got.status or ''} {got.words}); Airflow logs that at DEBUG "
            f"only and {instead}. Fix: renew or replace the backend's token (backend_kwargs), restart Airflow's "
            "workers, and delete copies left in the metastore so that a vault failure fails loudly."
            .replace("( ", "("))

