import os
import socket

import pytest

from sandbox.errors import SandboxError
from sandbox.ports import holder, is_free
from sandbox.runtime.local import LocalRuntime, parse_port_overrides
from sandbox.state import State


@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def test_taken_port_and_its_holder(listener):
    assert not is_free(listener)
    assert holder(listener).startswith(f"pid {os.getpid()} (")


def test_free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    assert is_free(port)


def test_parse_overrides():
    assert parse_port_overrides("keycloak=1,airflow = 2") == {"keycloak": 1, "airflow": 2}
    assert parse_port_overrides("") == {}
    with pytest.raises(SandboxError, match="is not NAME=PORT"):
        parse_port_overrides("keycloak:1")


def test_resolve_ports_layers(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_PORTS", "redis=30001")
    rt = LocalRuntime(home=tmp_path, cache=tmp_path)
    ports = rt.resolve_ports(State(ports={"tyk": 30002}), {"airflow": 30003})
    assert ports["redis"] == 30001 and ports["tyk"] == 30002 and ports["airflow"] == 30003
    assert ports["keycloak"] == rt.default_ports()["keycloak"]


@pytest.mark.parametrize("override,message", [
    ({"nope": 1}, "Unknown port name 'nope'"),
    ({"redis": 70000}, "Port 70000 for redis is out of range"),
    ({"redis": 28080}, "Ports of redis and airflow are both 28080"),
])
def test_resolve_ports_rejects(tmp_path, monkeypatch, override, message):
    monkeypatch.delenv("SANDBOX_PORTS", raising=False)
    with pytest.raises(SandboxError, match=message):
        LocalRuntime(home=tmp_path, cache=tmp_path).resolve_ports(State(), override)


def test_holder_of_a_client_connection_port(listener):
    client = socket.create_connection(("127.0.0.1", listener))
    try:
        port = client.getsockname()[1]
        assert holder(port) == f"pid {os.getpid()} ({__import__('psutil').Process().name()}), a ESTABLISHED connection"
    finally:
        client.close()
