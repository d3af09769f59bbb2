from pathlib import Path

import pytest

from sandbox.errors import SandboxError
from sandbox.systems.keycloak.java import find_jdk, parse_major


@pytest.mark.parametrize("text,major", [("25.0.3+9", 25), ("17.0.15", 17), ("1.8.0_392", 8), ('"21"', 21)])
def test_parse_major(text, major):
    assert parse_major(text) == major


def fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def isolate(monkeypatch, root: Path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("SANDBOX_JDK_DIRS", str(root))
    monkeypatch.setenv("PATH", str(root / "nothing-here"))


def test_newest_sufficient_jdk_wins(tmp_path, monkeypatch):
    fake_jdk(tmp_path, "jdk-17", "17.0.2")
    fake_jdk(tmp_path, "jdk-21", "21.0.1")
    fake_jdk(tmp_path, "jdk-25", "25.0.3")
    isolate(monkeypatch, tmp_path)
    assert find_jdk(21, "Keycloak").major == 25


def test_java_home_preferred_when_new_enough(tmp_path, monkeypatch):
    fake_jdk(tmp_path, "jdk-25", "25.0.3")
    j21 = fake_jdk(tmp_path, "jdk-21", "21.0.1")
    isolate(monkeypatch, tmp_path)
    monkeypatch.setenv("JAVA_HOME", str(j21))
    assert find_jdk(21, "Keycloak").home == j21.resolve()


def test_only_old_java_names_what_to_install(tmp_path, monkeypatch):
    fake_jdk(tmp_path, "jdk-17", "17.0.2")
    isolate(monkeypatch, tmp_path)
    with pytest.raises(SandboxError) as e:
        find_jdk(21, "Keycloak 26.7.3")
    assert e.value.message.startswith("Keycloak 26.7.3 needs Java 21 or newer, and none was found (seen: Java 17")
    assert "JAVA_HOME" in e.value.fix and "openjdk-21-jre-headless" in e.value.fix


def test_no_java_at_all(tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path)
    with pytest.raises(SandboxError, match=r"none was found \(seen: no Java at all\)"):
        find_jdk(21, "Keycloak")
