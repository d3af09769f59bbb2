"""Building a Go program from a source archive of its pinned release: the Tyk gateway and OpenBao.

The archive is GitHub's tag tarball (or a local copy of it), checked against its pinned SHA-256 before it is
unpacked: the commit its pax global header names is only a hint (anyone can write that field), quoted when
the checksum differs. Go modules the program needs come from the Go module proxy; one it refuses is named as
`module@version`. A `Release` says once what differs between the programs.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import requests

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.host.provision import Say, cached_build, interrupted, is_done, reap, sha256_of, spawn

GO_HINT = "Go 1.26 or newer (apt-get install golang, or the official tarball)"

GOPROXY_SOURCE = "goproxy"  # SANDBOX_TYK_SOURCE=goproxy: build the module fetched by commit from the proxy
TICK = 20.0  # seconds between "still compiling" lines
# Go reads a go.work from any parent folder and may rewrite go.mod/go.sum: neither may change what is built
GO_PINNED = {"GOWORK": "off", "GOFLAGS": "-mod=readonly"}

# `go: github.com/x/y@v1.2.3: reading https://proxy…/@v/v1.2.3.zip: 403 Forbidden` and its relatives
_REFUSED = re.compile(r"(?P<module>[\w.~/+-]+@v[\w.+-]+): (?:reading \S+: |verifying \S+: )?(?P<why>.+)$")


@dataclass(frozen=True)
class Release:
    """One pinned release of a Go program, built from its source archive."""

    title: str  # as a sentence names it: "Tyk"
    component: str  # `sandbox provision <component>`
    version: str  # as its tag says: v5.14.0, v2.6.2
    commit: str
    sha256s: tuple[str, ...]  # the archives accepted, byte for byte
    default_source: str  # GitHub's tag tarball
    source_variable: str  # SANDBOX_TYK_SOURCE
    alternative: str  # what else a user can do when no source can be had
    cold_build: str  # how long a cold build takes here
    ldflags: str
    tags: str = ""
    # the SHA-256 of the tree the archive holds (tree_digest): accepts another packing of the same commit's files
    # (GitHub's tag tarball and a `git archive` of the tag differ in their bytes, not in their files)
    tree_sha256: str = ""

    @property
    def archive_name(self) -> str:
        return f"{self.component}-{self.version}.tar.gz"


TYK = Release(
    "Tyk", "tyk", versions.TYK, versions.TYK_COMMIT, (versions.TYK_SOURCE_SHA256,),
    f"https://github.com/TykTechnologies/tyk/archive/refs/tags/{versions.TYK}.tar.gz", "SANDBOX_TYK_SOURCE",
    "SANDBOX_TYK_HOME to an installed gateway", "about 13 minutes on two cores",
    f"-s -w -X github.com/TykTechnologies/tyk/internal/build.Version={versions.TYK} "
    f"-X github.com/TykTechnologies/tyk/internal/build.Commit={versions.TYK_COMMIT}")

_BAO_PKG = "github.com/openbao/openbao/version"
OPENBAO = Release(
    "OpenBao", "openbao", f"v{versions.OPENBAO}", versions.OPENBAO_COMMIT, versions.OPENBAO_SOURCE_SHA256S,
    f"https://github.com/openbao/openbao/archive/refs/tags/v{versions.OPENBAO}.tar.gz", "SANDBOX_OPENBAO_SOURCE",
    "SANDBOX_OPENBAO_HOME to a folder holding an OpenBao binary `bao`", "about 5 minutes on two cores",
    f"-s -w -X {_BAO_PKG}.fullVersion={versions.OPENBAO} -X {_BAO_PKG}.GitCommit={versions.OPENBAO_COMMIT} "
    f"-X {_BAO_PKG}.CommitDate={versions.OPENBAO_COMMIT_DATE}", tags="openbao",
    tree_sha256=versions.OPENBAO_TREE_SHA256)


@contextmanager
def _archive(path: Path) -> Iterator[tarfile.TarFile]:
    """The archive open for reading; one that cannot be read is one sentence and the fix."""
    try:
        with tarfile.open(path, "r:*") as tar:
            yield tar
    except (tarfile.TarError, OSError) as e:
        raise SandboxError(f"The source {path} is not a readable .tar.gz archive ({e}).",
                           "point the source variable at the release's source tarball.") from e


def archive_commit(path: Path) -> str | None:
    """The commit recorded in a GitHub-style tarball's pax global header (`comment`), or None."""
    with _archive(path) as tar:
        return tar.pax_headers.get("comment")


