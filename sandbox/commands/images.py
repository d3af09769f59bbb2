"""`sandbox images build`: the docker runtime's images, made from package registries alone.

Each image keeps the official image's layout and entry point (compose/images/<component>/Dockerfile says
which), so the compose file runs either. What goes in:
- a Debian base: `debootstrap --variant=minbase` from a Debian mirror, then `docker import`;
- Redis and Python (bookworm), Java 25 (trixie) from Debian's packages, installed during the build;
- Airflow from PyPI, every file checked against the lock's hashes (`sandbox/data/*.lock`), with the
  KubernetesExecutor's provider as the official image has it;
- Keycloak's zip from Maven Central; the Tyk gateway and OpenBao built from their pinned sources and go-httpbin
  from the Go module proxy, all by this machine's provisioning (`sandbox provision`).
A custom CA bundle (TLS-intercepting proxies) goes into the base, and pip, requests and curl are pointed at it.
Docker's layer cache makes a second build of unchanged inputs take seconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox import versions
from sandbox.errors import SandboxError, use_one_of
from sandbox.host import engine
from sandbox.host.provision import Say, require_tool, run
from sandbox.paths import compose_dir  # noqa: F401 (tests read the recipes through this module)
from sandbox.systems.keycloak.component import TEMPLATE_DB, Keycloak, download_dist
from sandbox.systems.openbao.component import OpenBao
from sandbox.systems.tyk.component import Tyk
from sandbox.systems.upstream.component import Upstream

COMPONENTS = tuple(versions.IMAGES)
MIRROR = os.environ.get("SANDBOX_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CA_IN_IMAGE = "/etc/ssl/sandbox-ca.crt"  # not /etc/ssl/certs: installing ca-certificates would overwrite it
DEFAULT_CA = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass
class ImageResult:
    component: str
    image: str
    action: str  # built | cached | failed
    seconds: float
    detail: str = ""


def ca_bundle() -> Path | None:
    """SANDBOX_CA_BUNDLE, else the system bundle (which carries a TLS-intercepting proxy's CA where one is)."""
    given = os.environ.get("SANDBOX_CA_BUNDLE")
    if given:
        if not Path(given).is_file():
            raise SandboxError(f"SANDBOX_CA_BUNDLE={given} is not a file.",
                               "point it at a PEM bundle of the CAs your network's TLS is signed with, or unset it.")
        return Path(given)
    return DEFAULT_CA if DEFAULT_CA.is_file() else None


def debian_keyring() -> Path:
    """The keys debootstrap checks Debian's Release files with: SANDBOX_DEBIAN_KEYRING, else Debian's own package's."""
    path = Path(os.environ.get("SANDBOX_DEBIAN_KEYRING") or DEBIAN_KEYRING)
    if not path.is_file():
        raise SandboxError(f"The Debian archive keyring {path} is missing: debootstrap would not check what it "
                           "downloads.", "apt-get install debian-archive-keyring (or set SANDBOX_DEBIAN_KEYRING to a "
                           "keyring your mirror is signed with).")
    return path


def suite_of(component: str) -> str:
    return versions.DEBIAN_FOR_JAVA if component == "keycloak" else versions.DEBIAN


def base_tag(suite: str) -> str:
    return f"{versions.LOCAL_IMAGE_PREFIX}/debian:{suite}"


def build(components: list[str], cache: Path, say: Callable[[str, str], None]) -> list[ImageResult]:
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise SandboxError(f"There is no image for {unknown[0]!r}.", use_one_of(unknown[0], COMPONENTS),
                           exit_code=2)
    client = engine.client(timeout=1800)
    ca = ca_bundle()
    results = []
    for name in components or COMPONENTS:
        t0 = time.monotonic()
        tag = versions.local_image(name)
        try:
            base = ensure_base(client, suite_of(name), cache, ca, lambda m, n=name: say(n, m))
            before = _image_id(client, tag)
            context = _stage(name, cache / "images" / name, cache, lambda m, n=name: say(n, m))
            _docker_build(client, context, tag, {"BASE": base, **_build_args(name)}, lambda m, n=name: say(n, m))
            action = "cached" if before and before == _image_id(client, tag) else "built"
            results.append(ImageResult(name, tag, action, time.monotonic() - t0))
        except SandboxError as e:
            results.append(ImageResult(name, tag, "failed", time.monotonic() - t0, e.message))
    return results


def ensure_base(client, suite: str, cache: Path, ca: Path | None, say: Say) -> str:
    """The Debian base image for `suite`, made once per CA bundle: debootstrap, the CA, `docker import`."""
    tag = base_tag(suite)
    ca_digest = hashlib.sha256(ca.read_bytes()).hexdigest()[:16] if ca else "none"
    have = _labels(client, tag)
    if have.get("sandbox.ca") == ca_digest:
        return tag
    debootstrap = require_tool("debootstrap", "debootstrap (apt-get install debootstrap), which makes the Debian "
                                              "base of the sandbox's images")
    keyring = debian_keyring()
    with tempfile.TemporaryDirectory(dir=_tmp_parent(cache)) as tmp:
        root = Path(tmp) / "root"
        say(f"debootstrap --variant=minbase {suite} from {MIRROR} (about half a minute)")
        # every Release file checked against Debian's keys (without a keyring, debootstrap would go on unchecked)
        run([debootstrap, "--force-check-gpg", f"--keyring={keyring}", "--variant=minbase", suite, str(root), MIRROR],
            f"debootstrap {suite}")
        env = ["ENV DEBIAN_FRONTEND=noninteractive"]
        if ca:
            (root / CA_IN_IMAGE.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ca, root / CA_IN_IMAGE.lstrip("/"))
            env += [f"ENV {k}={CA_IN_IMAGE}" for k in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE",
                                                       "CURL_CA_BUNDLE")]
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        tarball = Path(tmp) / "rootfs.tar"
        run(["tar", "-C", str(root), "-cf", str(tarball), "."], "packing the Debian base")
        say(f"docker import {tag}")
        repo, version = tag.rsplit(":", 1)
        client.api.import_image(src=str(tarball), repository=repo, tag=version,
                                changes=[*env, f"LABEL sandbox.ca={ca_digest}", "CMD [\"bash\"]"])
    return tag


