"""The real stack, checked with each service's own client."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys

import psutil
import pytest
import redis
import requests
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

from tests.integration.conftest import TEST_PORTS, sandbox

pytestmark = pytest.mark.integration
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def test_keycloak_admin_login_and_stable_issuer(stack):
    kc = stack.status()["keycloak"]
    assert kc["state"] == "running" and kc["healthy"]
    admin = KeycloakAdmin(connection=KeycloakOpenIDConnection(
        server_url=kc["url"], username="admin", password=kc["secret"], realm_name="master", verify=True))
    assert "master" in [r["realm"] for r in admin.get_realms()]
    # The issuer is fixed: asking through another host name must not change it.
    for host in ("127.0.0.1", "localhost"):
        doc = requests.get(f"http://{host}:{TEST_PORTS['keycloak']}/realms/master/.well-known/openid-configuration",
                           timeout=10).json()
        assert doc["issuer"] == f"http://127.0.0.1:{TEST_PORTS['keycloak']}/realms/master"


def test_redis_ping_with_its_password(stack):
    r = stack.status()["redis"]
    client = redis.Redis(host="127.0.0.1", port=TEST_PORTS["redis"], password=r["secret"])
    assert client.ping() is True
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=TEST_PORTS["redis"]).ping()


def test_airflow_health_and_authenticated_call(stack):
    af = stack.status()["airflow"]
    health = requests.get(af["url"] + "/api/v2/monitor/health", timeout=10).json()
    assert {health[k]["status"] for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {"healthy"}
    # as the Keycloak provider's docs show a machine caller: its Keycloak token, exchanged with the jwt-bearer grant
    kc = requests.post(af["urls"]["sign-in"] + "/protocol/openid-connect/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": af["username"], "client_secret": af["secret"],
        "scope": "openid"}).json()["access_token"]
    r = requests.post(af["url"] + "/auth/token", timeout=10, json={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": kc})
    assert r.status_code == 201, r.text
    token = r.json()["access_token"]
    assert requests.get(af["url"] + "/api/v2/dags", timeout=10).status_code == 401
    # Airflow takes its own tokens only: a Keycloak token as the bearer is refused (Airflow 3.3.2 says 403)
    assert requests.get(af["url"] + "/api/v2/dags", headers={"Authorization": f"Bearer {kc}"},
                        timeout=10).status_code == 403
    r = requests.get(af["url"] + "/api/v2/version", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200 and r.json()["version"] == "3.3.2"


def test_upstream_echoes(stack):
    up = stack.status()["upstream"]
    echo = requests.get(up["url"] + "/anything/hello", headers={"X-Probe": "42"}, timeout=10).json()
    assert echo["url"].endswith("/anything/hello") and echo["headers"]["X-Probe"] == ["42"]


def sandbox_pids(stack) -> set[int]:
    pids = set()
    for row in stack.status().values():
        for pid in row["pids"]:
            p = psutil.Process(pid)
            pids |= {pid, *(c.pid for c in p.children(recursive=True))}
    return pids


def test_every_listener_is_on_loopback(stack):
    pids = sandbox_pids(stack)
    listeners = [(c.laddr.ip, c.laddr.port, c.pid) for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.pid in pids]
    ports = {port for _, port, _ in listeners}
    expected = {p for n, p in TEST_PORTS.items() if not any(n.startswith(w) for w in stack.without)}
    assert expected <= ports
    assert [x for x in listeners if x[0] not in LOOPBACK] == []


def test_up_again_is_a_no_op(stack):
    before = {n: r["pids"] for n, r in stack.status().items()}
    out = json.loads(stack.cli(*stack.up_args(), "--no-smoke").stdout)  # the smoke's own tests are elsewhere
    assert {c["name"]: c["action"] for c in out["components"]} == {n: "already-running" for n in before}
    assert {n: r["pids"] for n, r in stack.status().items()} == before


def test_a_spec_given_to_up_is_the_one_every_later_command_uses(stack, tmp_path):
    from sandbox.spec import fixture_path

    bundled = fixture_path("sandbox.yaml").resolve()
    mine = tmp_path / "team.yaml"  # the same grants: the stack is not changed, only which file it runs
    mine.write_text(bundled.read_text())
    try:
        stack.cli("up", "--spec", str(mine), "--no-smoke", *stack.up_args()[3:])
        assert f"Spec: {mine}" in " ".join(stack.cli("status").stdout.split())
        for args in (("token", "airflow"), ("call", "airflow", "orders"), ("smoke",), ("repro", "list")):
            done = stack.cli(*args)
            assert "Using" not in done.stderr, (args, done.stderr)  # no flag: the sandbox's own, nothing to say
        other = stack.cli("token", "airflow", "--spec", str(bundled))
        assert f"Using {bundled}, not {mine}, which this sandbox runs" in " ".join(other.stderr.split()), other.stderr
    finally:  # back to the bundled spec (the page follows the spec `up` names), and no record of it
        stack.cli("up", "--spec", str(bundled), "--no-smoke", *stack.up_args()[3:])
        stack.paths.spec_record.unlink(missing_ok=True)


def test_global_options_go_before_or_after_the_command_on_the_running_stack(stack):
    env = {k: v for k, v in stack.env.items() if k != "SANDBOX_HOME"}  # the home only from the option
    for args in (("status", "--home", str(stack.home), "-o", "json"), ("-o", "json", "--home", str(stack.home),
                                                                       "status")):
        rows = json.loads(sandbox(*args, env=env).stdout)
        assert {r["name"] for r in rows if r["healthy"]} >= {"keycloak", "tyk", "airflow", "redis"}, (args, rows)


def test_a_second_sandbox_with_a_port_offset_runs_beside_the_first(stack, tmp_path):
    from sandbox.host.ports import is_free
    from sandbox.runtime.skeleton import HOST_PORTS
    from sandbox.systems import all_components

    env = {**stack.env, "SANDBOX_HOME": str(tmp_path / "second"), "SANDBOX_RUNTIME": "local"}
    env.pop("SANDBOX_PORTS", None)
    defaults = {**{k: v for c in all_components() for k, v in c.default_ports.items()}, **HOST_PORTS}
    light = ["--without", "keycloak", "--without", "tyk", "--without", "airflow"]  # enough to show the ports
    try:
        sandbox("up", "--no-apply", "--port-offset", "2000", *light, env=env)
        rows = {r["name"]: r for r in json.loads(sandbox("status", "-o", "json", env=env).stdout)}
        for name in ("redis", "openbao", "upstream"):
            assert rows[name]["healthy"], rows[name]
            assert rows[name]["ports"] == {k: defaults[k] + 2000 for k in rows[name]["ports"]}, rows[name]
        assert all(r["healthy"] for r in stack.status().values())  # the first goes on as it was
        # remembered: a later `up` of the second sandbox keeps them, with no flag
        again = json.loads(sandbox("up", "--no-apply", "-o", "json", *light, env=env).stdout)
        assert {r["name"]: r["ports"] for r in again["status"] if r["name"] == "redis"} == {
            "redis": {"redis": defaults["redis"] + 2000}}
    finally:
        sandbox("down", env=env, check=False)
    assert all(is_free(defaults[n] + 2000) for n in ("redis", "openbao", "upstream"))


def test_killed_component_is_detected_and_only_it_restarts(stack):
    before = stack.status()
    # Kill one of Airflow's four processes: the component counts as crashed as a whole.
    # found as `pgrep triggerer` would: by its name (a forked service's command line is its launcher's), or by
    # its own command (one started alone)
    triggerer = next(pid for pid in before["airflow"]["pids"] if psutil.Process(pid).name() == "triggerer"
                     or psutil.Process(pid).cmdline()[1:3] == ["-m", "sandbox_triggerer"])
    os.killpg(triggerer, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(triggerer)], timeout=10) if psutil.pid_exists(triggerer) else None
    after_kill = stack.status()["airflow"]
    assert after_kill["state"] == "crashed" and "airflow-triggerer" in after_kill["detail"]
    out = json.loads(stack.cli(*stack.up_args()).stdout)
    actions = {c["name"]: c["action"] for c in out["components"]}
    assert actions == {"keycloak": "already-running", "redis": "already-running", "tyk": "already-running",
                       "openbao": "already-running", "airflow": "restarted", "upstream": "already-running",
                       "ui": "already-running"}
    now = stack.status()
    for name in ("keycloak", "redis", "tyk", "openbao", "upstream"):
        assert now[name]["pids"] == before[name]["pids"]
    assert now["airflow"]["healthy"]


def test_taken_port_is_named_with_its_holder(stack, tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    env = {**stack.env, "SANDBOX_HOME": str(tmp_path / "other"),
           "SANDBOX_PORTS": f"upstream={port},redis=29679"}
    try:
        p = sandbox("up", "--without", "keycloak", "--without", "airflow", "--without", "tyk", "--without", "openbao",
                    env=env, check=False)
    finally:
        holder.close()
    assert p.returncode == 1
    assert f"Port {port} (upstream) is taken by pid {os.getpid()} (" in p.stderr
    assert "--port upstream=<free port>" in p.stderr
    assert "Traceback" not in p.stderr
    assert all(r["healthy"] for r in stack.status().values() if r["state"] == "running")


def test_missing_java_is_named_before_anything_starts(stack, tmp_path):
    no_java_path = ":".join(d for d in os.environ["PATH"].split(":")
                            if not os.path.exists(os.path.join(d, "java")))
    env = {**stack.env, "SANDBOX_HOME": str(tmp_path / "nojava"), "SANDBOX_JDK_DIRS": "", "PATH": no_java_path,
           "SANDBOX_PORTS": "keycloak=29181,keycloak-management=29191,redis=29179,upstream=29183"}
    env.pop("JAVA_HOME", None)
    p = sandbox("up", "--without", "airflow", "--without", "tyk", "--without", "openbao", env=env, check=False)
    assert p.returncode == 1
    assert "Keycloak 26.7.3 needs Java 21 or newer, and none was found" in p.stderr
    assert "install a JDK 21+" in p.stderr
    # nothing of that sandbox started; the running stack is unharmed
    st = json.loads(sandbox("status", "-o", "json", env=env).stdout)
    assert {r["state"] for r in st} <= {"stopped", "disabled"}
    assert all(r["healthy"] for r in stack.status().values() if r["state"] == "running")


def test_logs_show_a_component(stack):
    p = stack.cli("logs", "redis", "-n", "50")
    assert "=== sandbox: starting redis-server" in p.stdout and "Ready to accept connections" in p.stdout
    p = stack.cli("logs", "nope", check=False)
    assert p.returncode == 2 and "Unknown component 'nope'" in p.stderr
    page = stack.cli("logs", "ui", "-n", "200")  # the page's own log, on the host whatever the runtime
    assert page.stdout.strip() and page.stdout.strip() in stack.paths.log("ui").read_text()


def test_status_masks_secrets_unless_asked(stack):
    masked = json.loads(stack.cli("status", "-o", "json").stdout)
    shown = stack.status()
    for row in masked:  # masked: no value at all, and a marker that says so
        assert row["secret"] is None and row["masked"] is bool(shown[row["name"]]["secret"]), row
    assert any(row["masked"] for row in masked)
    env_lines = stack.cli("status", "-o", "env").stdout
    assert f"SANDBOX_AIRFLOW_URL=http://127.0.0.1:{TEST_PORTS['airflow']}" in env_lines
    assert shown["airflow"]["secret"] not in env_lines


def test_cli_entry_point_runs(stack):
    # the console script, as a user types it
    exe = os.path.join(os.path.dirname(sys.executable), "sandbox")
    p = subprocess.run([exe, "versions"], capture_output=True, text=True, env=stack.env, timeout=60)
    assert p.returncode == 0 and "3.3.2" in p.stdout


def test_no_secret_on_a_command_line_or_in_a_log(stack):
    secrets = json.loads((stack.home / "secrets.json").read_text())
    for pid in sandbox_pids(stack):
        try:
            cmdline = " ".join(psutil.Process(pid).cmdline())
        except psutil.NoSuchProcess:  # ended since it was listed, or a zombie not yet reaped: no command line left
            continue
        assert not [k for k, v in secrets.items() if v in cmdline], f"secret on the command line of {cmdline[:80]}"
    for log in (stack.home / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert not [k for k, v in secrets.items() if v in text], f"secret in {log.name}"
        assert oct(log.stat().st_mode & 0o777) == "0o600"


def loose_entries(home) -> list[str]:
    """Whatever under `home` another local user could read or enter (links are not followed)."""
    loose = []
    for root, dirs, files in os.walk(home):
        for name in [*dirs, *files]:
            st = os.lstat(os.path.join(root, name))
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
                loose.append(f"{oct(stat.S_IMODE(st.st_mode))} {os.path.relpath(os.path.join(root, name), home)}")
    return loose


def test_the_home_is_private_to_its_user(stack):
    # a file left readable by others, as a home made by an older version would have it, is repaired by `up`
    leak = stack.home / "data" / "left-readable.txt"
    leak.write_text("x")
    leak.chmod(0o644)
    try:
        stack.cli(*stack.up_args())
        assert stat.S_IMODE(stack.home.stat().st_mode) == 0o700
        assert loose_entries(stack.home) == []
        # and what the components write from now on is private too: each process runs with umask 077
        umasks = {}
        for pid in sandbox_pids(stack):
            try:
                with open(f"/proc/{pid}/status") as f:
                    umasks[pid] = next((line.split()[1] for line in f if line.startswith("Umask:")), None)
            except FileNotFoundError:  # a short-lived child that ended meanwhile
                continue
        live = {pid: u for pid, u in umasks.items() if u is not None}  # a zombie has no umask left
        assert live and set(live.values()) == {"0077"}, live
    finally:
        leak.unlink()
