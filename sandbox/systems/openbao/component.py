"""OpenBao, the vault the client secrets live in: built from the pinned release's source, a real server.

Not dev mode: storage on disk under the sandbox's home, the listener on loopback, an audit device on. It unseals
itself at every start with a static key (OpenBao's `seal "static"`), a sandbox secret kept 0600 in the home, so
`down` + `up` brings it back unsealed with what it held. The first `up` initialises it once; the root token it
hands back is the sandbox's own login (0600, `paths.vault_keys(runtime)`: each runtime's vault is its own). Every
`up` then makes sure of the two KV v2 mounts, Airflow's read-only policy and Airflow's own token (renewed, or made
anew when it expired, was revoked or its file is gone). The audit device is declared in its configuration.

Where the binary comes from, in the order a user should try:
1. SANDBOX_OPENBAO_HOME: a folder holding an OpenBao `bao` binary of this version.
2. SANDBOX_OPENBAO_SOURCE: the release's source tarball, a local path or an https URL (default: GitHub's tag
   tarball), checked against its pinned SHA-256 and built with Go. SANDBOX_OPENBAO_WRAPPERS: the tarball of
   go-kms-wrapping's wrappers/ folder, for a Go module proxy that refuses OpenBao's six KMS wrapper modules.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from pathlib import Path

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.host import go_source
from sandbox.host.credentials import write_private
from sandbox.host.go_source import GO_HINT, OPENBAO, BuiltOrInstalled
from sandbox.host.provision import Say, require_tool, run, sha256_of
from sandbox.host.readiness import Check, Result, wait_for
from sandbox.runtime.component import Component, ComponentContext, Login, ProcessSpec
from sandbox.systems.openbao.client import (
    AIRFLOW_POLICY,
    AIRFLOW_POLICY_TEXT,
    AIRFLOW_TOKEN_PERIOD,
    AUDIT_DEVICE,
    MOUNT,
    SANDBOX_MOUNT,
    Vault,
    VaultError,
)

WRAPPERS = ("alicloudkms", "awskms", "azurekeyvault", "gcpckms", "ocikms", "pkcs11")
KEY_ID = "sandbox-1"  # names the static seal key; a new key would get a new id
INNER_PORT = 8200


def server_config(listen: str, storage: str, key_file: str, api_addr: str) -> dict:
    """The server's configuration, whichever runtime runs it (a test holds compose/openbao/openbao.json to it)."""
    return {
        "storage": {"file": {"path": storage}},
        "listener": [{"tcp": {"address": listen, "tls_disable": True}}],
        "seal": {"static": {"current_key_id": KEY_ID, "current_key": f"file://{key_file}"}},
        # declared, not enabled through the API (OpenBao refuses that by default): to the server's output, which
        # the runtime keeps as the vault's log on either runtime (`sandbox audit --secrets` reads it)
        "audit": [{"file": {AUDIT_DEVICE: {"description": "the sandbox's audit trail",
                                           "options": {"file_path": "stdout"}}}}],
        "api_addr": api_addr,
        "disable_mlock": True,  # no IPC_LOCK needed; the sandbox's storage is a folder of its home anyway
        "ui": False,
        "log_level": "info",
    }


def health_of(url: str) -> Check:
    """Healthy when it answers unsealed; a vault not initialised yet is startable (its first `up` initialises
    it), a sealed one is not."""

    def check() -> Result:
        try:
            code, body = Vault(url, timeout=2.0).health()
        except VaultError as e:
            return Result(False, e.message)
        if code == 200:
            return Result(True, "unsealed")
        if code == 501:
            return Result(True, "not initialised yet")
        if code == 503 or body.get("sealed"):
            return Result(False, "OpenBao is sealed")
        return Result(False, f"OpenBao's sys/health answered {code}")

    return check