def _tmp_parent(cache: Path) -> Path:
    p = cache / "images" / "tmp"
    p.mkdir(parents=True, exist_ok=True)
    return p


def _build_args(name: str) -> dict[str, str]:
    if name == "airflow":
        return {"VERSION": versions.AIRFLOW}
    if name == "redis":
        return {"VERSION": versions.REDIS}
    return {}


def _stage(name: str, context: Path, cache: Path, say: Say) -> Path:
    """The build context: the component's Dockerfile and what it copies in, fresh each time."""
    if context.exists():
        shutil.rmtree(context)
    shutil.copytree(compose_dir() / "images" / name, context)
    if name == "tyk":
        tyk = Tyk()
        _provisioned(tyk, cache, say)
        home = tyk.home(cache)
        shutil.copy2(home / "tyk", context / "tyk")
        shutil.copytree(home / "templates", context / "templates")
        shutil.copyfile(compose_dir() / "tyk" / "tyk.conf", context / "tyk.conf")
    elif name == "openbao":
        bao = OpenBao()
        _provisioned(bao, cache, say)
        shutil.copy2(bao.binary(cache), context / "bao")
    elif name == "upstream":
        up = Upstream()
        _provisioned(up, cache, say)
        shutil.copy2(up.binary(cache), context / "go-httpbin")
    elif name == "keycloak":
        _keycloak_dist(context / "keycloak", say)
        # the template database (the master realm made once per cache): a new volume starts as a copy of it, and the
        # sandbox makes it its own at the first start (Keycloak.post_start), as locally — not a schema made anew
        keycloak = Keycloak()
        _provisioned(keycloak, cache, say)
        db = context / "template-data" / "h2"
        db.mkdir(parents=True)
        shutil.copyfile(keycloak.dist(cache) / TEMPLATE_DB, db / TEMPLATE_DB.name)
    elif name == "airflow":
        (context / "requirements.lock").write_text(versions.airflow_lock_text())
        (context / "image.lock").write_text(versions.airflow_lock_text(versions.AIRFLOW_IMAGE_LOCK))
    _set_modes(context, PROGRAMS.get(name, ()))
    return context


# what each image runs straight from its build context (COPY keeps a file's mode)
PROGRAMS = {"tyk": ("tyk",), "openbao": ("bao",), "upstream": ("go-httpbin",)}


def _set_modes(context: Path, programs: tuple[str, ...]) -> None:
    """Every mode in the context set, not inherited: the cache may have been filled under a private umask (`up`),
    and an image's own user (tyk 1000, openbao 100, nonroot 65532) must run its program and read its files."""
    for path in [context, *context.rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            path.chmod(0o755)
        else:
            runs = path.relative_to(context).as_posix() in programs or path.stat().st_mode & 0o100
            path.chmod(0o755 if runs else 0o644)


def _provisioned(component, cache: Path, say: Say) -> None:
    if not component.provisioned(cache):
        say(f"provisioning {component.name} first")
        component.provision(cache, say)


def _keycloak_dist(target: Path, say: Say) -> None:
    """Keycloak's distribution zip from Maven Central (through the local Maven repository), checked, unpacked."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = download_dist(Path(tmp), say)
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        (inner,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        shutil.move(str(inner), target)


def _docker_build(client, context: Path, tag: str, args: dict[str, str], say: Say) -> None:
    say(f"docker build {tag}")
    tail: list[str] = []
    # --network host: the build reaches the Debian mirror and PyPI the way this machine does (its proxy, its DNS)
    for chunk in client.api.build(path=str(context), tag=tag, buildargs=args, network_mode="host", rm=True,
                                  forcerm=True, decode=True):
        if "error" in chunk:
            raise SandboxError(f"Building {tag} failed: {chunk['error'].strip()}\n" + "\n".join(tail[-15:]),
                               "see the lines above; `sandbox images build` retries (finished steps are cached).")
        line = chunk.get("stream", "").strip()
        if line:
            tail.append(line)
            if line.startswith("Step "):
                say(line[:150])


def _image_id(client, tag: str) -> str | None:
    from docker.errors import ImageNotFound

    try:
        return client.images.get(tag).id
    except ImageNotFound:
        return None


def _labels(client, tag: str) -> dict[str, str]:
    from docker.errors import ImageNotFound

    try:
        return client.images.get(tag).labels or {}
    except ImageNotFound:
        return {}


def remove(client, components: list[str]) -> None:
    """Drop the built images (a cold build next time): the benchmark's reset."""
    from docker.errors import ImageNotFound

    for name in components:
        try:
            client.images.remove(versions.local_image(name), force=True)
        except ImageNotFound:
            pass
