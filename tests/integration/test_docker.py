"""The docker runtime on a stack of its own (own home, own ports, images `sandbox images build` made): the same
smoke, repro catalogue, doctor and plugin as the local runtime; loopback-only ports; `down` leaves nothing.

CI starts a Docker engine and builds the images before the tests (`.ci/run`); a machine without an engine fails
here with the sentence that says how to start one (nothing is skipped).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import psutil
import pytest

from sandbox import versions
from sandbox.host import engine
from sandbox.paths import SandboxPaths, compose_dir
from sandbox.runtime.docker.runtime import PROJECT_LABEL, project_name
from sandbox.scenarios import CATALOGUE
from sandbox.scenarios.repro import runnable
from sandbox.spec import load as load_spec
from sandbox.stack.factory import make_runtime
from tests.cli_checks import logs_follow_the_upstream
from tests.integration.conftest import sandbox

pytestmark = pytest.mark.integration
PORTS = {"keycloak": 29781, "keycloak-management": 29791, "redis": 29779, "tyk": 29782, "airflow": 29780,
         "upstream": 29783, "openbao": 29784, "ui": 29790}
# On docker, the scenarios injected through the runtime: a process restarted with another environment, files in the
# workers' folders, the vault's container. Those injected through Keycloak's, Tyk's and Airflow's APIs make the same
# calls on every runtime and run on the local stack (test_repro.py); the whole docker catalogue, three times, is
# bench/bench_repro.py --runtime docker --runs 3.
THROUGH_RUNTIME = {f"sandbox.scenarios.{m}" for m in ("worker_env", "triggerer", "vault", "header_style",
                                                       "container_issuer")}
# and, of the callers' way into Airflow, the one that restarts Airflow's API server with another environment
DOCKER = [n for n in runnable("docker") if type(CATALOGUE[n]).__module__ in THROUGH_RUNTIME
          or n == "federation-not-allowlisted"]


class DockerStack:
    def __init__(self, home):
        self.home = home
        self.env = {**os.environ, "SANDBOX_HOME": str(home), "SANDBOX_RUNTIME": "docker",
                    "SANDBOX_PORTS": ",".join(f"{k}={v}" for k, v in PORTS.items())}
        self.env.pop("SANDBOX_WITHOUT", None)
        self.project = project_name(home)
        self.up: dict = {}

    def cli(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        return sandbox(*args, env=self.env, check=check, timeout=timeout)

    def containers(self, all_: bool = True) -> list:
        return engine.client().containers.list(all=all_, filters={"label": f"{PROJECT_LABEL}={self.project}"})


@pytest.fixture(scope="module")
def dstack(tmp_path_factory):
    engine.client()  # no engine: fails here with how to start one
    st = DockerStack(tmp_path_factory.mktemp("docker") / "home")
    try:
        st.up = json.loads(st.cli("up", "--runtime", "docker", "--images", "local", "-o", "json").stdout)
        yield st
    finally:
        st.cli("down", "--volumes", check=False)


def test_up_starts_every_component_in_containers_and_smokes_green(dstack):
    assert {c["name"]: c["action"] for c in dstack.up["components"]} == {
        n: "started" for n in ("keycloak", "redis", "tyk", "openbao", "airflow", "upstream", "ui")}
    assert dstack.up["smoke"]["ok"], dstack.up["smoke"]
    rows = json.loads(dstack.cli("status", "-o", "json").stdout)
    assert {r["runtime"] for r in rows} == {"docker"} and all(r["healthy"] for r in rows), rows
    images = {c.labels["com.docker.compose.service"]: c.image.tags[0] for c in dstack.containers(all_=False)}
    assert images["keycloak"] == versions.local_image("keycloak")
    assert images["airflow-api-server"] == versions.local_image("airflow")
    # made from the image's ID (what `up` checked), not from a tag a rebuild or a pull could move meanwhile
    made_from = {c.labels["com.docker.compose.service"]: c.attrs["Config"]["Image"] for c in dstack.containers()}
    assert made_from["keycloak"] == engine.client().images.get(versions.local_image("keycloak")).id, made_from
    assert all(ref.startswith("sha256:") for ref in made_from.values()), made_from
    # Airflow's four services in one container, from one import (the compose file's commands, forked)
    (airflow,) = [c for c in dstack.containers(all_=False) if c.labels["com.docker.compose.service"].startswith(
        "airflow-")]
    assert airflow.labels["sandbox.units"].split(",") == [
        "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]
    top = " ".join(p[-1] for p in airflow.top(ps_args="-o pid,args")["Processes"])
    assert "sandbox_services" in top, top


def test_a_second_up_changes_nothing(dstack):
    again = json.loads(dstack.cli("up", "-o", "json", "--no-smoke").stdout)
    assert {c["action"] for c in again["components"]} == {"already-running"}
    assert systems_changed(again["apply"]["changes"]) == []


def systems_changed(changes: list[dict]) -> list[dict]:
    return [c for c in changes if c["system"] in ("keycloak", "tyk", "airflow")]


def test_nothing_is_published_beyond_loopback(dstack):
    bindings = [(c.name, b) for c in dstack.containers(all_=False)
                for spec in (c.attrs["NetworkSettings"]["Ports"] or {}).values() for b in (spec or [])]
    assert bindings, "nothing published"
    assert {b["HostIp"] for _, b in bindings} == {"127.0.0.1"}, bindings
    assert {int(b["HostPort"]) for _, b in bindings} == {v for k, v in PORTS.items() if k != "ui"}
    # the sandbox's page is a process of the host, on loopback too
    (pid,) = {r["name"]: r for r in json.loads(dstack.cli("status", "-o", "json").stdout)}["ui"]["pids"]
    listening = [c.laddr for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", PORTS["ui"])], listening


def test_the_compose_file_validates_and_its_secrets_folder_left_unset_stops_it(dstack):
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (apt-get install docker-compose) validates the compose file"
    variables = make_runtime(SandboxPaths.resolve(dstack.home), name="docker").compose_variables()

    def config(env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run([exe, "-f", str(compose_dir() / "docker-compose.yml"), "-p", dstack.project, "config",
                               "-q"], capture_output=True, text=True, env=env, timeout=60)

    p = config({**dstack.env, **variables})
    assert p.returncode == 0, p.stderr
    p = config({**dstack.env, **{k: v for k, v in variables.items() if k != "SANDBOX_CONTAINER_SECRETS"}})
    assert p.returncode != 0 and "SANDBOX_CONTAINER_SECRETS" in p.stderr, p.stderr


def test_no_container_shows_a_secret_or_runs_as_root(dstack):
    secrets = [v for v in json.loads((dstack.home / "secrets.json").read_text()).values() if len(v) >= 8]
    running = dstack.containers(all_=False)
    assert len(running) >= 6, [c.name for c in running]
    for c in running:
        inspected = json.dumps(c.attrs)
        assert not [s for s in secrets if s in inspected], f"{c.name}: docker inspect shows a secret"
        uids = psutil.Process(c.attrs["State"]["Pid"]).uids()
        assert 0 not in (uids.real, uids.effective), f"{c.name} runs as root ({c.attrs['Config']['User']!r})"
        # what the process was given stays where only it reads: not in `docker inspect`, not on its command line
        assert not [s for s in secrets if s in " ".join(psutil.Process(c.attrs["State"]["Pid"]).cmdline())], c.name


def test_compose_sees_the_runtimes_containers_as_its_project(dstack):
    variables = make_runtime(SandboxPaths.resolve(dstack.home), name="docker").compose_variables()
    p = subprocess.run(["docker-compose", "-f", str(compose_dir() / "docker-compose.yml"), "-p", dstack.project, "ps",
                        "--services", "--filter", "status=running"],
                       capture_output=True, text=True, env={**dstack.env, **variables}, timeout=60)
    assert p.returncode == 0, p.stderr
    assert {"keycloak", "redis", "tyk", "upstream", "openbao", "airflow-api-server"} <= set(p.stdout.split())


def test_doctor_checks_from_the_host_what_tasks_see_inside(dstack):
    p = dstack.cli("doctor", "-o", "json", check=False)
    diags = json.loads(p.stdout)
    assert p.returncode == 0, diags
    assert {h["name"] for d in diags for h in d["hops"] if h["ok"]} == {
        "connection", "secret", "token", "claims", "gateway", "upstream"}


@pytest.mark.parametrize("name", DOCKER)
def test_each_scenario_reproduces_on_docker(dstack, name):
    p = dstack.cli("repro", name, "-o", "json", check=False, timeout=300)
    (r,) = json.loads(p.stdout)
    expected, seen = r["expected"], r["observed"]
    assert (seen["hop"], seen["status"]) == (expected["hop"], expected["status"]), r
    assert expected["words"] in seen["words"] and expected["log"] in seen["log"], r
    assert p.returncode == 0 and r["matched"] and r["green_after"], r


def test_the_issuer_scenario_is_named_by_doctor_and_compare_until_reverted(dstack, tmp_path):
    sc = CATALOGUE["container-vs-host-issuer"].on(load_spec())  # bound to the connection it breaks in the bundled spec
    green = tmp_path / "green.json"
    dstack.cli("snapshot", str(green))
    try:
        p = dstack.cli("repro", sc.name, "--keep", "-o", "json", check=False, timeout=300)
        assert p.returncode == 0, p.stderr
        p = dstack.cli("doctor", "-o", "json", "--connection", sc.connection, check=False)
        (d,) = json.loads(p.stdout)
        assert p.returncode == 1 and sc.doctor_says in d["verdict"], d["verdict"]
        assert "iss http://keycloak:8080/realms/dev" in d["verdict"]
        p = dstack.cli("compare", str(green), "-o", "json", check=False)  # the green snapshot against now
        c = json.loads(p.stdout)
        named = {e["connection"]: e["scenario"] for e in c["explained"]}
        assert p.returncode == 1 and named.get(sc.connection) == sc.name, (c["explained"], c["differences"])
    finally:
        dstack.cli("repro", "revert")
    assert dstack.cli("doctor", "--connection", sc.connection, check=False).returncode == 0


def test_rotate_swaps_every_client_secret_inside_the_containers_and_the_smoke_stays_green(dstack):
    """`sandbox rotate` on the docker runtime: Airflow's containers read the new secret from the vault with no
    restart; the old one is refused by Keycloak afterwards."""
    import requests

    from sandbox.plan import token_url

    paths = SandboxPaths.resolve(dstack.home)
    old = json.loads(paths.client_secrets.read_text())
    out = json.loads(dstack.cli("rotate", "-o", "json", timeout=300).stdout)
    assert {r["name"] for r in out if r["kind"] == "client-secret"} == set(old), out
    new = json.loads(paths.client_secrets.read_text())
    keycloak = f"http://127.0.0.1:{PORTS['keycloak']}"
    for name, secret in old.items():
        realm, client = name.split("/")
        assert new[name] != secret
        r = requests.post(token_url(keycloak, realm), data={"grant_type": "client_credentials", "client_id": client,
                                                            "client_secret": secret}, timeout=10)
        assert r.status_code == 401, r.text
    smoke = json.loads(dstack.cli("smoke", "-o", "json", check=False, timeout=600).stdout)
    assert smoke["ok"], smoke


def test_a_local_only_scenario_says_so(dstack):
    p = dstack.cli("repro", "clock-skew", check=False)
    assert p.returncode == 2 and "clock-skew needs the local runtime" in " ".join(p.stderr.split())


def test_the_pytest_plugin_attaches_to_the_docker_stack(dstack, pytester):
    pytester.makepyfile(test_user="""
        def test_calls_through_the_gateway(sandbox):
            assert sandbox.attached
            assert sandbox.session("dev", "orders").get("get").status_code == 200
            assert sandbox.smoke().ok
    """)
    r = pytester.runpytest_subprocess("--sandbox-home", str(dstack.home), "-p", "no:cacheprovider")
    r.assert_outcomes(passed=1)


def test_cached_images_build_in_seconds(dstack):
    out = json.loads(dstack.cli("images", "build", "redis", "upstream", "-o", "json").stdout)
    assert {r["component"]: r["action"] for r in out} == {"redis": "cached", "upstream": "cached"}


def test_a_service_of_airflows_shared_container_that_dies_is_named_and_up_heals_it(dstack):
    """The four services share one container: one ending on its own stops it, status and doctor say which, and
    `up` starts Airflow again (the local runtime's fault tests show the same for a killed process)."""
    (airflow,) = [c for c in dstack.containers(all_=False) if c.labels["com.docker.compose.service"].startswith(
        "airflow-") and "sandbox.units" in c.labels]
    code, out = airflow.exec_run(["sh", "-c", "kill -KILL $(cat /tmp/sandbox-services/airflow-dag-processor)"])
    assert code == 0, out
    deadline = time.monotonic() + 30
    while (row := {r["name"]: r for r in json.loads(dstack.cli("status", "-o", "json").stdout)}["airflow"])[
            "state"] != "crashed":
        assert time.monotonic() < deadline, row
        time.sleep(1)
    assert "(airflow-dag-processor exited with -9)" in row["detail"], row
    p = dstack.cli("doctor", "-o", "json", check=False)
    assert "Airflow is partly down" in p.stdout and "dag-processor" in p.stdout, p.stdout[-2000:]
    again = json.loads(dstack.cli("up", "-o", "json", "--no-smoke").stdout)
    assert {c["name"]: c["action"] for c in again["components"]}["airflow"] == "restarted", again["components"]
    rows = json.loads(dstack.cli("status", "-o", "json").stdout)
    assert all(r["healthy"] for r in rows), rows


def test_logs_follow_the_containers(dstack):
    logs_follow_the_upstream(dstack.env, f"http://127.0.0.1:{PORTS['upstream']}", settle=3, within=20)


def test_down_leaves_no_container_or_network_and_keeps_volumes_unless_asked(dstack):
    client = engine.client()
    ui_pids = {r["name"]: r for r in json.loads(dstack.cli("status", "-o", "json").stdout)}["ui"]["pids"]
    out = json.loads(dstack.cli("down", "-o", "json").stdout)
    assert set(out["stopped"]) == {"keycloak", "redis", "tyk", "openbao", "airflow", "upstream", "ui"}
    assert ui_pids and not [p for p in ui_pids if psutil.pid_exists(p)  # the page, a host process, stopped too
                            and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    label = {"label": f"{PROJECT_LABEL}={dstack.project}"}
    assert dstack.containers() == []
    assert client.networks.list(filters=label) == []
    assert {v.name for v in client.volumes.list(filters=label)} == {
        f"{dstack.project}_{v}" for v in ("keycloak-data", "tyk-apps", "tyk-policies", "airflow-home", "openbao-data")}
    # kept volumes: realms, clients, APIs, policies and connections are all still there after the next up
    again = json.loads(dstack.cli("up", "-o", "json", "--no-apply").stdout)
    assert {c["action"] for c in again["components"]} == {"started"}
    assert systems_changed(json.loads(dstack.cli("plan", "-o", "json").stdout)["changes"]) == []
    dstack.cli("down", "--volumes")
    assert client.volumes.list(filters=label) == [] and dstack.containers() == []


def test_a_runtime_switch_leaves_nothing_no_command_can_stop(tmp_path):
    """up on docker, down, up on local: the sandbox now records local, status shows what runs, down stops it; a
    switch while the other runtime still runs is refused with the fix. Just the upstream, on ports of its own."""
    home = tmp_path / "switch"
    env = {**os.environ, "SANDBOX_HOME": str(home), "SANDBOX_PORTS": "upstream=29883"}
    env.pop("SANDBOX_WITHOUT", None)
    only = [a for n in ("keycloak", "redis", "tyk", "openbao", "airflow") for a in ("--without", n)]

    def cli(*args, check=True):
        return sandbox(*args, env=env, check=check)

    try:
        cli("up", "--runtime", "docker", "--images", "local", *only)
        refused = cli("up", "--runtime", "local", *only, check=False)
        assert refused.returncode == 2 and "This sandbox runs on the docker runtime." in refused.stderr
        assert "sandbox down" in refused.stderr
        cli("down")
        cli("up", "--runtime", "local", *only)
        rows = {r["name"]: r for r in json.loads(cli("status", "-o", "json").stdout)}
        assert rows["upstream"]["state"] == "running" and rows["upstream"]["runtime"] == "local"
        pids = rows["upstream"]["pids"]
        cli("down")
        assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        assert json.loads(cli("status", "-o", "json").stdout)
        # a state file that names the wrong runtime (lost, copied, hand-edited): `down` still stops both kinds
        state = home / "state.json"
        cli("up", "--runtime", "local", *only)
        pids = {r["name"]: r for r in json.loads(cli("status", "-o", "json").stdout)}["upstream"]["pids"]
        state.write_text(state.read_text().replace('"runtime": "local"', '"runtime": "docker"'))
        assert "unrecorded local processes" in json.loads(cli("down", "-o", "json").stdout)["stopped"]
        assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        cli("up", "--runtime", "docker", "--images", "local", *only)
        state.write_text(state.read_text().replace('"runtime": "docker"', '"runtime": "local"'))
        assert "unrecorded containers" in json.loads(cli("down", "-o", "json").stdout)["stopped"]
        project = project_name(home)
        assert not engine.client().containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
    finally:
        cli("down", "--force", "--volumes", check=False)  # the docker half made volumes: none is left behind


def test_binaries_provisioned_by_a_local_up_run_in_the_images_as_their_own_users(tmp_path):
    """As a new user goes: `sandbox up` (local) provisions into a new cache under the sandbox's private umask, then
    `sandbox images build` and `up --runtime docker --images local` run from that cache. The container's own user
    (go-httpbin's nonroot, 65532) must be able to run the binary: it exited 126, `permission denied`. Just the
    upstream (a build of seconds) on ports of its own; Tyk's and OpenBao's binaries take the same path."""
    home, cache = tmp_path / "modes", tmp_path / "cache"
    env = {**os.environ, "SANDBOX_HOME": str(home), "SANDBOX_CACHE": str(cache), "SANDBOX_PORTS": "upstream=29884"}
    env.pop("SANDBOX_WITHOUT", None)
    only = [a for n in ("keycloak", "redis", "tyk", "openbao", "airflow") for a in ("--without", n)]

    def cli(*args, check=True):
        return sandbox(*args, env=env, check=check)

    try:
        cli("up", "--runtime", "local", *only)
        (binary,) = cache.glob("upstream/*/bin/go-httpbin")
        assert binary.stat().st_mode & 0o777 == 0o755, oct(binary.stat().st_mode)
        cli("down")
        built = json.loads(cli("images", "build", "upstream", "-o", "json").stdout)
        assert [r["action"] for r in built] in (["built"], ["cached"]), built
        cli("up", "--runtime", "docker", "--images", "local", *only)
        row = {r["name"]: r for r in json.loads(cli("status", "-o", "json").stdout)}["upstream"]
        assert (row["state"], row["healthy"]) == ("running", True), row
        (container,) = engine.client().containers.list(filters={"label": f"{PROJECT_LABEL}={project_name(home)}"})
        assert container.attrs["Config"]["User"] == "65532:65532"
    finally:
        cli("down", "--force", "--volumes", check=False)