RESET = ("reset the vault's storage — local runtime: `sandbox down`, then delete <home>/data/openbao/storage; "
         "docker: `sandbox down --volumes` — then `sandbox up` (apply writes the client secrets into it again)")


def bootstrap(url: str, keys_file: Path, airflow_token_file: Path, say: Say) -> None:
    """Initialise once, then (each `up`) Airflow's mounts, policy and token. Idempotent."""
    v = Vault(url)
    if not v.initialised():
        say("initialising the vault (once; its root token is kept 0600 in the home)")
        out = v.initialise()
        if keys_file.is_file():  # keys of a vault whose storage is gone: kept beside, never overwritten
            keys_file.rename(keys_file.with_name(f"{keys_file.stem}.replaced-{int(time.time())}.json"))
        write_private(keys_file, json.dumps({"root_token": out["root_token"],
                                             "recovery_key": (out.get("recovery_keys_b64") or [""])[0]}, indent=2))
    elif not keys_file.is_file():
        raise SandboxError(f"OpenBao's storage is initialised, but its root token file {keys_file} is missing.",
                           RESET + ".")
    v.token = root_token(keys_file)

    def active() -> Result:  # it unseals itself right after initialisation
        code = v.health()[0]
        return Result(code == 200, f"sys/health {code}")

    if not (res := wait_for(active, 30, interval=0.2)).ok:
        raise SandboxError(f"OpenBao did not become active after initialisation ({res.detail}).",
                           "see `sandbox logs openbao`.")
    try:
        v.ensure_kv2(MOUNT, SANDBOX_MOUNT)
    except VaultError as e:
        if e.status == 403:
            raise SandboxError(f"The vault refuses the root token in {keys_file}: it belongs to another "
                               "initialisation of the vault.", RESET + ".") from e
        raise
    v.put_policy(AIRFLOW_POLICY, AIRFLOW_POLICY_TEXT)
    token = airflow_token_file.read_text().strip() if airflow_token_file.is_file() else ""
    if not (token and v.renew(token)):
        say("making Airflow's vault token (policy airflow-worker: read its own paths, nothing else)")
        write_private(airflow_token_file, v.create_token([AIRFLOW_POLICY], "airflow", AIRFLOW_TOKEN_PERIOD))


def root_token(keys_file: Path) -> str:
    """The sandbox's vault login; one sentence and the fix when the vault was never initialised."""
    try:
        return json.loads(keys_file.read_text())["root_token"]
    except (OSError, ValueError, KeyError) as e:
        raise SandboxError(f"The vault's root token file {keys_file} is missing or unreadable.",
                           "run `sandbox up` (it initialises the vault on its first start).") from e


