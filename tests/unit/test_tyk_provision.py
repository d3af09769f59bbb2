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
from sandbox.provision import sha256_of
from sandbox.runtime.components import go_source
from sandbox.runtime.components.go_source import TYK

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
