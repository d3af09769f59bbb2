"""Getting a Tyk gateway binary: from a source archive of the pinned release, or from the Go module proxy.

The archive is GitHub's tag tarball (or a local copy of it), checked against its pinned SHA-256 before it is
unpacked: the commit its pax global header names is only a hint (anyone can write that field), quoted when
the checksum differs. Go modules
that the gateway needs come from the Go module proxy; one it refuses is named as `module@version`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import requests

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.provision import Say, interrupted, reap, sha256_of, spawn

DEFAULT_SOURCE = f"https://github.com/TykTechnologies/tyk/archive/refs/tags/{versions.TYK}.tar.gz"
GOPROXY_SOURCE = "goproxy"  # SANDBOX_TYK_SOURCE=goproxy: build the module fetched by commit from the proxy
COLD_BUILD_HINT = "a cold build takes about 13 minutes on two cores; later builds reuse Go's build cache"
TICK = 20.0  # seconds between "still compiling" lines

# `go: github.com/x/y@v1.2.3: reading https://proxy…/@v/v1.2.3.zip: 403 Forbidden` and its relatives
_REFUSED = re.compile(r"(?P<module>[\w.~/+-]+@v[\w.+-]+): (?:reading \S+: |verifying \S+: )?(?P<why>.+)$")


def build_ldflags(commit: str) -> str:
    pkg = "github.com/TykTechnologies/tyk/internal/build"
    return f"-s -w -X {pkg}.Version={versions.TYK} -X {pkg}.Commit={commit}"


def archive_commit(path: Path) -> str | None:
    """The commit recorded in a GitHub-style tarball's pax global header (`comment`), or None."""
    try:
        with tarfile.open(path, "r:*") as tar:
            return tar.pax_headers.get("comment")
    except (tarfile.TarError, OSError) as e:
        raise SandboxError(f"The Tyk source {path} is not a readable .tar.gz archive ({e}).",
                           f"point SANDBOX_TYK_SOURCE at the {versions.TYK} source tarball.") from e


def check_source(path: Path, source: str) -> None:
    """The archive is the pinned one, byte for byte, before anything of it is unpacked."""
    found = sha256_of(path)
    if found == versions.TYK_SOURCE_SHA256:
        return
    commit = archive_commit(path)
    said = (f" (its header names commit {commit}, " + ("the pinned one: a header is no proof)" if commit ==
            versions.TYK_COMMIT else f"not the pinned {versions.TYK_COMMIT})")) if commit else ""
    raise SandboxError(
        f"The Tyk source {source} is not the pinned {versions.TYK} archive: its SHA-256 is {found}, the pin is "
        f"{versions.TYK_SOURCE_SHA256}{said}.",
        f"use the {versions.TYK} tag tarball ({DEFAULT_SOURCE}) or an exact copy of it, or change the pin in "
        "sandbox/versions.py.", exit_code=2)


def fetch_archive(source: str, downloads: Path, say: Say) -> Path:
    """A local path as it is; an http(s) URL downloaded once into `downloads` (kept for the next build)."""
    scheme = urlparse(source).scheme
    if scheme == "http":
        raise SandboxError(f"The Tyk source {source} is a plain http:// URL.",
                           "use https:// (or a local copy of the tarball); its checksum is checked either way.",
                           exit_code=2)
    if scheme != "https":
        path = Path(source).expanduser()
        if not path.is_file():
            raise SandboxError(f"The Tyk source archive {path} does not exist.",
                               "set SANDBOX_TYK_SOURCE to an existing .tar.gz file or an http(s) URL.", exit_code=2)
        return path.resolve()
    target = downloads / f"tyk-{versions.TYK}.tar.gz"
    if target.is_file():
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    say(f"downloading {source}")
    try:
        with requests.get(source, stream=True, timeout=(10, 60)) as r:
            r.raise_for_status()
            with open(part, "wb") as f:
                for chunk in r.iter_content(1 << 20):
                    f.write(chunk)
    except requests.RequestException as e:
        part.unlink(missing_ok=True)
        raise SandboxError(f"The Tyk source {source} could not be downloaded ({type(e).__name__}).",
                           "set SANDBOX_TYK_SOURCE to a local copy of the tarball, or SANDBOX_TYK_HOME to an "
                           "installed gateway.") from e
    part.rename(target)  # only a whole download counts
    return target


def extract(archive: Path, into: Path) -> Path:
    """Unpack the archive and return its single top folder (tyk-5.14.0/)."""
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(into, filter="data")
    tops = [p for p in into.iterdir() if p.is_dir()]
    if len(tops) != 1 or not (tops[0] / "go.mod").is_file():
        raise SandboxError(f"{archive} does not look like the Tyk source (one top folder with go.mod).",
                           f"use the {versions.TYK} tag tarball.")
    return tops[0]


def refused_module(output: str) -> str | None:
    """`module@version: the proxy's answer` for the first module the Go toolchain could not get, if any."""
    for line in output.splitlines():
        line = line.strip().removeprefix("go: ")
        if line.startswith("downloading "):
            continue
        m = _REFUSED.search(line)
        if m:
            return f"{m.group('module')}: {m.group('why').strip()}"
    return None


def go_build(go: str, src: Path, binary: Path, commit: str, env: dict[str, str], say: Say) -> None:
    """Compile the gateway, saying how long it has been going; a refused module is named."""
    cmd = [go, "build", "-trimpath", "-ldflags", build_ldflags(commit), "-o", str(binary), "."]
    say(f"go build ({COLD_BUILD_HINT})")
    t0 = time.monotonic()
    proc = spawn(cmd, cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        while proc.poll() is None:
            try:
                proc.wait(timeout=TICK)
            except subprocess.TimeoutExpired:
                say(f"go build: {_minutes(time.monotonic() - t0)} elapsed")
    except BaseException:  # Ctrl-C: stop the compiler too; Go's cache keeps what was done for the next run
        proc.kill()
        proc.wait()
        raise
    finally:
        reap(proc)
    reader.join(timeout=10)
    if interrupted():
        raise SandboxError("Building the Tyk gateway was interrupted.", "`sandbox provision tyk` resumes with what "
                           "Go has cached.")
    output = "".join(lines)
    if proc.returncode != 0:
        refused = refused_module(output)
        if refused:
            raise SandboxError(f"The Go module proxy did not serve a module the Tyk gateway needs: {refused}.",
                               "set GOPROXY to a proxy that serves it (or GOFLAGS=-mod=mod with a vendor copy), "
                               "or SANDBOX_TYK_HOME to an installed gateway.")
        tail = "\n".join(output.strip().splitlines()[-12:])
        raise SandboxError(f"Building the Tyk gateway failed (exit {proc.returncode}):\n{tail}\n",
                           "see the output above; `sandbox provision tyk` resumes with what Go has cached.")
    say(f"go build done in {_minutes(time.monotonic() - t0)}")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def install_templates(src: Path, target: Path) -> None:
    """The gateway reads its error templates at run time (`template_path`)."""
    shutil.copytree(src / "templates", target / "templates")