def _refuse(release_title: str, path: Path, why: str) -> SandboxError:
    return SandboxError(f"The {release_title} source {path} is refused before unpacking: {why}.",
                        "use the release's tag tarball or an exact copy of it (one top folder, no links out of it, "
                        "no special files).", exit_code=2)


def check_members(title: str, path: Path) -> None:
    """Every member of the archive lies inside its single top folder: no file beside it (a top-level `go.work`
    would be read by Go from the parent folder and could swap any dependency), no `..` or absolute path, no link
    that leaves the folder, no device, pipe or other special file. Read without unpacking."""
    top = None
    with _archive(path) as tar:
        for m in tar:
            name = m.name.rstrip("/")
            parts = PurePosixPath(name).parts
            if not parts or name.startswith("/") or ".." in parts:
                raise _refuse(title, path, f"the member {m.name!r} has a path outside its top folder")
            top = top or parts[0]
            if parts[0] != top or (len(parts) == 1 and not m.isdir()):
                raise _refuse(title, path, f"the member {m.name!r} lies outside the single top folder {top}/")
            if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                raise _refuse(title, path, f"the member {m.name!r} is a special file")
            if m.issym() or m.islnk():
                # a symlink's target is relative to its folder; a hard link's to the archive's root
                base = PurePosixPath(*parts[:-1]) if m.issym() else PurePosixPath()
                target = posixpath.normpath(str(base / m.linkname))
                if m.linkname.startswith("/") or not (target + "/").startswith(top + "/"):
                    raise _refuse(title, path, f"the link {m.name!r} points outside the top folder "
                                               f"({m.linkname!r})")


