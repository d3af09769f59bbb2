"""Per-sandbox credentials: generated once, stored 0600, never printed unless asked.

(Named so as not to shadow the standard library's `secrets`, which it uses.)
"""

from __future__ import annotations

import base64
import json
import os
import secrets as _random
import stat
import tempfile
from pathlib import Path

from sandbox.errors import SandboxError

# name -> generator. Adding a name here is enough: an existing sandbox gains it on its next start.
GENERATORS = {
    # Airflow's client in Keycloak (its auth manager's) and the sandbox's own caller: set by apply, so Airflow
    # starts knowing its secret and the CLI needs no file to call Airflow
    "airflow_client_secret": lambda: _random.token_urlsafe(32),
    "airflow_caller_secret": lambda: _random.token_urlsafe(32),
    "airflow_fernet_key": lambda: base64.urlsafe_b64encode(_random.token_bytes(32)).decode(),
    "airflow_jwt_secret": lambda: _random.token_urlsafe(32),
    "airflow_api_secret_key": lambda: _random.token_urlsafe(32),
    "keycloak_admin_password": lambda: _random.token_urlsafe(18),
    "tyk_secret": lambda: _random.token_urlsafe(24),
    "redis_password": lambda: _random.token_urlsafe(24),
    # OpenBao's static seal key: 32 random bytes, hex (the vault unseals itself with it at every start)
    "openbao_unseal_key": lambda: _random.token_bytes(32).hex(),
}


# what a sandbox of an earlier version kept and nothing reads any more: forgotten at its next start
OBSOLETE = ("airflow_admin_password",)  # the simple auth manager's; Airflow signs in through Keycloak now


def new_password() -> str:
    return _random.token_urlsafe(18)


def mask(value: str) -> str:
    """Nothing of the secret: even its first characters narrow a guess (and tell two sandboxes' secrets apart)."""
    return "*" * 8 if value else ""


def load_or_create(path: Path) -> dict[str, str]:
    """The sandbox's secrets from `path` (SandboxPaths.secrets), generating any that are missing."""
    current: dict[str, str] = {}
    check_owned(path)
    if path.exists():
        try:
            current = json.loads(path.read_text())
            if not isinstance(current, dict):
                raise ValueError("not an object")
        except (ValueError, OSError) as e:
            raise SandboxError(
                f"The secrets file {path} is unreadable ({e}).",
                "run `sandbox down --force` to stop this sandbox, then delete the file; new secrets are "
                "generated on the next `sandbox up`.",
            ) from e
    missing = {k: gen() for k, gen in GENERATORS.items() if k not in current}
    if missing or any(k in current for k in OBSOLETE):
        current = {k: v for k, v in {**current, **missing}.items() if k not in OBSOLETE}
        write_private(path, json.dumps(current, indent=2))
    return current


def write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600 from the first byte (no window where others can read it). The temporary
    file is a new one of a random name, created exclusively: a file or link planted beside it is never followed."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL, 0600
    tmp = Path(name)
    try:
        if os.geteuid() == 0:  # a folder handed to a container's user (docker.hand_over): its files stay readable there
            folder = path.parent.stat()
            if folder.st_uid != 0:
                os.fchown(fd, folder.st_uid, folder.st_gid)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:  # a full disk: the old file stays whole, and no half-written copy is left beside it
        tmp.unlink(missing_ok=True)
        raise


def check_owned(path: Path) -> None:
    """A secrets file someone else made (or can write) is not ours to trust."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o002:
        raise SandboxError(f"The secrets file {path} is not a plain file of yours that others cannot write.",
                           "if you did not plant it, remove it (and look at who can write this home); "
                           "new secrets are generated on the next `sandbox up`.")


def read(path: Path) -> dict[str, str]:
    """The sandbox's secrets as they are, without creating any; {} when there are none (yet) or they are unreadable."""
    check_owned(path)
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        return {}
