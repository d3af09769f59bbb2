"""The compose file: pinned to the versions module, loopback-only, healthchecked; read the way Compose reads it."""

from pathlib import Path

import pytest

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths, compose_dir
from sandbox.plan import Addresses, plan
from sandbox.runtime.base import ComponentStatus, Endpoints
from sandbox.runtime.component import ComponentContext
from sandbox.runtime.docker import compose
from sandbox.runtime.docker.runtime import project_name
from sandbox.spec import load
from sandbox.systems import NAMES, all_components
from sandbox.systems.tyk.component import gateway_config

FILE = compose_dir() / "docker-compose.yml"
# what a hand-run `docker compose up` gets: every variable at its default, the secrets' folder given (it has none)
SECRETS = {"SANDBOX_CONTAINER_SECRETS": "/s"}
SERVICES = compose.load(FILE, SECRETS)
COMPONENTS = {c.name: c for c in all_components()}


def component_of(service: str) -> str:
    return next(n for n in NAMES if service == n or service.startswith(n + "-"))


def test_every_service_belongs_to_a_component_and_every_component_has_a_service():
    assert {component_of(s) for s in SERVICES} == set(NAMES)


def test_image_tags_are_the_versions_module():
    for name, svc in SERVICES.items():
        assert svc.image == versions.IMAGES[component_of(name)], name
    assert versions.IMAGES["keycloak"].startswith(f"quay.io/keycloak/keycloak:{versions.KEYCLOAK}@sha256:")
    assert versions.IMAGES["openbao"].startswith(f"openbao/openbao:{versions.OPENBAO}@sha256:")
    assert versions.IMAGES["airflow"] == f"apache/airflow:{versions.AIRFLOW}-python{versions.AIRFLOW_PYTHON}"
    assert versions.IMAGES["tyk"].endswith(":" + versions.TYK)
    assert versions.IMAGES["upstream"].endswith(":" + versions.UPSTREAM)
    assert tuple(map(int, versions.REDIS.split(".")[:2])) >= versions.REDIS_MIN


def test_local_images_carry_the_same_tags():
    for name, ref in versions.IMAGES.items():
        tag = ref.split("@")[0].rsplit(":", 1)[1]
        assert versions.local_image(name) == f"{versions.LOCAL_IMAGE_PREFIX}/{name}:{tag}"


def test_official_images_pinned_by_a_well_formed_digest_where_one_is_known():
    import re

    for name, digest in versions.IMAGE_DIGESTS.items():
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), name
        assert versions.IMAGES[name].endswith("@" + digest), name


def test_every_port_is_published_on_loopback_only():
    published = [(n, p) for n, s in SERVICES.items() for p in s.ports]
    assert published, "nothing published"
    assert {p.host_ip for _, p in published} == {"127.0.0.1"}


def test_published_ports_default_to_the_local_runtimes():
    from sandbox.systems import all_components

    defaults = {v for c in all_components() for v in c.default_ports.values()}
    assert {p.host_port for s in SERVICES.values() for p in s.ports} == defaults


def test_services_with_a_shell_have_healthchecks():
    for name in ("keycloak", "redis", "tyk", "airflow-api-server"):
        assert SERVICES[name].healthcheck and SERVICES[name].healthcheck["test"], name


def test_data_lives_in_named_volumes():
    named = {v.source for s in SERVICES.values() for v in s.volumes if v.named}
    assert {"keycloak-data", "airflow-home"} <= named
    assert named <= set(compose.raw(FILE)["volumes"])


def test_the_issuer_is_fixed_to_the_host_url():
    env = SERVICES["keycloak"].environment
    assert env["KC_HOSTNAME"] == "http://127.0.0.1:28081"
    ported = compose.load(FILE, {**SECRETS, "SANDBOX_KEYCLOAK_HOSTNAME": "http://127.0.0.1:29081"})
    assert ported["keycloak"].environment["KC_HOSTNAME"] == "http://127.0.0.1:29081"


def test_tyk_conf_matches_the_local_gateway_config():
    import json

    mine = json.loads((compose_dir() / "tyk" / "tyk.conf").read_text())
    ctx = ComponentContext(SandboxPaths(Path("/h"), Path("/c")), {"tyk": 1, "redis": 2},
                  {"tyk_secret": "s", "redis_password": "p"})
    local = gateway_config(ctx, Path("/t"))
    # the same settings, save where things are (paths, host, port) and the secrets (from the environment)
    differs = {"listen_address", "listen_port", "secret", "template_path", "app_path", "middleware_path",
               "pid_file_location", "policies", "storage"}
    assert {k: v for k, v in mine.items() if k not in differs} == {k: v for k, v in local.items() if k not in differs}
    assert mine["storage"]["host"] == "redis" and mine["policies"]["policy_source"] == "file"