class OpenBao(BuiltOrInstalled, Component):
    name = "openbao"
    default_ports = {"openbao": 28200}
    inner_port = INNER_PORT
    start_timeout = 30.0
    restart_heals = True  # sealed (`sys/seal`, a scenario): it unseals itself when it starts
    secrets = ("openbao_unseal_key",)
    login = Login("root", "")  # its token is what the first start's initialisation handed back, not generated
    crash_fixes = (
        ("address already in use", "another process holds the vault's port: stop it, or `sandbox up --port "
                                   "openbao=<free port>`"),
        ("error parsing", "the sandbox wrote a configuration OpenBao refuses: `sandbox down`, then `sandbox up`"),
    )

    home_variable = "SANDBOX_OPENBAO_HOME"
    cache_folder = ("openbao", versions.OPENBAO)
    install_holds = ("bao",)
    install_fix = "point it at a folder with OpenBao's `bao`, or unset it."

    def binary(self, cache: Path) -> Path:
        return self.home(cache) / "bao"

    def build(self, cache: Path, target: Path, say: Say) -> None:
        go = require_tool("go", GO_HINT)
        source = os.environ.get(OPENBAO.source_variable, "").strip() or OPENBAO.default_source
        work = target / "src"
        src = go_source.from_archive(OPENBAO, source, cache / "openbao" / "downloads", work, say)
        wrappers = os.environ.get("SANDBOX_OPENBAO_WRAPPERS", "").strip()
        if wrappers:
            _use_wrappers(go, Path(wrappers).expanduser(), src, work, say)
        go_source.go_build(OPENBAO, go, src, target / "bao", {**os.environ, "CGO_ENABLED": "0"}, say)
        shutil.rmtree(work)

    def prepare_host(self, ctx: ComponentContext) -> None:
        data = ctx.data_dir(self.name)
        (data / "storage").mkdir(mode=0o700, parents=True, exist_ok=True)

    def prepare(self, ctx: ComponentContext, say: Say) -> None:
        self.prepare_host(ctx)
        data = ctx.data_dir(self.name)
        write_private(data / "unseal.key", ctx.secrets["openbao_unseal_key"])
        url = ctx.url("openbao")
        write_private(data / "openbao.json", json.dumps(server_config(
            f"127.0.0.1:{ctx.ports['openbao']}", str(data / "storage"), str(data / "unseal.key"), url), indent=2))

    def processes(self, ctx: ComponentContext) -> list[ProcessSpec]:
        data = ctx.data_dir(self.name)
        # named as its container is: `restart("openbao", "openbao")` means the same on either runtime
        return [ProcessSpec("openbao", [str(self.binary(ctx.cache)), "server", f"-config={data / 'openbao.json'}"],
                            env={"HOME": str(data)}, cwd=data)]

    def ensure(self, ctx: ComponentContext, say: Say) -> None:
        bootstrap(ctx.url("openbao"), ctx.paths.vault_keys(ctx.runtime), ctx.handoff.vault_token, say)

    def health(self, ctx: ComponentContext) -> Check:
        return health_of(ctx.url("openbao"))

    def secret_elsewhere(self, ctx: ComponentContext) -> str:
        # the root token reads and changes every secret in the vault: it stays off the page
        return (f"the vault's root token lives in {ctx.paths.vault_keys(ctx.runtime)} (0600); "
                "`sandbox status --show-secrets` prints it")

    def login_secret(self, ctx: ComponentContext) -> str | None:
        try:
            return root_token(ctx.paths.vault_keys(ctx.runtime))
        except SandboxError:
            return None


def _use_wrappers(go: str, archive: Path, src: Path, work: Path, say: Say) -> None:
    """OpenBao's KMS wrapper modules from a local copy of their folder, pinned by checksum like the source."""
    if not archive.is_file():
        raise SandboxError(f"SANDBOX_OPENBAO_WRAPPERS={archive} does not exist.",
                           "point it at go-kms-wrapping's wrappers tarball, or unset it to take them from the Go "
                           "module proxy.", exit_code=2)
    found = sha256_of(archive)
    if found != versions.OPENBAO_WRAPPERS_SHA256:
        raise SandboxError(f"The wrappers archive {archive} is not the pinned one: its SHA-256 is {found}, the pin "
                           f"is {versions.OPENBAO_WRAPPERS_SHA256} (go-kms-wrapping "
                           f"{versions.OPENBAO_WRAPPERS_COMMIT[:7]}).",
                           "use the pinned archive, or unset SANDBOX_OPENBAO_WRAPPERS.", exit_code=2)
    go_source.check_members("OpenBao KMS wrappers", archive)  # unpacked beside the source: nothing may land above
    say(f"using OpenBao's KMS wrappers from {archive.name}")
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(work, filter="data")
    top = next(p for p in work.iterdir() if p.is_dir() and p != src and (p / "wrappers").is_dir())
    for w in WRAPPERS:
        run([go, "mod", "edit", "-replace",
             f"github.com/openbao/go-kms-wrapping/wrappers/{w}/v2={top / 'wrappers' / w}"],
            f"pointing OpenBao's go.mod at the {w} wrapper", cwd=src, env={**os.environ, **go_source.GO_PINNED})
