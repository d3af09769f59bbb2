"""Which image each component runs, what the image build is made of, which scenarios run where (no engine)."""

from pathlib import Path

import pytest

from sandbox import versions
from sandbox.commands import images
from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths
from sandbox.runtime.docker.runtime import DockerRuntime, image_variable, port_variable
from sandbox.scenarios.repro import runnable
from sandbox.systems import all_components


def runtime(tmp_path, mode: str, have: set[str]) -> DockerRuntime:
    rt = DockerRuntime(SandboxPaths(tmp_path / "home", tmp_path / "cache"), components=all_components(), images=mode)
    rt._has = lambda ref: ref in have  # what this engine holds
    return rt


def test_auto_takes_the_official_image_where_the_engine_has_it_else_a_built_one(tmp_path, monkeypatch):
    for c in versions.IMAGES:
        monkeypatch.delenv(image_variable(c), raising=False)
    have = {versions.IMAGES["redis"], versions.local_image("redis"), versions.local_image("keycloak")}
    chosen = runtime(tmp_path, "auto", have).choose_images()
    assert chosen["redis"] == versions.IMAGES["redis"]  # official wins when both are there
    assert chosen["keycloak"] == versions.local_image("keycloak")
    assert chosen["tyk"] == versions.IMAGES["tyk"]  # neither: the official one, to be pulled
    assert set(runtime(tmp_path, "local", set()).choose_images().values()) == {
        versions.local_image(c) for c in versions.IMAGES}
    monkeypatch.setenv(image_variable("tyk"), "mirror.example/tyk:v5.14.0")
    assert runtime(tmp_path, "local", set()).choose_images()["tyk"] == "mirror.example/tyk:v5.14.0"


def test_a_missing_local_image_says_how_to_build_it(tmp_path):
    rt = runtime(tmp_path, "local", set())
    with pytest.raises(SandboxError) as e:
        rt._ensure_image(versions.local_image("airflow"), "airflow", lambda *_: None)
    assert "has not been built" in e.value.message and "sandbox images build airflow" in e.value.fix


def test_compose_variables_are_named_after_ports_and_components():
    assert port_variable("keycloak-management") == "SANDBOX_KEYCLOAK_MANAGEMENT_PORT"
    assert image_variable("upstream") == "SANDBOX_IMAGE_UPSTREAM"
    text = (images.compose_dir() / "docker-compose.yml").read_text()
    for name in ("airflow", "keycloak", "keycloak-management", "redis", "tyk", "upstream"):
        assert "${" + port_variable(name) + ":-" in text, name


def test_the_airflow_containers_run_as_the_host_user_but_never_root(monkeypatch):
    from sandbox.runtime.docker import runtime as docker
    from sandbox.systems.airflow.component import Airflow

    assert Airflow.image_user == 50000  # the official image's airflow user
    monkeypatch.setattr(docker.os, "getuid", lambda: 1000)
    assert docker.run_as(Airflow.image_user) == 1000
    monkeypatch.setattr(docker.os, "getuid", lambda: 0)
    assert docker.run_as(Airflow.image_user) == 50000


def test_every_image_sets_a_user_other_than_root():
    for name in versions.IMAGES:
        users = [line.split()[1] for line in (images.compose_dir() / "images" / name / "Dockerfile").read_text()
                 .splitlines() if line.startswith("USER ")]
        assert users and users[-1].split(":")[0] not in ("0", "root"), name


def test_keycloak_builds_on_a_debian_with_java_25_and_its_aot_cache():
    assert images.suite_of("keycloak") == versions.DEBIAN_FOR_JAVA
    assert {images.suite_of(c) for c in versions.IMAGES if c != "keycloak"} == {versions.DEBIAN}
    recipe = (images.compose_dir() / "images" / "keycloak" / "Dockerfile").read_text()
    assert "openjdk-25-jre-headless" in recipe and "train-aot" in recipe and "-XX:AOTCache=" in recipe


def test_every_component_has_a_recipe_keeping_the_official_entry_point():
    entry = {"keycloak": "/opt/keycloak/bin/kc.sh", "tyk": "/opt/tyk-gateway/tyk", "airflow": "/entrypoint",
             # the official openbao image's entry point is a script around /bin/bao; compose names `bao` itself
             "redis": "redis-server", "upstream": "/bin/go-httpbin", "openbao": "COPY bao /bin/bao"}
    for name in versions.IMAGES:
        assert entry[name] in (images.compose_dir() / "images" / name / "Dockerfile").read_text(), name