@pytest.mark.parametrize("text,env,want", [
    ("${A:-x}", {}, "x"), ("${A:-x}", {"A": ""}, "x"), ("${A-x}", {"A": ""}, ""), ("${A}", {"A": "1"}, "1"),
    ("$$HOME", {}, "$HOME"), ("a${B}c", {}, "ac"), ("$A/b", {"A": "z"}, "z/b"),
])
def test_interpolation(text, env, want):
    assert compose.interpolate(text, env) == want


def test_volumes_and_ports_parse():
    assert compose.parse_port("127.0.0.1:1:2") == compose.Port("127.0.0.1", 1, 2)
    with pytest.raises(ValueError):
        compose.parse_port("8080:8080")  # no host IP: would publish on every interface
    v = compose.parse_volume("./tyk:/x:ro", Path("/base"))
    assert (v.source, v.target, v.read_only, v.named) == ("/base/tyk", "/x", True, False)
    assert compose.parse_volume("data:/d", Path("/b")).named
    assert compose.duration_ns("1m30s", 0) == 90 * 10**9 and compose.duration_ns(None, 2) == 2 * 10**9


def test_project_name_is_per_home_and_valid():
    a, b = project_name(Path("/x/My Sandbox")), project_name(Path("/y/My Sandbox"))
    assert a != b and a.startswith("sandbox-my-sandbox-")
    assert all(ch.isalnum() or ch == "-" for ch in a) and a == a.lower()


def endpoints(inner: bool) -> Endpoints:
    def row(name, url):
        return ComponentStatus(name, "running", True, "", url, ports={"tyk": 28082},
                               inner_url=COMPONENTS[name].inner_url() if inner else "")
    return Endpoints.of([row("keycloak", "http://127.0.0.1:28081"), row("tyk", "http://127.0.0.1:28082"),
                         row("upstream", "http://127.0.0.1:28083")])


def test_in_network_addresses_keep_the_hosts_issuer():
    d = plan(load(), Addresses.of(endpoints(inner=True)))
    api, conn = d.apis[0], d.connections[0]
    assert api.issuer.startswith("http://127.0.0.1:28081/realms/")  # what Keycloak's fixed hostname puts in `iss`
    assert api.jwks_url.startswith("http://keycloak:8080/realms/")  # what the gateway's container can reach
    assert api.upstream_url.startswith("http://upstream:8080/")
    assert conn.url.startswith("http://tyk:8080/") and conn.token_url.startswith("http://keycloak:8080/")


def test_local_addresses_are_the_hosts():
    d = plan(load(), Addresses.of(endpoints(inner=False)))
    assert d.apis[0].jwks_url.startswith("http://127.0.0.1:28081/") and d.connections[0].url.startswith(
        "http://127.0.0.1:28082/")


def test_to_host_maps_inner_urls_back():
    e = endpoints(inner=True)
    assert e.to_host("http://keycloak:8080/realms/dev/x") == "http://127.0.0.1:28081/realms/dev/x"
    assert e.to_host("http://tyk:8080") == "http://127.0.0.1:28082"
    assert e.to_host("http://elsewhere/x") == "http://elsewhere/x"


def test_the_secrets_folder_left_unset_stops_the_file_naming_it():
    with pytest.raises(SandboxError, match="The compose file needs SANDBOX_CONTAINER_SECRETS: the folder of"):
        compose.load(FILE, {})
    text = FILE.read_text()
    assert "change-me" not in text and ":-admin}" not in text  # no well-known fallback is left


def test_secrets_are_files_mounted_where_needed_never_environment_variables():
    from sandbox.host.credentials import GENERATORS

    declared = compose.raw(FILE)["secrets"]
    assert set(declared) <= set(GENERATORS)
    assert all(v.read_only and v.source.startswith("/s/") for s in SERVICES.values() for v in s.volumes
               if v.target.startswith("/run/secrets/"))
    # no environment value comes from a variable: what the sandbox sets there is ports, names and paths
    raw_env = [v for s in compose.raw(FILE)["services"].values() for v in (s.get("environment") or {}).values()]
    names = ("PORT", "HOSTNAME", "SANDBOX_AIRFLOW_REALM", "SANDBOX_AIRFLOW_CLIENT_ID", "SANDBOX_AIRFLOW_CALLERS")
    assert not [v for v in raw_env if "${" in str(v) and not any(n in str(v) for n in names)]


# ---- the compose file against what each component says of itself ---------------------------------------------
def mounted_secrets(service: compose.Service) -> set[str]:
    return {v.target.removeprefix("/run/secrets/") for v in service.volumes if v.target.startswith("/run/secrets/")}


@pytest.mark.parametrize("name", NAMES)
def test_each_service_of_a_component_mounts_exactly_the_secrets_it_declares(name):
    comp = COMPONENTS[name]
    services = [s for n, s in SERVICES.items() if component_of(n) == name]
    assert services and all(mounted_secrets(s) == set(comp.secrets) for s in services), name
    assert set(compose.raw(FILE)["secrets"]) == {s for c in COMPONENTS.values() for s in c.secrets}


