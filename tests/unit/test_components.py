"""Pure logic of the components: configs, arguments and health verdicts, from plain data."""

from pathlib import Path

from sandbox.host.credentials import GENERATORS
from sandbox.paths import SandboxPaths
from sandbox.runtime.component import ComponentContext
from sandbox.runtime.local import LocalRuntime
from sandbox.systems import NAMES, all_components
from sandbox.systems.airflow.component import Airflow, health_complaint
from sandbox.systems.keycloak.component import Keycloak
from sandbox.systems.tyk.component import gateway_config, hello_complaint


def ctx(tmp_path: Path) -> ComponentContext:
    paths = SandboxPaths(tmp_path, tmp_path / "cache")
    ports = LocalRuntime(paths, components=all_components()).default_ports()
    return ComponentContext(paths, ports, {k: f"s-{k}" for k in GENERATORS})


def test_component_names_and_unique_default_ports():
    assert NAMES == ("keycloak", "redis", "tyk", "openbao", "airflow", "upstream")
    ports = [p for c in all_components() for p in c.default_ports.values()]
    assert len(ports) == len(set(ports))


def test_airflow_health_verdict():
    healthy = {k: {"status": "healthy"} for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")}
    assert health_complaint(healthy) is None
    sick = {**healthy, "triggerer": {"status": "unhealthy"}}
    del sick["dag_processor"]
    assert health_complaint(sick) == "airflow not healthy: triggerer=unhealthy, dag_processor=missing"


def test_airflow_env_pins_keys_and_execution_api_port(tmp_path):
    c = ctx(tmp_path)
    env = {p.name: p.env for p in Airflow().processes(c)}
    assert set(env) == {"airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-api-server"}
    e = env["airflow-api-server"]
    assert e["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:28080/execution/"
    assert e["AIRFLOW__API__HOST"] == "127.0.0.1" and e["AIRFLOW__API__PORT"] == "28080"
    assert e["AIRFLOW__CORE__FERNET_KEY"] == "s-airflow_fernet_key"
    assert e["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    cmds = {p.name: p.cmd for p in Airflow().processes(c)}
    # no log server on 0.0.0.0
    assert "--skip-serve-logs" in cmds["airflow-scheduler"] and "--skip-serve-logs" in cmds["airflow-triggerer"]


def test_keycloak_fixed_hostname_loopback_and_private_db(tmp_path, monkeypatch):
    monkeypatch.setattr("sandbox.systems.keycloak.component.find_jdk",
                        lambda *a: type("J", (), {"home": Path("/jdk"), "major": 25})())
    (spec,) = Keycloak().processes(ctx(tmp_path))
    assert spec.env["KC_HOSTNAME"] == "http://127.0.0.1:28081" and spec.env["KC_HOSTNAME_STRICT"] == "false"
    assert "--http-host=127.0.0.1" in spec.cmd and "--cache=local" in spec.cmd
    assert spec.env["JAVA_OPTS_APPEND"].startswith(f"-Dkc.db-url-path={tmp_path / 'data' / 'keycloak'} ")
    assert spec.env["KC_BOOTSTRAP_ADMIN_PASSWORD"] == "s-keycloak_admin_password"


def test_tyk_config(tmp_path):
    conf = gateway_config(ctx(tmp_path), Path("/tyk/templates"))
    assert conf["listen_address"] == "127.0.0.1" and conf["listen_port"] == 28082
    assert conf["template_path"] == "/tyk/templates"
    assert conf["storage"]["port"] == 28379 and conf["storage"]["password"] == "s-redis_password"
    assert conf["policies"]["policy_source"] == "file"
    assert conf["analytics_config"]["storage_expiration_time"] >= 3600
    assert conf["liveness_check"] == {"check_duration": 1_000_000_000}  # healthy ~1 s after start, not ~11 s


def test_tyk_hello_verdict():
    assert hello_complaint({"status": "pass", "details": {"redis": {"status": "pass"}}}) is None
    assert hello_complaint({"status": "warn", "details": {"redis": {"status": "fail"}}}) == \
        "tyk /hello: status=warn, redis=fail"


def test_the_vault_runs_the_same_configuration_on_either_runtime():
    import json

    from sandbox.paths import compose_dir
    from sandbox.systems.openbao.component import server_config

    in_container = json.loads((compose_dir() / "openbao" / "openbao.json").read_text())
    assert in_container == server_config("0.0.0.0:8200", "/openbao/file", "/run/secrets/openbao_unseal_key",
                                         "http://openbao:8200")
    local = server_config("127.0.0.1:1", "/s", "/k", "http://127.0.0.1:1")
    # a real server: storage on disk, auto-unsealed by the static key, no UI, and no TLS only on loopback
    assert "file" in local["storage"] and "static" in local["seal"] and local["ui"] is False
    assert local["listener"][0]["tcp"]["address"].startswith("127.0.0.1:")


def test_a_sealed_vault_is_not_healthy_and_an_uninitialised_one_may_start(monkeypatch):
    from sandbox.systems.openbao import component as openbao
    from sandbox.systems.openbao.client import Vault

    for code, body, ok, detail in ((200, {}, True, "unsealed"), (501, {}, True, "not initialised yet"),
                                   (503, {"sealed": True}, False, "OpenBao is sealed")):
        monkeypatch.setattr(Vault, "health", lambda self, c=code, b=body: (c, b))
        res = openbao.health_of("http://127.0.0.1:1")()
        assert (res.ok, res.detail) == (ok, detail)


def test_a_renewed_master_realm_key_is_new_and_shaped_as_keycloak_imports_it():
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from sandbox.systems.keycloak.realm_keys import rsa_key_config

    one, two = rsa_key_config("master"), rsa_key_config("master")
    key = serialization.load_der_private_key(base64.b64decode(one["privateKey"][0]), None)  # PKCS#8 DER
    cert = x509.load_der_x509_certificate(base64.b64decode(one["certificate"][0]))
    assert key.key_size == 2048 and cert.subject.rfc4514_string() == "CN=master"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert one["privateKey"] != two["privateKey"]
