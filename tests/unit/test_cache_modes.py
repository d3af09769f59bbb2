"""The per-user cache holds public artefacts: whatever umask built them (`up` builds under the private one), a
container's own user can run the binaries and read the rest; an image's build context sets every mode itself."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sandbox.commands.images import _set_modes
from sandbox.host.privacy import private_umask
from sandbox.host.provision import DONE_MARKER, cached_build


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_build_under_the_private_umask_leaves_binaries_runnable_and_files_readable_by_all(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.write_text("not the cache's")
    outside.chmod(0o600)

    def build(target: Path) -> None:
        (target / "bin").mkdir()
        fd = os.open(target / "bin" / "bao", os.O_CREAT | os.O_WRONLY, 0o777)  # as a compiler writes it
        os.close(fd)
        (target / "templates").mkdir()
        (target / "templates" / "error.json").write_text("{}")
        (target / "secret-looking").write_text("x")
        (target / "link").symlink_to(outside)

    with private_umask():
        target = cached_build(tmp_path / "cache" / "openbao" / "2.6.2", build, lambda _: None)
    assert _mode(target / "bin" / "bao") == 0o755
    assert _mode(target / "bin") == _mode(target / "templates") == _mode(target) == 0o755
    assert _mode(target / "templates" / "error.json") == _mode(target / "secret-looking") == 0o644
    assert _mode(target / DONE_MARKER) == 0o644
    assert (target / "link").is_symlink() and _mode(outside) == 0o600  # a link is not followed


def test_an_image_context_sets_every_mode_whatever_the_cache_held(tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "templates").mkdir(parents=True)
    for name, mode in (("go-httpbin", 0o600), ("templates/t.json", 0o600), ("entrypoint", 0o700),
                       ("Dockerfile", 0o666)):
        (ctx / name).write_text("x")
        (ctx / name).chmod(mode)
    (ctx / "templates").chmod(0o700)
    _set_modes(ctx, ("go-httpbin",))
    assert {p.relative_to(ctx).as_posix(): _mode(p) for p in ctx.rglob("*")} == {
        "go-httpbin": 0o755, "templates": 0o755, "templates/t.json": 0o644, "entrypoint": 0o755,
        "Dockerfile": 0o644}
