"""Provisioning Tyk from a source archive: the commit check and the sentences a user gets (no build runs)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.host import go_source
from sandbox.host.go_source import TYK
from sandbox.host.provision import sha256_of

OTHER = "0123456789abcdef0123456789abcdef01234567"


def make_archive(path: Path, commit: str | None) -> Path:
    headers = {"comment": commit} if commit else {}
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers=headers) as tar:
        data = b"module github.com/TykTechnologies/tyk\n"
        info = tarfile.TarInfo("tyk-5.14.0/go.mod")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def provision(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SANDBOX_CACHE": str(tmp_path / "cache"), "SANDBOX_TYK_SOURCE": source}
    env.pop("SANDBOX_TYK_HOME", None)
    return subprocess.run([sys.executable, "-m", "sandbox.cli", "provision", "tyk"], env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_commit_in_the_archive_header_is_read(tmp_path):
    assert go_source.archive_commit(make_archive(tmp_path / "a.tar.gz", versions.TYK_COMMIT)) == versions.TYK_COMMIT
    assert go_source.archive_commit(make_archive(tmp_path / "b.tar.gz", None)) is None


def test_an_archive_of_another_commit_is_refused_naming_both(tmp_path):
    archive = make_archive(tmp_path / "other.tar.gz", OTHER)
    p = provision(tmp_path, str(archive))
    said = " ".join(p.stderr.split())
    assert p.returncode == 1
    assert (f"The Tyk source {archive} is not the pinned v5.14.0 archive: its SHA-256 is "
            f"{sha256_of(archive)}, the pin is {versions.TYK_SOURCE_SHA256} (its header names commit {OTHER}, "
            f"not the pinned {versions.TYK_COMMIT}).") in said, said
    assert "Traceback" not in p.stderr


def test_a_forged_header_is_no_proof(tmp_path):
    # the pinned commit in the pax comment, other content: refused before anything is unpacked
    archive = make_archive(tmp_path / "forged.tar.gz", versions.TYK_COMMIT)
    with pytest.raises(SandboxError, match="a header is no proof") as e:
        go_source.check_source(TYK, archive, str(archive))
    assert e.value.exit_code == 2
    with pytest.raises(SandboxError, match="plain http:// URL"):
        go_source.fetch_archive(TYK, "http://example.org/tyk.tar.gz", tmp_path / "downloads", lambda _m: None)
    assert not (tmp_path / "downloads").exists()
    # nothing half-built is left to be mistaken for a gateway
    assert not (tmp_path / "cache" / "tyk" / versions.TYK / ".provisioned").exists()


def test_a_source_path_that_does_not_exist_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "tyk.tar.gz"
    p = provision(tmp_path, str(missing))
    assert p.returncode == 1
    assert f"The Tyk source archive {missing} does not exist." in " ".join(p.stderr.split())
    assert "SANDBOX_TYK_SOURCE" in p.stderr and "Traceback" not in p.stderr


def test_not_an_archive(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("not a tarball")
    with pytest.raises(SandboxError, match="is not a readable .tar.gz archive"):
        go_source.archive_commit(junk)


def test_an_archive_without_go_mod_is_not_taken_for_the_source(tmp_path):
    archive = tmp_path / "x.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("something/README"), io.BytesIO(b""))
    with pytest.raises(SandboxError, match="does not look like the Tyk source"):
        go_source.extract(TYK, archive, tmp_path / "out")


@pytest.mark.parametrize("output, expected", [
    ("go: downloading github.com/a/b v1.0.0\n"
     "go: github.com/TykTechnologies/storage@v1.2.3: reading https://proxy.golang.org/github.com/!tyk!technologies/"
     "storage/@v/v1.2.3.zip: 403 Forbidden\n",
     "github.com/TykTechnologies/storage@v1.2.3: 403 Forbidden"),
    ("verifying github.com/x/y@v0.1.0: checksum mismatch\n", "github.com/x/y@v0.1.0: checksum mismatch"),
    ("gateway/api.go:12:2: undefined: foo\n", None),
])
def test_a_refused_module_is_named_with_the_proxy_answer(output, expected):
    assert go_source.refused_module(output) == expected


def test_ldflags_stamp_version_and_commit():
    flags = TYK.ldflags
    assert f"build.Version={versions.TYK}" in flags and f"build.Commit={versions.TYK_COMMIT}" in flags


def test_another_packing_of_the_pinned_tree_is_accepted_and_a_changed_file_is_not(tmp_path):
    import dataclasses
    import gzip

    def pack(path: Path, files: dict[str, bytes], fmt: int, level: int) -> Path:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(f"bao-1/{name}")
                info.size, info.mode, info.mtime = len(data), 0o755 if name == "run.sh" else 0o644, 1
                tar.addfile(info, io.BytesIO(data))
        path.write_bytes(gzip.compress(raw.getvalue(), compresslevel=level))
        return path

    files = {"go.mod": b"module x\n", "main.go": b"package main\n", "run.sh": b"#!/bin/sh\n"}
    a = pack(tmp_path / "a.tar.gz", files, tarfile.PAX_FORMAT, 9)  # as `git archive` packs
    b = pack(tmp_path / "b.tar.gz", dict(reversed(files.items())), tarfile.GNU_FORMAT, 1)  # as another tool does
    assert sha256_of(a) != sha256_of(b) and go_source.tree_digest(a) == go_source.tree_digest(b)
    release = dataclasses.replace(go_source.OPENBAO, sha256s=(sha256_of(a),), tree_sha256=go_source.tree_digest(a))
    go_source.check_source(release, b, str(b))  # same files: accepted
    changed = pack(tmp_path / "c.tar.gz", {**files, "main.go": b"package evil\n"}, tarfile.PAX_FORMAT, 9)
    with pytest.raises(SandboxError, match="is not the pinned"):
        go_source.check_source(release, changed, str(changed))


def test_the_shared_openbao_archive_holds_the_pinned_tree():
    shared = Path(__file__).resolve().parents[3] / "shared" / "third_party" / "openbao" / "openbao-2.6.2.tar.gz"
    if not shared.is_file():  # CI and this project's machines have ../shared beside the clone
        pytest.fail(f"{shared} is missing: the pinned tree cannot be checked")
    assert sha256_of(shared) in versions.OPENBAO_SOURCE_SHA256S
    assert go_source.tree_digest(shared) == versions.OPENBAO_TREE_SHA256


def _pinned_tree(tmp_path: Path, extra: tarfile.TarInfo | None = None, data: bytes = b"") -> Path:
    """The small tree of a pinned release (as `git archive` packs it), with one member added."""
    path = tmp_path / f"x{len(list(tmp_path.iterdir()))}.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, content in (("bao-1/", None), ("bao-1/go.mod", b"module x\n"), ("bao-1/main.go", b"package main\n")):
            info = tarfile.TarInfo(name.rstrip("/"))
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o775
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o664
                tar.addfile(info, io.BytesIO(content))
        if extra is not None:
            extra.size = len(data) if extra.isfile() else 0
            tar.addfile(extra, io.BytesIO(data) if extra.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


@pytest.mark.parametrize("member, named", [
    (_member("go.work"), "the member 'go.work' lies outside the single top folder bao-1/"),
    (_member("other-1/go.work"), "the member 'other-1/go.work' lies outside the single top folder bao-1/"),
    (_member("bao-1/../go.work"), "the member 'bao-1/../go.work' has a path outside its top folder"),
    (_member("/etc/go.work"), "the member '/etc/go.work' has a path outside its top folder"),
    (_member("bao-1/vendor", tarfile.SYMTYPE, "../../home"), "the link 'bao-1/vendor' points outside the top "
                                                              "folder ('../../home')"),
    (_member("bao-1/abs", tarfile.SYMTYPE, "/etc/passwd"), "the link 'bao-1/abs' points outside the top "
                                                           "folder ('/etc/passwd')"),
    (_member("bao-1/hard", tarfile.LNKTYPE, "etc/passwd"), "the link 'bao-1/hard' points outside the top "
                                                           "folder ('etc/passwd')"),
    (_member("bao-1/fifo", tarfile.FIFOTYPE), "the member 'bao-1/fifo' is a special file"),
    (_member("bao-1/dev", tarfile.CHRTYPE), "the member 'bao-1/dev' is a special file"),
])
def test_a_member_outside_the_top_folder_is_refused_before_unpacking_naming_it(tmp_path, member, named):
    import dataclasses

    clean = _pinned_tree(tmp_path)
    # pinned by the tree only, as OpenBao's archive is: the member check must not depend on the digest
    release = dataclasses.replace(go_source.OPENBAO, sha256s=(), tree_sha256=go_source.tree_digest(clean))
    go_source.check_source(release, clean, str(clean))
    bad = _pinned_tree(tmp_path, member, b"replace x => ./evil\n")
    with pytest.raises(SandboxError) as e:
        go_source.check_source(release, bad, str(bad))
    assert e.value.message == f"The OpenBao source {bad} is refused before unpacking: {named}."
    assert not (tmp_path / "out").exists()


def test_links_inside_the_top_folder_are_taken():
    with_links = [_member("bao-1/a", tarfile.SYMTYPE, "b/c"), _member("bao-1/d/e", tarfile.SYMTYPE, "../f"),
                  _member("bao-1/g", tarfile.LNKTYPE, "bao-1/go.mod")]
    for member in with_links:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            go_source.check_members("OpenBao", _pinned_tree(Path(d), member))


@pytest.mark.parametrize("changed", [
    _member("bao-1/sub", tarfile.DIRTYPE),  # a folder alone
    _member("bao-1/go.sum"),  # an empty file
])
def test_the_tree_digest_counts_every_member_and_the_top_folders_name(tmp_path, changed):
    clean = _pinned_tree(tmp_path)
    assert go_source.tree_digest(_pinned_tree(tmp_path, changed)) != go_source.tree_digest(clean)
    renamed = tmp_path / "renamed.tar.gz"
    with tarfile.open(clean) as src, tarfile.open(renamed, "w:gz", format=tarfile.PAX_FORMAT) as dst:
        for m in src:
            data = src.extractfile(m) if m.isfile() else None
            m.name = "bao-2" + m.name[len("bao-1"):]
            dst.addfile(m, data)
    assert go_source.tree_digest(renamed) != go_source.tree_digest(clean)
    moded = tmp_path / "moded.tar.gz"
    with tarfile.open(clean) as src, tarfile.open(moded, "w:gz", format=tarfile.PAX_FORMAT) as dst:
        for m in src:
            data = src.extractfile(m) if m.isfile() else None
            if m.name == "bao-1/main.go":
                m.mode = 0o775
            dst.addfile(m, data)
    assert go_source.tree_digest(moded) != go_source.tree_digest(clean)


def test_go_builds_ignore_any_go_work_and_never_rewrite_go_mod(tmp_path):
    # a stand-in for the toolchain that writes down the environment it was given
    go = tmp_path / "go"
    go.write_text('#!/bin/sh\nfor a; do out=$a; [ "$prev" = -o ] && dest=$a; prev=$a; done\n'
                  'echo "GOWORK=$GOWORK GOFLAGS=$GOFLAGS" > "$dest"\n')
    go.chmod(0o755)
    binary = tmp_path / "bao"
    go_source.go_build(go_source.OPENBAO, str(go), tmp_path, binary, {"PATH": os.environ["PATH"],
                       "GOWORK": "/tmp/go.work", "GOFLAGS": "-mod=mod"}, lambda _: None)
    assert binary.read_text().strip() == "GOWORK=off GOFLAGS=-mod=readonly"


def test_a_policy_whose_file_is_gone_counts_as_deleted_and_nothing_else_does():
    import json

    import requests

    from sandbox.systems.tyk import client

    def answer(method, url, status, body):
        r = requests.Response()
        r.status_code, r._content = status, json.dumps(body).encode()
        r.request = requests.Request(method, url).prepare()
        return r

    gone = {"status": "error", "message": "Delete failed"}  # Tyk 5.14's words when the policy's file is missing
    assert client._absent(answer("DELETE", "http://gw/tyk/policies/dev-ci-airflow", 500, gone))
    assert client._absent(answer("DELETE", "http://gw/tyk/apis/oas/x", 404, {"message": "not found"}))
    assert not client._absent(answer("DELETE", "http://gw/tyk/apis/oas/x", 500, gone))
    assert not client._absent(answer("DELETE", "http://gw/tyk/policies/p", 500, {"message": "Unable to create"}))
