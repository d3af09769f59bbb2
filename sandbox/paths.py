"""Where a sandbox keeps its state and where provisioned components are cached."""

from __future__ import annotations

import os
from pathlib import Path


def sandbox_home() -> Path:
    """Per-sandbox state: secrets, pids, logs, component data. One directory is one sandbox."""
    env = os.environ.get("SANDBOX_HOME")
    if env:
        return Path(env).expanduser().resolve()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "airflow-tyk-sandbox" / "default"


def cache_dir() -> Path:
    """Per-user cache of provisioned components, keyed by version, shared by every sandbox."""
    env = os.environ.get("SANDBOX_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "airflow-tyk-sandbox"


def airflow_secrets_file(home: Path) -> Path:
    """Variables served to Airflow by its LocalFilesystemBackend: secrets that must stay out of the metastore."""
    return home / "secrets" / "airflow-variables.json"


def client_secrets_file(home: Path) -> Path:
    """Every service account's client secret, for the CLI (`sandbox token`); 0600."""
    return home / "secrets" / "clients.json"