def tree_digest(path: Path) -> str:
    """The SHA-256 of everything a tar.gz holds, read without unpacking: each member's type, full path and
    permission bits, a file's content's SHA-256, a link's target; in name order. Another packing of the same
    tree (GitHub's tag tarball against `git archive`) has the same digest; any added, removed or changed member,
    folder or top folder name does not."""
    entries = []
    with _archive(path) as tar:
        for m in tar:
            kind = "f" if m.isfile() else "d" if m.isdir() else "s" if m.issym() else "h" if m.islnk() else "?"
            line = f"{kind} {m.name.rstrip('/')} {m.mode & 0o7777:o}"
            if m.isfile():
                line += " " + hashlib.sha256(tar.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
            elif m.issym() or m.islnk():
                line += " " + m.linkname
            entries.append(line)
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def check_source(release: Release, path: Path, source: str) -> None:
    """The archive is the pinned one, byte for byte — or holds the pinned tree, file for file — before anything
    of it is unpacked; and whatever the pin says, every member stays inside the one top folder."""
    check_members(release.title, path)
    found = sha256_of(path)
    if found in release.sha256s:
        return
    if release.tree_sha256 and tree_digest(path) == release.tree_sha256:
        return
    commit = archive_commit(path)
    said = (f" (its header names commit {commit}, " + ("the pinned one: a header is no proof)" if commit ==
            release.commit else f"not the pinned {release.commit})")) if commit else ""
    pins = " or ".join(release.sha256s)
    raise SandboxError(
        f"The {release.title} source {source} is not the pinned {release.version} archive: its SHA-256 is {found}, "
        f"the pin is {pins}{said}.",
        f"use the {release.version} tag tarball ({release.default_source}) or an exact copy of it, or change the "
        "pin in sandbox/versions.py.", exit_code=2)


def fetch_archive(release: Release, source: str, downloads: Path, say: Say) -> Path:
    """A local path as it is; an http(s) URL downloaded once into `downloads` (kept for the next build)."""
    scheme = urlparse(source).scheme
    var = release.source_variable
    if scheme == "http":
        raise SandboxError(f"The {release.title} source {source} is a plain http:// URL.",
                           "use https:// (or a local copy of the tarball); its checksum is checked either way.",
                           exit_code=2)
    if scheme != "https":
        path = Path(source).expanduser()
        if not path.is_file():
            raise SandboxError(f"The {release.title} source archive {path} does not exist.",
                               f"set {var} to an existing .tar.gz file or an http(s) URL.", exit_code=2)
        return path.resolve()
    target = downloads / release.archive_name
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
        raise SandboxError(f"The {release.title} source {source} could not be downloaded ({type(e).__name__}).",
                           f"set {var} to a local copy of the tarball, or {release.alternative}.") from e
    part.rename(target)  # only a whole download counts
    return target


def extract(release: Release, archive: Path, into: Path) -> Path:
    """Unpack the archive and return its single top folder (tyk-5.14.0/)."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(into, filter="data")
    tops = [p for p in into.iterdir() if p.is_dir()]
    if len(tops) != 1 or not (tops[0] / "go.mod").is_file():
        raise SandboxError(f"{archive} does not look like the {release.title} source (one top folder with go.mod).",
                           f"use the {release.version} tag tarball.")
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


def go_build(release: Release, go: str, src: Path, binary: Path, env: dict[str, str], say: Say) -> None:
    """Compile the program, saying how long it has been going; a refused module is named."""
    tags = ["-tags", release.tags] if release.tags else []
    cmd = [go, "build", "-trimpath", *tags, "-ldflags", release.ldflags, "-o", str(binary), "."]
    env = {**env, **GO_PINNED}
    say(f"go build (a cold build takes {release.cold_build}; later builds reuse Go's build cache)")
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
        raise SandboxError(f"Building {release.title} was interrupted.",
                           f"`sandbox provision {release.component}` resumes with what Go has cached.")
    output = "".join(lines)
    if proc.returncode != 0:
        refused = refused_module(output)
        if refused:
            raise SandboxError(f"The Go module proxy did not serve a module {release.title} needs: {refused}.",
                               "set GOPROXY to a proxy that serves it (or GOFLAGS=-mod=mod with a vendor copy), "
                               f"or {release.alternative}.")
        tail = "\n".join(output.strip().splitlines()[-12:])
        raise SandboxError(f"Building {release.title} failed (exit {proc.returncode}):\n{tail}\n",
                           f"see the output above; `sandbox provision {release.component}` resumes with what Go "
                           "has cached.")
    say(f"go build done in {_minutes(time.monotonic() - t0)}")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def from_archive(release: Release, source: str, downloads: Path, work: Path, say: Say) -> Path:
    """The release's source unpacked into `work` (its top folder returned), the archive checked first."""
    archive = fetch_archive(release, source, downloads, say)
    try:
        check_source(release, archive, source)
    except SandboxError:
        if archive.parent == downloads:  # a bad download is not kept for the next build
            archive.unlink(missing_ok=True)
        raise
    say(f"unpacking {archive.name} (commit {release.commit[:12]}, as pinned)")
    return extract(release, archive, work)


class BuiltOrInstalled:
    """A component whose program is built from its pinned Go source into the cache (`build`), unless the variable
    `home_variable` names an install elsewhere, which is used as it is: Tyk's gateway and OpenBao."""

    home_variable: str
    cache_folder: tuple[str, str]  # (folder, version) under the cache
    install_holds: tuple[str, ...]  # what an install elsewhere holds: files, and folders with a trailing '/'
    install_fix: str  # what to do when it does not hold them

    @classmethod
    def installed(cls) -> Path | None:
        given = os.environ.get(cls.home_variable)
        return Path(given) if given else None

    def home(self, cache: Path) -> Path:
        return self.installed() or cache.joinpath(*self.cache_folder)

    def provisioned(self, cache: Path) -> bool:
        home = self.home(cache)
        if self.installed():
            return all((home / p).is_dir() if p.endswith("/") else (home / p).is_file() for p in self.install_holds)
        return is_done(home)

    def provision(self, cache: Path, say: Say) -> None:
        if self.installed():
            if not self.provisioned(cache):
                holds = " and ".join(f"`{p}`" for p in self.install_holds)
                raise SandboxError(f"{self.home_variable}={self.home(cache)} does not hold {holds}.", self.install_fix)
            say(f"using the install in {self.home(cache)}")
            return
        cached_build(self.home(cache), lambda target: self.build(cache, target, say), say)

    def build(self, cache: Path, target: Path, say: Say) -> None:
        raise NotImplementedError
