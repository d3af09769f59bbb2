"""Keycloak, the OIDC provider: the Quarkus distribution from Maven Central, pre-built for fast starts.

Two things make a new sandbox's Keycloak start in about half the time (see bench/):
- `kc.sh build` at provisioning bakes the build-time options in, so `start --optimized` skips augmentation;
- provisioning also starts Keycloak once to create a template database (the master realm, its schema),
  which every new sandbox copies instead of creating its own. The template's admin password is random
  per cache; a sandbox's copy gets the sandbox's own password and master realm keys before it is first
  opened (keycloak_copy.py), or, in a container, at its first start (`personalise`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import zipfile
from pathlib import Path

import requests

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.host import supervisor
from sandbox.host.credentials import GENERATORS, write_private
from sandbox.host.provision import Say, cached_build, is_done, require_tool, run, sha256_of
from sandbox.host.readiness import Check, http_ok, wait_for
from sandbox.plan import token_url
from sandbox.runtime.component import Component, ComponentContext, Login, ProcessSpec
from sandbox.systems.keycloak.database_copy import make_own_copy
from sandbox.systems.keycloak.java import Jdk, find_jdk
from sandbox.systems.keycloak.realm_keys import IMPORTED, KEY_PROVIDER, rsa_key_config

PURPOSE = f"Keycloak {versions.KEYCLOAK}"
# Build-time options, baked in by `kc.sh build` so `start --optimized` skips the slow augmentation. Client secret
# rotation (a preview feature) keeps a regenerated client's old secret valid until `sandbox rotate` retires it.
BUILD_OPTIONS = ["--db=dev-file", "--health-enabled=true", "--features=client-secret-rotation"]
HEAP = "-Xms128m -Xmx768m"  # the default (70% of RAM) would let one sandbox claim gigabytes
# C1 only: on two cores the C2 compiler's start-up work costs more than it ever pays back in a sandbox.
JVM_FLAGS = "-XX:TieredStopAtLevel=1"
TEMPLATE_DB = Path("template") / "data" / "h2" / "keycloakdb.mv.db"
TEMPLATE_PASSWORD = Path("template") / "admin-password"
ROTATE_MARKER = ".admin-password-from-template"
# Java 25's ahead-of-time class cache, recorded during the template start: about a fifth less start-up work.
# An older or different JVM ignores it with a warning.
AOT_CACHE = "keycloak.aot"


def download_dist(folder: Path, say: Say) -> Path:
    """The pinned Keycloak distribution zip from Maven Central, into `folder`, its SHA-256 checked."""
    mvn = require_tool("mvn", "Maven (apt-get install maven), used to fetch Keycloak from Maven Central")
    say(f"downloading {versions.KEYCLOAK_MAVEN}")
    run([mvn, "-q", "-B", "dependency:copy", f"-Dartifact={versions.KEYCLOAK_MAVEN}", f"-DoutputDirectory={folder}"],
        "downloading Keycloak with Maven")
    (archive,) = folder.glob("*.zip")
    found = sha256_of(archive)
    if found != versions.KEYCLOAK_SHA256:  # Maven checks Central's SHA-1 only; the pin is ours
        raise SandboxError(f"The Keycloak archive Maven fetched ({archive.name}) is not the pinned one: its "
                           f"SHA-256 is {found}, the pin is {versions.KEYCLOAK_SHA256}.",
                           "check your Maven mirror (~/.m2/settings.xml); the pin is in sandbox/versions.py.")
    return archive


class Keycloak(Component):
    name = "keycloak"
    default_ports = {"keycloak": 28081, "keycloak-management": 28091}
    start_timeout = 180.0
    login = Login("admin", "keycloak_admin_password")
    secrets = ("keycloak_admin_password",)

    def compose_settings(self, ctx: ComponentContext) -> dict[str, str]:
        # the issuer every token carries is the host's URL, wherever the token was fetched
        return {"SANDBOX_KEYCLOAK_HOSTNAME": ctx.url("keycloak")}

    def dist(self, cache: Path) -> Path:
        # the build options are baked in: a build made with others is another build
        options = hashlib.sha256(" ".join(BUILD_OPTIONS).encode()).hexdigest()[:8]
        return cache / "keycloak" / f"{versions.KEYCLOAK}-{options}"

    def provisioned(self, cache: Path) -> bool:
        return is_done(self.dist(cache))

    def provision(self, cache: Path, say: Say) -> None:
        def build(tmp: Path) -> None:
            jdk = find_jdk(versions.KEYCLOAK_MIN_JAVA, PURPOSE)
            dl = tmp / "download"
            archive = download_dist(dl, say)
            say("unpacking")
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp / "unpacked")
            (inner,) = (tmp / "unpacked").iterdir()
            for child in inner.iterdir():
                child.rename(tmp / child.name)
            for script in (tmp / "bin").glob("*.sh"):
                script.chmod(0o755)
            shutil.rmtree(dl)
            inner.rmdir()
            (tmp / "unpacked").rmdir()
            say(f"kc.sh build (Java {jdk.major})")
            run([str(tmp / "bin" / "kc.sh"), "build", *BUILD_OPTIONS], "kc.sh build",
                env=self._env(jdk))
            say("creating the template database (one start of Keycloak)")
            self._seed_template(tmp, jdk)

        cached_build(self.dist(cache), build, say)

    def _seed_template(self, dist: Path, jdk: Jdk) -> None:
        template = dist / "template"
        password = GENERATORS["keycloak_admin_password"]()
        write_private(dist / TEMPLATE_PASSWORD, password)
        http, mgmt = _free_ports(2)
        cmd, env = _start_command(dist, jdk, template, http, mgmt, password)
        if jdk.major >= 25:
            env["JAVA_OPTS_APPEND"] += f" -XX:AOTCacheOutput={dist / AOT_CACHE}"
        log = template / "seed.log"
        rec = supervisor.spawn("keycloak-seed", cmd, env, template, log, template)
        try:
            res = wait_for(http_ok(f"http://127.0.0.1:{mgmt}/health/ready"), self.start_timeout,
                           abort=lambda: None if supervisor.alive(rec) else "Keycloak exited")
        finally:
            # the JVM writes the AOT cache as it exits: give it time before any KILL
            supervisor.terminate(supervisor.tree([rec]), grace=180.0)
        if not res.ok or not (dist / TEMPLATE_DB).is_file():
            tail = "\n".join(supervisor.tail(log, 12))
            raise SandboxError(f"Keycloak's template start failed ({res.detail}):\n{tail}\n",
                               "see the lines above; `sandbox provision keycloak` retries.")

    def preflight(self) -> None:
        find_jdk(versions.KEYCLOAK_MIN_JAVA, PURPOSE)

    @staticmethod
    def _env(jdk: Jdk) -> dict[str, str]:
        return {**os.environ, "JAVA_HOME": str(jdk.home), "PATH": f"{jdk.home / 'bin'}:{os.environ['PATH']}"}

    def prepare(self, ctx: ComponentContext, say: Say) -> None:
        db = ctx.data_dir(self.name) / "data" / "h2" / "keycloakdb.mv.db"
        if not db.exists():
            say("copying the template database, with this sandbox's admin password and master realm keys")
            dist = self.dist(ctx.cache)
            make_own_copy(dist / TEMPLATE_DB, db, ctx.secrets["keycloak_admin_password"], dist,
                          find_jdk(versions.KEYCLOAK_MIN_JAVA, PURPOSE))

    def processes(self, ctx: ComponentContext) -> list[ProcessSpec]:
        jdk = find_jdk(versions.KEYCLOAK_MIN_JAVA, PURPOSE)
        data = ctx.data_dir(self.name)
        data.mkdir(parents=True, exist_ok=True)
        cmd, env = _start_command(self.dist(ctx.cache), jdk, data, ctx.ports["keycloak"],
                                  ctx.ports["keycloak-management"], ctx.secrets["keycloak_admin_password"])
        return [ProcessSpec("keycloak", cmd, env)]

    def post_start(self, ctx: ComponentContext, say: Say) -> None:
        """A container's Keycloak started from the template database is made this sandbox's own (the sandbox's image
        carries the template, and a new volume starts as a copy of it): the template's password still logging in
        says so. A local copy was made the sandbox's own before it started (`prepare`); the marker is that of a
        copy made by an earlier version of the sandbox, whose first start was interrupted."""
        marker = ctx.data_dir(self.name) / ROTATE_MARKER
        template = self.dist(ctx.cache) / TEMPLATE_PASSWORD
        url, password = ctx.url("keycloak"), ctx.secrets["keycloak_admin_password"]
        token = None  # a login with the template's password, when this start already made one
        if ctx.runtime == "local":
            if not marker.exists():
                return
        elif not template.is_file() or (token := _template_login(url, template.read_text(), password)) is None:
            return
        say("setting this sandbox's admin password and master realm keys")
        personalise(url, template.read_text(), password, token)
        marker.unlink(missing_ok=True)

    def health(self, ctx: ComponentContext) -> Check:
        return http_ok(ctx.url("keycloak-management") + "/health/ready")

    def extra_urls(self, ctx: ComponentContext) -> dict[str, str]:
        return {"admin console": ctx.url("keycloak") + "/admin/",
                "health": ctx.url("keycloak-management") + "/health/ready"}


def _start_command(dist: Path, jdk: Jdk, data: Path, http_port: int, mgmt_port: int,
                   admin_password: str) -> tuple[list[str], dict[str, str]]:
    url = f"http://127.0.0.1:{http_port}"
    cmd = [
        str(dist / "bin" / "kc.sh"), "start", "--optimized",
        "--cache=local",  # no cluster: no JGroups listeners on other interfaces
        "--http-enabled=true", "--http-host=127.0.0.1",
        f"--http-port={http_port}", f"--http-management-port={mgmt_port}",
    ]
    env = {
        "JAVA_HOME": str(jdk.home),
        "JAVA_OPTS_KC_HEAP": HEAP,
        # The dev-file database goes under `data`, not into the shared, cached distribution.
        "JAVA_OPTS_APPEND": f"-Dkc.db-url-path={data} {JVM_FLAGS}"
                            + (f" -XX:AOTCache={dist / AOT_CACHE}" if (dist / AOT_CACHE).is_file() else ""),
        # A fixed hostname makes `iss` the same whichever Host header fetched the token. Set in the environment
        # (not as an argument) so `sandbox repro container-vs-host-issuer` can empty it: Keycloak treats an empty
        # value as unset, and with strict hostnames off the issuer then follows each request's Host.
        "KC_HOSTNAME": url,
        "KC_HOSTNAME_STRICT": "false",
        "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
        "KC_BOOTSTRAP_ADMIN_PASSWORD": admin_password,
    }
    return cmd, env


def _token(base_url: str, password: str) -> str | None:
    """An admin-cli token of the master admin, or None when the password is refused."""
    r = requests.post(token_url(base_url, "master"), data={
        "grant_type": "password", "client_id": "admin-cli", "username": "admin", "password": password}, timeout=30)
    return r.json()["access_token"] if r.ok else None


def personalise(base_url: str, template_password: str, password: str, template_token: str | None = None) -> None:
    """A Keycloak started from the template database made this sandbox's own (idempotent, so an interrupted start
    finishes it next time): the admin's password replaced, and the master realm's keys (which sign admin tokens)
    replaced too — otherwise every sandbox of one cache would share them, and an admin token of one would be valid
    in another. Two logins in all (`template_token`: the first, made already): a just-started Keycloak answers its
    first calls slowly."""
    tok = template_token or _token(base_url, template_password)
    if tok is not None:
        _set_password(base_url, tok, password)
    elif (tok := _token(base_url, password)) is None:
        raise SandboxError("Keycloak's admin login failed with both the template's and the sandbox's password.",
                           "run `sandbox down`, delete the sandbox's data/keycloak folder, and `sandbox up`.")
    renew_master_keys(base_url, tok, password)


def _template_login(base_url: str, template_password: str, password: str) -> str | None:
    """A token of the template's admin while a container's Keycloak still has it (its volume is a new copy of the
    image's data); None when it has the sandbox's (personalised before, or an image without the template)."""
    if (token := _token(base_url, template_password)) is not None:
        return token
    if _token(base_url, password) is None:
        raise SandboxError("Keycloak's admin login fails with the sandbox's password and with this machine's "
                           "template's: its image was built from another Keycloak template.",
                           "rebuild it (`sandbox images build keycloak`), then `sandbox down --volumes` and "
                           "`sandbox up`.")
    return None


def _set_password(base_url: str, token: str, new: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    users = requests.get(f"{base_url}/admin/realms/master/users", params={"username": "admin", "exact": "true"},
                         headers=headers, timeout=30).json()
    r = requests.put(f"{base_url}/admin/realms/master/users/{users[0]['id']}/reset-password", headers=headers,
                     json={"type": "password", "value": new, "temporary": False}, timeout=30)
    if not r.ok:
        raise SandboxError(f"Setting Keycloak's admin password failed: HTTP {r.status_code} {r.text[:200]}")


RENEWED = "-sandbox"  # suffix of this sandbox's own key providers (idempotent: a second run finds them)


def renew_master_keys(base_url: str, token: str, admin_password: str) -> None:
    """Every sandbox starts from one template database, whose master realm keys would be the same in all of them:
    add a provider of the same kind with a new key for each, then (with a token the new keys signed) remove the
    template's. `token`: a master admin token valid now."""
    admin = f"{base_url}/admin/realms/master"
    h = {"Authorization": f"Bearer {token}"}
    realm_id = requests.get(admin, headers=h, timeout=30).json()["id"]
    old = [c for c in requests.get(f"{admin}/components", params={"type": KEY_PROVIDER}, headers=h, timeout=30).json()
           if not c["name"].endswith(RENEWED)]
    for c in old:
        conf = c.get("config", {})
        keep = {k: conf[k] for k in ("algorithm", "keySize", "secretSize", "keyUse") if k in conf}
        prio = str(int((conf.get("priority") or ["100"])[0]) + 1)
        provider = IMPORTED.get(c["providerId"], c["providerId"])
        key = rsa_key_config("master") if provider != c["providerId"] else {}
        r = requests.post(f"{admin}/components", headers=h, timeout=30, json={
            "name": c["name"] + RENEWED, "providerId": provider, "providerType": KEY_PROVIDER,
            "parentId": realm_id, "config": {**keep, **key, "priority": [prio]}})
        if r.status_code not in (201, 409):
            raise SandboxError(f"Renewing Keycloak's master realm key {c['name']} failed: HTTP {r.status_code} "
                               f"{r.text[:200]}", "`sandbox down`, delete data/keycloak, `sandbox up`.")
    if not old:
        return
    new = _token(base_url, admin_password)  # signed with the new keys: the template's can go now
    h = {"Authorization": f"Bearer {new}"}
    for c in old:
        requests.delete(f"{admin}/components/{c['id']}", headers=h, timeout=30).raise_for_status()


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:  # all bound at once, so they differ
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
