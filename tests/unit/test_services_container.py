"""sandbox_services in a container (no SANDBOX_PIDS_FD): the launcher stays as the container's main process.

Stand-ins for Airflow: a stub `airflow.settings`, small service modules, and SHARED one stub module (no Airflow
here). The contract is the docker runtime's: TERM reaches every service, one service ending on its own ends the
launcher with its code (the container's exit shows it), and a released service ends alone; and every service
collects garbage as the launcher set it up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

LIB = Path(__file__).resolve().parents[2] / "sandbox" / "systems" / "airflow" / "lib"
RUNNER = """
import sys
sys.path.insert(0, sys.argv.pop(1))
import sandbox_services
sandbox_services.SHARED = ("shared_stub",)
sandbox_services.PRELOAD = {}
sandbox_services.main()
"""
SERVICE = """
import os, sys, time
code = int(sys.argv[1]) if len(sys.argv) > 1 else None
if os.fork() == 0:  # a worker of its own, in its group (as the scheduler's are)
    time.sleep(60)
    os._exit(0)
time.sleep(0.5 if code is not None else 60)
sys.exit(code or 0)
"""

# what the launcher imports before the forks (Airflow, here a stub) sees the collector off; a service sees it on,
# at the sandbox's thresholds, with the launcher's imports frozen out of its scans
SHARED_STUB = """
import gc
IMPORTED_WITH_GC = gc.isenabled()
"""
GC_SERVICE = """
import gc, json, sys, time
import shared_stub
with open(sys.argv[1], "w") as f:
    json.dump({"import": shared_stub.IMPORTED_WITH_GC, "enabled": gc.isenabled(),
               "thresholds": list(gc.get_threshold()), "frozen": gc.get_freeze_count() > 0}, f)
time.sleep(60)
"""


def start(tmp_path: Path, units: list[list]) -> subprocess.Popen:
    (tmp_path / "airflow").mkdir()
    (tmp_path / "airflow" / "__init__.py").write_text("")
    (tmp_path / "airflow" / "settings.py").write_text("engine = None\n")
    (tmp_path / "svc.py").write_text(SERVICE)
    (tmp_path / "shared_stub.py").write_text(SHARED_STUB)
    (tmp_path / "gc_svc.py").write_text(GC_SERVICE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SANDBOX_SERVICES": json.dumps(units),
           "SANDBOX_SERVICES_RUN": str(tmp_path / "run")}
    env.pop("SANDBOX_PIDS_FD", None)
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(LIB)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 20
    while len(list((tmp_path / "run").glob("[ab]"))) < len(units):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.05)
    time.sleep(0.2)  # each service forked its worker
    return proc


def group_alive(pgid: int) -> bool:
    return any(p.info["pid"] != pgid and os.getpgid(p.info["pid"]) == pgid or p.info["pid"] == pgid
               for p in psutil.process_iter(["pid"]) if _exists(p))


def _exists(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) >= 0
    except (psutil.Error, ProcessLookupError):
        return False


def pid_of(tmp_path: Path, name: str) -> int:
    return int((tmp_path / "run" / name).read_text())


def test_term_reaches_every_service_and_its_workers(tmp_path):
    proc = start(tmp_path, [["a", "svc", []], ["b", "svc", []]])
    groups = [pid_of(tmp_path, "a"), pid_of(tmp_path, "b")]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not [g for g in groups if group_alive(g)]


def test_one_service_ending_on_its_own_ends_the_launcher_with_its_code(tmp_path):
    proc = start(tmp_path, [["a", "svc", []], ["b", "svc", ["3"]]])
    a = pid_of(tmp_path, "a")
    assert proc.wait(10) == 3
    out = proc.stdout.read()
    assert "=== sandbox: b exited with 3: stopping the others" in out, out
    assert not group_alive(a)


def test_a_killed_service_ends_the_launcher_as_a_shell_would_say_and_is_named_last(tmp_path):
    """KILL -> 137, as the service's own container would exit; the mark is the log's last line (the others'
    shutdown output comes after the first one, and the runtime reads the log's tail)."""
    proc = start(tmp_path, [["a", "svc", []], ["b", "svc", []]])
    os.kill(pid_of(tmp_path, "b"), signal.SIGKILL)
    assert proc.wait(10) == 137
    lines = proc.stdout.read().strip().splitlines()
    assert lines[-1] == "=== sandbox: b exited with -9: stopping the others", lines


def test_a_released_service_ends_alone(tmp_path):
    proc = start(tmp_path, [["a", "svc", []], ["b", "svc", []]])
    a, b = pid_of(tmp_path, "a"), pid_of(tmp_path, "b")
    env = {**os.environ, "SANDBOX_SERVICES_RUN": str(tmp_path / "run")}
    released = subprocess.run([sys.executable, str(LIB / "sandbox_services.py"), "--release", "b"], env=env,
                              capture_output=True, text=True, timeout=20)
    assert released.returncode == 0, released.stderr
    assert not group_alive(b) and group_alive(a) and proc.poll() is None
    unknown = subprocess.run([sys.executable, str(LIB / "sandbox_services.py"), "--release", "c"], env=env,
                             capture_output=True, text=True, timeout=20)
    assert unknown.returncode == 2 and "no service c runs here" in unknown.stderr
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not group_alive(a)


def test_services_collect_at_the_sandbox_thresholds_and_skip_the_launchers_imports(tmp_path):
    """Airflow's import and the API server's app made ~a quarter cheaper (sandbox_services.GC_THRESHOLDS)."""
    out = tmp_path / "gc.json"
    proc = start(tmp_path, [["a", "gc_svc", [str(out)]]])
    deadline = time.monotonic() + 10
    while not out.exists() or not out.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    state = json.loads(out.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert state == {"import": False, "enabled": True, "thresholds": [50_000, 20, 20], "frozen": True}
