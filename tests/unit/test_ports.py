import os
import socket

import pytest

from sandbox.errors import SandboxError
from sandbox.host.ports import holder, is_free, parse_overrides, resolve


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
    assert parse_overrides("keycloak=1,airflow = 2") == {"keycloak": 1, "airflow": 2}
    assert parse_overrides("") == {}
    with pytest.raises(SandboxError, match="is not NAME=PORT"):
        parse_overrides("keycloak:1")


DEFAULTS = {"keycloak": 28081, "redis": 28379, "tyk": 28082, "airflow": 28080}


def test_resolve_ports_layers():
    # defaults, then what the sandbox remembers, then what was asked for now (SANDBOX_PORTS, then --port)
    ports = resolve(DEFAULTS, {"tyk": 30002, "redis": 30009}, {"redis": 30001, "airflow": 30003})
    assert ports == {"keycloak": 28081, "redis": 30001, "tyk": 30002, "airflow": 30003}


@pytest.mark.parametrize("override,message", [
    ({"nope": 1}, "Unknown port name 'nope'"),
    ({"redis": 70000}, "Port 70000 for redis is out of range"),
    ({"redis": 28080}, "Ports of redis and airflow are both 28080"),
])
def test_resolve_ports_rejects(override, message):
    with pytest.raises(SandboxError, match=message):
        resolve(DEFAULTS, {}, override)


def test_holder_of_a_client_connection_port(listener):
    client = socket.create_connection(("127.0.0.1", listener))
    try:
        port = client.getsockname()[1]
        assert holder(port) == f"pid {os.getpid()} ({__import__('psutil').Process().name()}), a ESTABLISHED connection"
    finally:
        client.close()


def test_every_taken_port_is_named_at_once_with_a_fix_that_moves_the_whole_sandbox():
    import socket

    from sandbox.runtime.startup import check_ports_free
    from sandbox.systems import all_components

    components = {c.name: c for c in all_components()}
    held = [socket.socket(), socket.socket()]
    try:
        for s in held:
            s.bind(("127.0.0.1", 0))
            s.listen()
        ports = {"redis": held[0].getsockname()[1], "upstream": held[1].getsockname()[1]}
        with pytest.raises(SandboxError) as e:
            check_ports_free(components, ["redis", "upstream"], ports)
        assert e.value.message.startswith("2 ports are taken: ")
        assert f"{ports['redis']} (redis) by pid {os.getpid()}" in e.value.message
        assert f"{ports['upstream']} (upstream) by pid {os.getpid()}" in e.value.message
        assert "--port-offset" in e.value.fix
    finally:
        for s in held:
            s.close()