@pytest.mark.parametrize("name", NAMES)
def test_each_component_answers_inside_the_network_where_it_says(name):
    comp = COMPONENTS[name]
    service = SERVICES[comp.service or comp.name]
    main = next(iter(comp.default_ports))
    (published,) = [p for p in service.ports if p.host_port == comp.default_ports[main]]
    assert published.container_port == comp.inner_port
    assert comp.inner_url().startswith(f"{comp.inner_scheme}://{service.name}:{comp.inner_port}")


def test_airflows_container_environment_is_its_settings_and_its_folders_are_mounted():
    from sandbox.systems.airflow.component import SETTINGS

    ctx = ComponentContext(SandboxPaths(Path("/h"), Path("/c")), {"airflow": 1, "keycloak": 2}, {})
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        env = SERVICES[name].environment
        assert {k: env.get(k) for k in SETTINGS} == SETTINGS, name
        # each secret through its _CMD option, read from the file mounted for it
        assert {env[k].removeprefix("cat /run/secrets/") for k in env if k.endswith("_CMD")} == set(
            COMPONENTS["airflow"].secrets)
    raw = compose.raw(FILE)["x-airflow"]["volumes"]
    for variable in COMPONENTS["airflow"].host_folders(ctx):
        assert [v for v in raw if v.startswith("${" + variable + ":-")], variable
    assert set(COMPONENTS["keycloak"].compose_settings(ctx)) == {"SANDBOX_KEYCLOAK_HOSTNAME"}
    assert "${SANDBOX_KEYCLOAK_HOSTNAME:-" in FILE.read_text()
    # Keycloak's auth manager as the local runtime sets it: every setting, and the realm and callers it reads
    from sandbox.systems.airflow import files as airflow_files

    signed = airflow_files.auth_settings(Path("/nowhere"), "http://kc")
    env = SERVICES["airflow-api-server"].environment
    assert set(signed) <= set(env) and env["AIRFLOW__CORE__AUTH_MANAGER"] == signed["AIRFLOW__CORE__AUTH_MANAGER"]
    for variable in COMPONENTS["airflow"].compose_settings(ctx):
        assert "${" + variable + ":-" in FILE.read_text(), variable


def test_the_runtimes_compose_variables_come_from_the_components(tmp_path):
    from sandbox.runtime.docker.runtime import DockerRuntime
    from sandbox.runtime.state import State

    rt = DockerRuntime(SandboxPaths(tmp_path / "home", tmp_path / "cache"), components=all_components())
    got = rt._variables(State(runtime="docker", ports={"tyk": 29082}, images={"tyk": "t:1"}))
    assert got["SANDBOX_TYK_PORT"] == "29082" and got["SANDBOX_REDIS_PORT"] == "28379"
    assert got["SANDBOX_KEYCLOAK_HOSTNAME"] == "http://127.0.0.1:28081" and got["SANDBOX_IMAGE_TYK"] == "t:1"
    assert got["SANDBOX_DAGS"] == str(tmp_path / "home" / "dags")
    variables = {m.group(1) for m in compose._VAR.finditer(FILE.read_text()) if m.group(1)}
    assert set(got) - {"SANDBOX_IMAGE_TYK"} <= variables  # nothing made up that the file does not read
    assert not [v for v in variables - set(got) if not v.startswith("SANDBOX_IMAGE_")], "a variable nobody sets"


def test_every_service_runs_as_a_user_other_than_root():
    for name, svc in SERVICES.items():
        assert svc.user and svc.user.split(":")[0] not in ("0", "root"), name
    assert SERVICES["airflow-scheduler"].user == "50000:0"  # the image's airflow user unless the sandbox says
    assert compose.load(FILE, {**SECRETS, "SANDBOX_AIRFLOW_UID": "1000"})["airflow-triggerer"].user == "1000:0"


def test_entrypoints_and_secrets_parse():
    kc = SERVICES["keycloak"]
    assert kc.entrypoint[:2] == ["bash", "-c"] and "$(cat /run/secrets/keycloak_admin_password)" in kc.entrypoint[2]
    assert kc.command[0] == "start" and SERVICES["upstream"].entrypoint is None


def test_keycloak_is_built_with_the_same_options_everywhere():
    # the local build, the local image and compose's start must agree: client secret rotation is one of them
    from sandbox.systems.keycloak.component import BUILD_OPTIONS
    command = SERVICES["keycloak"].command
    dockerfile = (compose_dir() / "images" / "keycloak" / "Dockerfile").read_text()
    assert "--features=client-secret-rotation" in BUILD_OPTIONS
    for option in BUILD_OPTIONS:
        assert option in command and option in dockerfile, option
