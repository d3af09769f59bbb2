"""A copy of Keycloak's template database made a sandbox's own before its Keycloak first opens it.

Every sandbox of one cache starts from the same template database (keycloak.py): left as it is, all of them would
share the admin's password and the master realm's keys, and an admin token of one would be valid in another. The
copy is rewritten before Keycloak starts, with H2's own RunScript tool from the H2 jar Keycloak ships: the admin's
password credential (argon2id with the parameters the template's carries, as Keycloak itself stores one) and each
master realm key (RSA keys and certificates made with OpenSSL, HMAC and AES secrets random). Offline it costs one
small JVM start (about 0.2 s with its own AOT cache) instead of a second of admin calls to a Keycloak that has just
started, on the critical path of every new sandbox — and the copy never listens with the template's password.

A container's Keycloak gets its copy from Docker (a new volume starts as the image's data): that one is made the
sandbox's own online, at its first start (keycloak.personalise).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import uuid
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.host.credentials import write_private
from sandbox.systems.keycloak.java import Jdk
from sandbox.systems.keycloak.realm_keys import KEY_PROVIDER, rsa_key_config

DB_NAME = "keycloakdb"  # Keycloak's dev-file database: <data>/h2/keycloakdb.mv.db
# The tool's JVM: C1 only, the serial collector, no perf file — and, on Java 25, an AOT cache recorded at its first run
# (the flags must be the same when the cache is used).
TOOL_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Xmx128m"]
TOOL_AOT = "h2-tool.aot"
# The sizes of the secrets Keycloak 26.7 generates for the master realm (the template's: 128 and 32 bytes)
HMAC_BYTES, AES_BYTES = 128, 32


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _argon2(password: str, params: dict) -> dict:
    """Keycloak's argon2 password credential for `password`: its secret data, with a new salt, hashed with the
    parameters of the credential it replaces (so Keycloak sees nothing to re-hash at the first login)."""
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    extra = params["additionalParameters"]
    salt = secrets.token_bytes(16)
    digest = Argon2id(salt=salt, length=int(extra["hashLength"][0]), iterations=int(params["hashIterations"]),
                      lanes=int(extra["parallelism"][0]), memory_cost=int(extra["memory"][0])).derive(password.encode())
    return {"value": base64.b64encode(digest).decode(), "salt": base64.b64encode(salt).decode(),
            "additionalParameters": {}}


# Keycloak's default argon2 parameters (26.x): the template's admin credential carries exactly these.
ARGON2 = {"hashIterations": 5, "algorithm": "argon2",
          "additionalParameters": {"hashLength": ["32"], "memory": ["7168"], "type": ["id"], "version": ["1.3"],
                                   "parallelism": ["1"]}}


def own_copy_sql(password: str, realm: str = "master", username: str = "admin") -> str:
    """The script that makes a template copy this sandbox's own: the admin's password, then every key of the realm.
    Each UPDATE is preceded by a check that it finds at least one row to change (a division by zero stops the
    script), so a template of another shape fails loudly instead of being left half the template's."""
    realm_id = f"(SELECT ID FROM REALM WHERE NAME = {_lit(realm)})"
    user = f"(SELECT ID FROM USER_ENTITY WHERE USERNAME = {_lit(username)} AND REALM_ID = {realm_id})"
    cred = f"FROM CREDENTIAL WHERE TYPE = 'password' AND USER_ID = {user}"
    lines = [
        f"SELECT 1 / (SELECT COUNT(*) {cred} AND CREDENTIAL_DATA = {_lit(json.dumps(ARGON2, separators=(',', ':')))});",
        f"UPDATE CREDENTIAL SET SECRET_DATA = {_lit(json.dumps(_argon2(password, ARGON2), separators=(',', ':')))} "
        f"WHERE TYPE = 'password' AND USER_ID = {user};",
    ]

    def provider(kind: str, values: dict[str, str]) -> None:
        component = (f"(SELECT ID FROM COMPONENT WHERE PROVIDER_ID = {_lit(kind)} AND PROVIDER_TYPE = "
                     f"{_lit(KEY_PROVIDER)} AND PARENT_ID = {realm_id})")
        for name, value in values.items():
            where = f"COMPONENT_ID = {component} AND NAME = {_lit(name)}"
            lines.append(f"SELECT 1 / (SELECT COUNT(*) FROM COMPONENT_CONFIG WHERE {where});")
            lines.append(f"UPDATE COMPONENT_CONFIG SET VALUE = {_lit(value)} WHERE {where};")

    for kind in ("rsa-generated", "rsa-enc-generated"):
        provider(kind, {k: v[0] for k, v in rsa_key_config(realm).items()})
    provider("hmac-generated", {"secret": _b64url(secrets.token_bytes(HMAC_BYTES)), "kid": str(uuid.uuid4())})
    provider("aes-generated", {"secret": _b64url(secrets.token_bytes(AES_BYTES)), "kid": str(uuid.uuid4())})
    return "\n".join(lines) + "\n"


def _cause(output: str) -> str:
    """H2's complaint without the statement it quotes (which may hold a password hash or a private key)."""
    first = next((line for line in output.splitlines() if "Exception" in line), output.strip()[:300])
    return first.split("; SQL statement:")[0].split("Exception: ", 1)[-1].strip() + "."


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def make_own_copy(template_db: Path, db: Path, password: str, dist: Path, jdk: Jdk) -> None:
    """`db` (…/h2/keycloakdb.mv.db) as a copy of `template_db` with this sandbox's password and keys. Written beside
    and renamed into place, so an interrupted start leaves no copy still the template's."""
    work = db.parent.with_name(db.parent.name + ".new")
    aot = dist / TOOL_AOT
    recording = Path(f"{aot}.{os.getpid()}")  # written aside, renamed: two sandboxes may record at once
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        shutil.copyfile(template_db, work / db.name)
        script = work / "own.sql"  # a password hash and private keys: 0600, and gone when done
        write_private(script, own_copy_sql(password))
        (h2_jar,) = (dist / "lib" / "lib" / "main").glob("com.h2database.h2-*.jar")
        flags = list(TOOL_FLAGS)
        if jdk.major >= 25:  # the AOT cache: recorded by the first run, used by every later one
            flags.append(f"-XX:AOTCache={aot}" if aot.is_file() else f"-XX:AOTCacheOutput={recording}")
        r = subprocess.run([str(jdk.java), *flags, "-cp", str(h2_jar), "org.h2.tools.RunScript",
                            "-url", f"jdbc:h2:file:{work / DB_NAME};NON_KEYWORDS=VALUE", "-user", "", "-password", "",
                            "-script", str(script)], capture_output=True, text=True)
        if r.returncode != 0:
            raise SandboxError("Making the copy of Keycloak's template database this sandbox's own failed: "
                               f"{_cause(r.stderr or r.stdout)}",
                               f"delete {dist} (the cached Keycloak), run `sandbox provision keycloak`, then "
                               "`sandbox up`.")
        if recording.is_file():
            os.replace(recording, aot)
        db.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / db.name, db)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        recording.unlink(missing_ok=True)
