"""Find a Java runtime new enough for Keycloak: JAVA_HOME first, then the JDKs installed on the machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import SandboxError

DEFAULT_JDK_DIRS = ("/usr/lib/jvm", "/usr/java", "/opt/java", "/Library/Java/JavaVirtualMachines")


@dataclass(frozen=True)
class Jdk:
    home: Path
    major: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"


def parse_major(version: str) -> int | None:
    """'25.0.3+9' -> 25, '1.8.0_392' -> 8, '17' -> 17."""
    m = re.match(r"(\d+)(?:\.(\d+))?", version.strip().strip('"'))
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def _major_of(home: Path) -> int | None:
    release = home / "release"
    if release.is_file():
        m = re.search(r'^JAVA_VERSION="([^"]+)"', release.read_text(errors="replace"), re.M)
        if m:
            return parse_major(m.group(1))
    java = home / "bin" / "java"
    if not java.is_file():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=20).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "([^"]+)"', out)
    return parse_major(m.group(1)) if m else None


def candidates() -> list[Path]:
    homes: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    dirs = os.environ.get("SANDBOX_JDK_DIRS")
    for d in (dirs.split(os.pathsep) if dirs is not None else DEFAULT_JDK_DIRS):
        if d and Path(d).is_dir():
            for sub in sorted(Path(d).iterdir()):
                homes.append(sub / "Contents" / "Home" if (sub / "Contents" / "Home").is_dir() else sub)
    on_path = shutil.which("java")
    if on_path:
        homes.append(Path(on_path).resolve().parent.parent)
    seen, out = set(), []
    for h in homes:
        r = h.resolve() if h.exists() else h
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def find_jdk(min_major: int, purpose: str) -> Jdk:
    """JAVA_HOME when it is new enough, else the newest JDK found that is."""
    found = [Jdk(h, m) for h in candidates() if (m := _major_of(h)) is not None]
    env_home = os.environ.get("JAVA_HOME")
    for j in found:
        if env_home and j.home == Path(env_home).resolve() and j.major >= min_major:
            return j
    good = sorted((j for j in found if j.major >= min_major), key=lambda j: j.major, reverse=True)
    if good:
        return good[0]
    seen = ", ".join(f"Java {j.major} at {j.home}" for j in found) or "no Java at all"
    raise SandboxError(
        f"{purpose} needs Java {min_major} or newer, and none was found (seen: {seen}).",
        f"install a JDK {min_major}+ (e.g. Temurin 21 or 25; Debian 13/Ubuntu 24.04: "
        f"apt-get install openjdk-21-jre-headless) and set JAVA_HOME to it.",
    )