def test_a_custom_ca_bundle_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_CA_BUNDLE", str(tmp_path / "nope.pem"))
    with pytest.raises(SandboxError) as e:
        images.ca_bundle()
    assert "is not a file" in e.value.message
    pem = tmp_path / "corp.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("SANDBOX_CA_BUNDLE", str(pem))
    assert images.ca_bundle() == pem


def test_debootstrap_checks_signatures_against_a_keyring_that_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_DEBIAN_KEYRING", str(tmp_path / "none.gpg"))
    with pytest.raises(SandboxError) as e:
        images.debian_keyring()
    assert "would not check" in e.value.message and "debian-archive-keyring" in e.value.fix
    (tmp_path / "k.gpg").write_bytes(b"keys")
    monkeypatch.setenv("SANDBOX_DEBIAN_KEYRING", str(tmp_path / "k.gpg"))
    assert images.debian_keyring() == tmp_path / "k.gpg"


def test_an_unknown_image_component_is_refused(tmp_path):
    with pytest.raises(SandboxError) as e:
        images.build(["postgres"], Path(tmp_path), lambda *_: None)
    assert e.value.exit_code == 2 and "keycloak" in e.value.fix


def test_scenarios_say_which_runtimes_they_run_on():
    assert "container-vs-host-issuer" in runnable("docker") and "container-vs-host-issuer" not in runnable("local")
    assert "clock-skew" in runnable("local") and "clock-skew" not in runnable("docker")
    assert len(runnable("local")) == len(runnable("docker")) == 31


def test_the_local_runtime_follows_new_lines_of_its_log_files(tmp_path):
    import threading

    from sandbox.runtime.local import LocalRuntime

    rt = LocalRuntime(SandboxPaths(tmp_path / "home", tmp_path / "cache"), components=all_components())
    log = rt.log_path("redis")
    log.parent.mkdir(parents=True)
    log.write_text("old line\n")
    lines = rt.follow(["redis", "tyk"])  # tyk has no log yet: left out, not an error

    def append():
        with open(log, "a") as f:
            f.write("new line\n")

    threading.Timer(0.5, append).start()
    assert next(lines) == ("redis", "new line")


def test_the_airflow_lock_pins_what_the_constraints_pin_each_with_hashes():
    from packaging.utils import canonicalize_name

    constraints = {canonicalize_name(n): v for n, v in (line.split("==", 1) for line in
                   versions.airflow_constraints_text().splitlines() if "==" in line and not line.startswith("#"))}
    lock = _pins(versions.airflow_lock_text())
    assert lock["apache-airflow"] == versions.AIRFLOW
    assert {canonicalize_name(p) for p in versions.AIRFLOW_EXTRA_PACKAGES} <= set(lock)
    assert {n: v for n, v in lock.items() if n in constraints and constraints[n] != v} == {}
    assert "--require-hashes" in (images.compose_dir() / "images" / "airflow" / "Dockerfile").read_text()


def test_airflow_installs_the_lock_without_resolving_it_again():
    """A resolution asks the index for an extra's base unpinned (fastapi-cli's uvicorn[standard]): the first uvicorn
    released after the lock made every fresh install fail. Each install takes the lock as is, then `pip check`s it."""
    from sandbox.systems.airflow.component import PIP_LOCKED

    assert {"--require-hashes", "--no-deps"} <= set(PIP_LOCKED)
    dockerfile = "\n".join(line for line in (images.compose_dir() / "images" / "airflow" / "Dockerfile").read_text()
                           .splitlines() if not line.startswith("#"))
    assert dockerfile.count("-r /") == dockerfile.count("--no-deps") == dockerfile.count("pip check") == 2


def test_the_image_lock_adds_the_kubernetes_executor_and_moves_no_pin_of_the_local_install():
    from packaging.utils import canonicalize_name

    base, image = _pins(versions.airflow_lock_text()), _pins(versions.airflow_lock_text(versions.AIRFLOW_IMAGE_LOCK))
    assert {canonicalize_name(p) for p in versions.AIRFLOW_IMAGE_EXTRA_PACKAGES} <= set(image)
    assert set(base) & set(image) == set()  # only additions: the image's Airflow is the local one plus these
    assert "image.lock" in (images.compose_dir() / "images" / "airflow" / "Dockerfile").read_text()


def _pins(lock_text: str) -> dict[str, str]:
    from packaging.utils import canonicalize_name

    pins = {}
    for line in lock_text.splitlines():
        if line.startswith("#"):
            continue
        pin, *hashes = line.split()
        name, version = pin.split("==")
        assert hashes and all(h.startswith("--hash=sha256:") and len(h) == 14 + 64 for h in hashes), line
        pins[canonicalize_name(name)] = version
    return pins
