"""A sandbox home is private to its user: directories 0700, files 0600, whoever wrote them.

Keycloak's database (realm signing keys, client secrets), Airflow's metadata database and the logs live there;
on a shared machine (CI runners, dev boxes) other local users must not read them. Everything the sandbox writes
or starts under `private_umask()` is created private; `make_private` repairs a home made before that.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

UMASK = 0o077


@contextmanager
def private_umask() -> Iterator[None]:
    """New files and directories of this process, and of every child it starts meanwhile, are the user's alone."""
    previous = os.umask(UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def make_private(home: Path) -> int:
    """Take group and other permissions off everything under `home` (links are not followed); how many changed."""
    return _remode(home, lambda mode: mode & ~0o077)


def make_public(folder: Path) -> int:
    """Give group and other what the owner can read and run under `folder` (links are not followed), as the
    default umask would: the per-user cache holds public artefacts (binaries, virtualenvs, distributions) that a
    container's own user must run, whichever command built them — `up` builds under the private umask. How many
    changed."""
    return _remode(folder, lambda mode: mode | (0o044 if mode & 0o400 else 0) | (0o011 if mode & 0o100 else 0))


def _remode(root_folder: Path, wanted: Callable[[int], int]) -> int:
    """Set each file's and folder's permission bits under `root_folder` (itself included) to `wanted(bits)`; links
    are not followed. How many changed."""
    changed = 0
    if not root_folder.exists():
        return 0
    for root, dirs, files in os.walk(root_folder):
        for name in [None, *dirs, *files]:
            path = root if name is None else os.path.join(root, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:  # a process removed it meanwhile
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            if wanted(mode) != mode:
                os.chmod(path, wanted(mode))
                changed += 1
    return changed
