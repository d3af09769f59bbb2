"""Where a sandbox keeps its files, named in one place, and where provisioned components are cached.

A `SandboxPaths` is made once at the edge (the CLI's `--home`, the pytest plugin's option) and passed down;
nothing below reads or writes `SANDBOX_HOME` again.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sandbox.errors import SandboxError


def default_home() -> Path:
    """Per-sandbox state: secrets, pids, logs, component data. One directory is one sandbox."""
    env = os.environ.get("SANDBOX_HOME")
    if env:
        return Path(env).expanduser().resolve()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "airflow-tyk-sandbox" / "default"


def default_cache() -> Path:
    """Per-user cache of provisioned components, keyed by version, shared by every sandbox."""
    env = os.environ.get("SANDBOX_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "airflow-tyk-sandbox"


def check_home(home: Path) -> None:
    """A home is a folder of the sandbox's own: `down` ends every process it finds working in the home's
    component folders, and the home holds its secrets. The root, your home folder or one above it, a shared
    temporary folder (sticky, such as /tmp), and a folder another user owns or everyone can write are refused."""
    user_home = Path.home().resolve()
    try:
        sticky = bool(home.stat().st_mode & stat.S_ISVTX)
    except OSError:
        sticky = False
    if user_home.is_relative_to(home) or sticky:
        what = "a shared temporary folder" if sticky else "the root" if home == Path("/") else "your home folder" \
            if home == user_home else "a folder above your home"
        raise SandboxError(f"{home} is {what}, not a folder a sandbox can own.",
                           "give the sandbox a folder of its own: --home ~/sandboxes/dev (or SANDBOX_HOME).",
                           exit_code=2)
    try:
        st = home.lstat()
    except FileNotFoundError:
        return
    # another owner, or anyone at all able to write: someone else could have planted its files (group write, as
    # a umask of 002 leaves it, is taken off by `up` like every other group permission in the home)
    if st.st_uid != os.getuid() or st.st_mode & 0o002:
        raise SandboxError(f"{home} is not a folder of yours that only you can write "
                           f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o}).",
                           "give the sandbox a folder of its own: --home ~/sandboxes/dev (or SANDBOX_HOME).",
                           exit_code=2)


@dataclass(frozen=True)
class SandboxPaths:
    home: Path
    cache: Path

    @classmethod
    def resolve(cls, home: Path | None = None, cache: Path | None = None) -> SandboxPaths:
        """From explicit values, else SANDBOX_HOME / SANDBOX_CACHE, else the XDG defaults."""
        paths = cls(home.expanduser().resolve() if home else default_home(),
                    cache.expanduser().resolve() if cache else default_cache())
        check_home(paths.home)
        return paths

    # ---- the runtime's own -------------------------------------------------------------------------
    @property
    def state(self) -> Path:
        """Which runtime, ports and processes (state.json)."""
        return self.home / "state.json"

    @property
    def spec_record(self) -> Path:
        """The spec this sandbox runs, as `up --spec` named it (every later command uses it)."""
        return self.home / "spec.json"

    @property
    def secrets(self) -> Path:
        """The sandbox's generated secrets: admin passwords, keys (0600)."""
        return self.home / "secrets.json"

    @property
    def lock(self) -> Path:
        """Held while `up` or `down` changes the sandbox."""
        return self.home / ".lock"

    def log(self, component: str) -> Path:
        return self.home / "logs" / f"{component}.log"

    def data(self, component: str) -> Path:
        """A component's own data: config files, databases."""
        return self.home / "data" / component

    # ---- what apply writes and the runtime's Airflow reads ------------------------------------------
    @property
    def dags(self) -> Path:
        """Airflow's DAG folder; apply installs the smoke and repro DAGs here."""
        return self.home / "dags"

    @property
    def airflow_lib(self) -> Path:
        """On PYTHONPATH of every Airflow process: the token helper, the secrets backend, the routes file."""
        return self.home / "airflow-lib"

    @property
    def airflow_vault_token(self) -> Path:
        """The vault token of Airflow's processes, limited by its vault policy to Airflow's paths (0600). A folder
        of its own: a container's Airflow mounts it, and sees nothing else of the home."""
        return self.home / "airflow-secrets" / "vault-token"

    def vault_keys(self, runtime: str) -> Path:
        """What the one-time initialisation of the runtime's vault handed back: the root token (the sandbox's own
        vault login) and the recovery key (0600). One per runtime: the local runtime's vault (storage in the home)
        and the docker runtime's (a volume) are two vaults. The key that unseals them is a sandbox secret."""
        return self.home / "secrets" / f"openbao-{runtime}.json"

    @property
    def container_secrets(self) -> Path:
        """The docker runtime's secrets as files, one per secret, each mounted into the containers that need it."""
        return self.home / "container-secrets"

    @property
    def airflow_home_dir(self) -> Path:
        """HOME of Airflow's processes: the sandbox's own, so a developer's ~/.netrc or ~/.aws cannot change what
        its tasks do (and `sandbox repro netrc-override` can put one there on purpose)."""
        return self.home / "airflow-home"

    @property
    def client_secrets(self) -> Path:
        """Every service account's client secret, for the CLI (`sandbox token`, `sandbox call`); 0600."""
        return self.home / "secrets" / "clients.json"

    @property
    def airflow_token(self) -> Path:
        """The Airflow token the CLI signed in with, kept while its Keycloak token lasts; 0600."""
        return self.home / "secrets" / "airflow-token.json"

    @property
    def people(self) -> Path:
        """The passwords of the spec's people (who sign in to Airflow through Keycloak), made by apply; 0600."""
        return self.home / "secrets" / "people.json"

    @property
    def smoke_result(self) -> Path:
        """The last `sandbox smoke` report (also read by the test handle)."""
        return self.home / "smoke.json"

    @property
    def smoke_verdicts(self) -> Path:
        """Each connection's latest smoke verdict, whichever smoke (all, one environment, one service) gave it."""
        return self.home / "smoke-verdicts.json"

    @property
    def ui(self) -> Path:
        """The sandbox's page server: its pid and port (its token is in the secrets folder)."""
        return self.home / "ui.json"

    @property
    def ui_token(self) -> Path:
        return self.home / "secrets" / "ui-token"

    # ---- rotation --------------------------------------------------------------------------------------------
    @property
    def rotation_lock(self) -> Path:
        """Held by the one `sandbox rotate` that runs."""
        return self.home / ".rotation.lock"

    @property
    def rotation_underway(self) -> Path:
        """What a rotation is changing: written before its first change, removed after its last (no secret)."""
        return self.home / "rotation-underway.json"

    # ---- test sessions holding the sandbox ----------------------------------------------------------
    @property
    def holders_lock(self) -> Path:
        return self.home / ".holders.lock"

    @property
    def holders(self) -> Path:
        """Which processes hold the sandbox, and whether one of them started it."""
        return self.home / ".holders.json"

    @property
    def left_out(self) -> Path:
        """What the last holder's start left out, and why (read by the test report)."""
        return self.home / ".left-out.json"


def compose_dir() -> Path:
    """The project's `compose/` folder: the `sandbox.compose` package data, or where it lies in a checkout."""
    try:
        return Path(str(resources.files("sandbox.compose")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "compose"
