"""The fault table (README "Faults the sandbox survives"): each row on a stack of its own (own home, own ports),
asserting what the user sees and that nothing was lost."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from sandbox.host.credentials import load_or_create
from sandbox.host.supervisor import belongs
from sandbox.paths import default_cache
from sandbox.runtime.state import State, save
from sandbox.systems.airflow.client import AirflowApi
from sandbox.systems.keycloak.component import TEMPLATE_PASSWORD, Keycloak
from tests.integration.conftest import sandbox

pytestmark = pytest.mark.integration
PORTS = {"keycloak": 29681, "keycloak-management": 29691, "redis": 29679, "tyk": 29682, "airflow": 29680,
         "upstream": 29683, "openbao": 29684, "ui": 29690}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("faults") / "home"
    env = {**os.environ, "SANDBOX_HOME": str(home), "SANDBOX_PORTS": ",".join(f"{k}={v}" for k, v in PORTS.items())}
    env.pop("SANDBOX_WITHOUT", None)
    sandbox("up", "--no-smoke", env=env)
    yield env
    sandbox("down", "--force", env=env, check=False)


def status(env) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(sandbox("status", "-o", "json", env=env).stdout)}


def sandbox_processes(home: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if belongs(p.environ(), p.cwd(), home):
                out.append(p)
        except psutil.Error:
            continue
    return out


def gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]:
            return True
        time.sleep(0.2)
    return False


def token_works(env) -> bool:
    return sandbox("token", "airflow", "--env", "dev", env=env, check=False).returncode == 0


def test_killing_keycloaks_recorded_process_alone_is_unsupervised_then_healed(env):
    (pid,) = status(env)["keycloak"]["pids"]
    jvms = [c.pid for c in psutil.Process(pid).children(recursive=True)]
    assert jvms, "kc.sh runs its JVM as a child"
    os.kill(pid, signal.SIGKILL)
    assert gone([pid])
    row = status(env)["keycloak"]
    assert row["state"] == "unsupervised" and row["healthy"], row
    assert "serving" in row["detail"] and "`sandbox up`" in row["detail"]
    p = sandbox("up", "--no-smoke", env=env)  # the orphaned JVM held the port: up ends it first
    assert "leftover" in p.stderr and "is taken by" not in p.stderr, p.stderr
    assert gone(jvms)
    assert status(env)["keycloak"]["state"] == "running"
    assert token_works(env)  # realms, clients and secrets kept


def test_killing_airflows_scheduler_alone_leaves_no_orphaned_workers(env):
    recs = {r["name"]: r for r in json.loads(Path(env["SANDBOX_HOME"], "state.json").read_text())["processes"]
            ["airflow"]}
    scheduler = recs["airflow-scheduler"]["pid"]
    workers = [c.pid for c in psutil.Process(scheduler).children(recursive=True)]
    assert workers, "the LocalExecutor forks its workers up front"
    os.kill(scheduler, signal.SIGKILL)
    assert gone([scheduler])
    assert status(env)["airflow"]["state"] in ("crashed", "unsupervised")
    sandbox("up", "--no-smoke", env=env)
    assert gone(workers), [psutil.Process(p).cmdline() for p in workers if psutil.pid_exists(p)]
    assert status(env)["airflow"]["state"] == "running"
    report = json.loads(sandbox("smoke", "-o", "json", env=env).stdout)
    assert report["ok"], report


def recorded(env) -> list[tuple[str, str, int]]:
    procs = json.loads(Path(env["SANDBOX_HOME"], "state.json").read_text())["processes"]
    return [(comp, r["name"], r["pid"]) for comp, recs in procs.items() for r in recs]


@pytest.mark.parametrize("process", ["redis-server", "tyk", "go-httpbin", "airflow-dag-processor",
                                     "airflow-triggerer", "airflow-api-server"])
def test_kill_9_of_each_other_recorded_process_alone_is_healed_by_up(env, process):
    comp, _, pid = next(r for r in recorded(env) if r[1] == process)
    family = [c.pid for c in psutil.Process(pid).children(recursive=True)]
    os.kill(pid, signal.SIGKILL)
    assert gone([pid])
    assert status(env)[comp]["state"] != "running"
    sandbox("up", "--no-smoke", env=env)
    assert gone(family)  # nothing of the killed process's family lives on
    assert {r["state"] for r in status(env).values()} == {"running"}


def test_a_crash_loop_is_named_by_up_and_a_partly_down_airflow_by_doctor(env):
    # a hand-edited airflow.cfg only the triggerer reads: it exits at every start, the rest of Airflow serves
    cfg = Path(env["SANDBOX_HOME"]) / "data" / "airflow" / "airflow.cfg"
    original = cfg.read_text()
    broken = re.sub(r"(\[triggerer\][^\[]*?\ncapacity = )\d+", r"\g<1>lots", original, count=1)
    assert broken != original
    try:
        cfg.write_text(broken)
        triggerer = next(pid for _, name, pid in recorded(env) if name == "airflow-triggerer")
        os.kill(triggerer, signal.SIGKILL)
        assert gone([triggerer])
        sandbox("up", "--no-apply", env=env, check=False)  # its start writes the cause into the log
        p = sandbox("up", "--no-apply", env=env, check=False)
        said = " ".join(p.stderr.split())
        assert p.returncode == 1 and "process airflow-triggerer exited" in said, said
        assert 'its log says: airflow._shared.configuration.exceptions.AirflowConfigException' in said, said
        assert '"capacity" key in "triggerer" section' in said and "Fix: correct that setting" in said, said
        # up stopped Airflow to start it clean next time; one process of it down is what doctor must explain
        cfg.write_text(original)
        sandbox("up", "--no-smoke", env=env)
        triggerer = next(pid for _, name, pid in recorded(env) if name == "airflow-triggerer")
        os.kill(triggerer, signal.SIGKILL)
        assert gone([triggerer])
        d = sandbox("doctor", "-o", "json", "--connection", "tyk_dev_orders", env=env, check=False)
        first, conn = json.loads(d.stdout)
        assert d.returncode == 1 and first["connection"] == "airflow", d.stdout
        assert {h["name"]: h["ok"] for h in first["hops"]}["triggerer"] is False, first
        assert "Airflow is partly down: triggerer" in first["verdict"], first["verdict"]
        assert conn["connection"] == "tyk_dev_orders" and conn["ok"], conn  # the rest is still walked
    finally:
        cfg.write_text(original)
        sandbox("up", "--no-smoke", env=env, check=False)  # as found, whatever failed: the next tests need it
    assert {r["state"] for r in status(env).values()} == {"running"}


def test_scheduler_killed_mid_run_the_run_ends_visibly(env):
    home = Path(env["SANDBOX_HOME"])
    dag = Path(__file__).parents[2] / "fixtures" / "dags" / "slow_task.py"
    (home / "dags" / dag.name).write_text(dag.read_text())
    airflow = status(env)["airflow"]["url"]
    shown = {r["name"]: r for r in json.loads(sandbox("status", "-o", "json", "--show-secrets", env=env).stdout)}
    api = AirflowApi.of_status(shown["airflow"]).s
    deadline = time.monotonic() + 120
    while api.patch(f"{airflow}/api/v2/dags/slow_task", json={"is_paused": False}, timeout=30).status_code == 404:
        assert time.monotonic() < deadline, "the DAG was not parsed"
        time.sleep(1)
    run = api.post(f"{airflow}/api/v2/dags/slow_task/dagRuns", json={"logical_date": None}, timeout=30).json()
    runs = f"{airflow}/api/v2/dags/slow_task/dagRuns/{run['dag_run_id']}"
    while api.get(f"{runs}/taskInstances/sleep_a_while", timeout=30).json().get("state") != "running":
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.5)
    scheduler = next(pid for _, name, pid in recorded(env) if name == "airflow-scheduler")
    os.kill(scheduler, signal.SIGKILL)
    sandbox("up", "--no-smoke", env=env)  # restarts Airflow; the task's orphaned process is ended with it
    airflow = status(env)["airflow"]["url"]
    deadline = time.monotonic() + 240  # the task's heartbeat timeout is 60 s in a sandbox
    while (state := api.get(runs, timeout=30).json()["state"]) not in ("success", "failed"):
        assert time.monotonic() < deadline, f"the run is still {state}: it hangs"
        time.sleep(2)
    assert state in ("success", "failed")


def test_kill_9_of_every_tree_is_healed_by_up_and_nothing_is_lost(env):
    for row in status(env).values():
        for pid in row["pids"]:
            for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
                p.kill()
    assert {r["state"] for r in status(env).values()} == {"crashed"}
    sandbox("up", "--no-smoke", env=env)
    assert {r["state"] for r in status(env).values()} == {"running"}
    plan = sandbox("plan", "-o", "json", env=env)
    assert json.loads(plan.stdout)["changes"] == [], plan.stdout  # realms, clients, APIs, connections all kept
    assert token_works(env)


def kill_tree(pid: int) -> None:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for p in procs:
        p.kill()
    assert gone([p.pid for p in procs])


def call_status(env, *extra: str) -> int:
    p = sandbox("call", "airflow", "orders", "--env", "dev", "-o", "json", *extra, env=env, check=False)
    return json.loads(p.stdout)["status"]


def test_redis_restarted_under_a_running_gateway(env):
    tyk_pids = status(env)["tyk"]["pids"]
    (redis,) = status(env)["redis"]["pids"]
    kill_tree(redis)
    sandbox("up", "--no-smoke", env=env)
    assert status(env)["tyk"]["pids"] == tyk_pids  # the gateway itself was not restarted
    deadline = time.monotonic() + 30  # it reconnects to Redis on its own
    while call_status(env) != 200 and time.monotonic() < deadline:
        time.sleep(1)
    assert call_status(env) == 200


def test_keycloak_restarted_keeps_realms_and_earlier_tokens_verify(env):
    before = sandbox("token", "airflow", "--env", "dev", env=env).stdout.strip()
    (pid,) = status(env)["keycloak"]["pids"]
    kill_tree(pid)
    sandbox("up", "--no-smoke", env=env)
    assert token_works(env)
    tyk = status(env)["tyk"]["url"]
    r = requests.get(f"{tyk}/dev/orders/get", headers={"Authorization": f"Bearer {before}"}, timeout=30)
    assert r.status_code == 200, r.text  # the realm's signing key survived the restart


def test_down_leaves_no_process_of_the_sandbox(env):
    home = Path(env["SANDBOX_HOME"])
    assert sandbox_processes(home)
    sandbox("down", env=env)
    assert sandbox_processes(home) == []
    sandbox("up", "--no-smoke", env=env)  # for the rows after


def test_two_ups_at_once_start_one_stack(env):
    sandbox("down", env=env)
    procs = [subprocess.Popen([sys.executable, "-m", "sandbox.cli", "up", "--no-smoke"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    rows = status(env)
    assert {r["state"] for r in rows.values()} == {"running"}
    recorded = {pid for r in rows.values() for pid in r["pids"]}
    home = Path(env["SANDBOX_HOME"])
    # one set of processes: every top-level process of the sandbox is a recorded one
    tops = {p.pid for p in sandbox_processes(home) if p.ppid() not in {q.pid for q in sandbox_processes(home)}}
    assert tops == recorded, (tops, recorded)


def interrupt(cmd: list[str], env: dict, after: str, timeout: float = 300) -> tuple[int, str]:
    """Run `sandbox CMD`, Ctrl-C it once its progress shows `after`; (exit code, what it printed)."""
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.cli", *cmd], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen, deadline = "", time.monotonic() + timeout
    while after not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, seen + err


def talks_to(pid: int, port: int) -> bool:
    try:
        return any(c.raddr and c.raddr.port == port for c in psutil.Process(pid).net_connections("tcp"))
    except psutil.Error:
        return False


def test_ctrl_c_during_apply_then_apply_converges(env):
    more = str(Path(__file__).parents[2] / "fixtures" / "specs" / "more.yaml")  # a realm, clients, APIs to create
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.cli", "apply", "--spec", more], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # somewhere in the middle: whichever step it is, the next apply must converge. Counted from apply's first word
    # to Keycloak, not from its start: on a loaded machine 1.5 s after the fork the interpreter had not yet started,
    # and SIGINT killed it before it ran a line (exit -2)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not talks_to(proc.pid, PORTS["keycloak"]):
        assert time.monotonic() < deadline, "apply never reached Keycloak"
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode in (0, 130)
    sandbox("apply", "--spec", more, env=env)
    assert json.loads(sandbox("plan", "--spec", more, "-o", "json", env=env).stdout)["changes"] == []
    sandbox("apply", env=env)  # back to the default spec for the rows after
    assert json.loads(sandbox("plan", "-o", "json", env=env).stdout)["changes"] == []


def test_ctrl_c_during_provisioning_leaves_nothing_half_built(env, tmp_path):
    cache = tmp_path / "cache"
    penv = {**env, "SANDBOX_CACHE": str(cache)}
    rc, seen = interrupt(["provision", "upstream"], penv, after="upstream")
    assert rc == 130, seen
    assert not list(cache.rglob(".provisioned")), "an interrupted build must not count as provisioned"
    sandbox("provision", "upstream", env=penv)
    assert list(cache.rglob(".provisioned"))


def test_ctrl_c_during_up_then_up_converges_and_down_leaves_nothing(env):
    sandbox("down", env=env)
    rc, seen = interrupt(["up", "--no-smoke"], env, after="healthy in")  # some components up, others starting
    assert rc == 130, seen
    sandbox("up", "--no-smoke", env=env)
    assert {r["state"] for r in status(env).values()} == {"running"}
    assert token_works(env)
    sandbox("down", env=env)
    assert sandbox_processes(Path(env["SANDBOX_HOME"])) == []


@pytest.mark.parametrize("broken", ["state.json", "secrets.json"])
def test_a_corrupted_state_or_secrets_file_is_one_sentence(tmp_path, broken):
    home = tmp_path / "home"
    home.mkdir()
    (home / broken).write_text("{not json")
    env = {**os.environ, "SANDBOX_HOME": str(home), "SANDBOX_PORTS": ",".join(f"{k}={v}" for k, v in PORTS.items())}
    p = sandbox("up", "--no-apply", env=env, check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert str(home / broken) in p.stderr and "Fix:" in p.stderr, p.stderr
    assert (home / broken).read_text() == "{not json"  # nothing overwritten


@pytest.fixture
def small_home(tmp_path):
    """A sandbox home (valid state and secrets, nothing running) on a 1 MiB filesystem of its own."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem of its own needs root (CI runs as root)")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)], check=True)
    home = mnt / "home"
    home.mkdir(mode=0o700)
    load_or_create(home / "secrets.json")
    save(home / "state.json", State(ports=dict(PORTS)))
    yield mnt, home, {**os.environ, "SANDBOX_HOME": str(home),
                      "SANDBOX_PORTS": ",".join(f"{k}={v}" for k, v in PORTS.items())}
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_home_is_one_sentence_and_nothing_is_corrupted(small_home):
    mnt, home, env = small_home
    before = {f: (home / f).read_bytes() for f in ("state.json", "secrets.json")}
    with open(mnt / "filler", "wb") as f:  # fill the filesystem to the last block
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    p = sandbox("up", "--no-apply", env=env, check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "No space left on device" in p.stderr and "Fix: free space" in p.stderr, p.stderr
    assert {f: (home / f).read_bytes() for f in before} == before
    assert not list(home.glob("*.tmp"))


def test_a_read_only_home_is_one_sentence_and_status_still_reads_it(small_home):
    mnt, home, env = small_home
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    p = sandbox("up", "--no-apply", env=env, check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert "Read-only file system" in p.stderr and "writable home" in p.stderr, p.stderr
    rows = json.loads(sandbox("status", "-o", "json", env=env).stdout)
    assert {r["state"] for r in rows} == {"stopped"}


def test_two_sandboxes_from_one_cache_sign_admin_tokens_with_keys_of_their_own(env, stack):
    # both copied Keycloak's template database; an admin token of one must not verify in the other
    def kids(url: str) -> set[str]:
        certs = requests.get(f"{url}/realms/master/protocol/openid-connect/certs", timeout=10).json()
        return {k["kid"] for k in certs["keys"]}

    sandbox("up", "--no-smoke", env=env)  # the tests before may have left this stack down
    mine, other = kids(status(env)["keycloak"]["url"]), kids(stack.status()["keycloak"]["url"])
    assert mine and other and not mine & other
    # and the template's admin password logs in to neither: each has its own from its first start
    template = (Keycloak().dist(default_cache()) / TEMPLATE_PASSWORD).read_text()
    for url in (status(env)["keycloak"]["url"], stack.status()["keycloak"]["url"]):
        r = requests.post(f"{url}/realms/master/protocol/openid-connect/token", timeout=10, data={
            "grant_type": "password", "client_id": "admin-cli", "username": "admin", "password": template})
        assert r.status_code == 400 and "Invalid user credentials" in r.text, r.text
