"""`supervisor.spawn_forked`: units started by one launcher that forks them, recorded as if spawned alone.

The launcher here is a few lines of Python standing in for sandbox_services (which needs Airflow): the contract
is the pipe ("name pid" lines on SANDBOX_PIDS_FD) and the launcher exiting once it forked everything."""

from __future__ import annotations

import os
import sys

import psutil
import pytest

from sandbox.errors import SandboxError
from sandbox.host import supervisor

LAUNCHER = """
import os, sys, time
fd = int(os.environ["SANDBOX_PIDS_FD"])
for name in sys.argv[1:]:
    if name == "crash":
        raise SystemExit("the launcher's import failed")
    pid = os.fork()
    if pid == 0:
        os.close(fd)
        os.setsid()
        time.sleep(60)
        os._exit(0)
    while os.getsid(pid) != pid:  # as sandbox_services does: reported once it leads its own session
        time.sleep(0.001)
    os.write(fd, f"{name} {pid}\\n".encode())
"""


def launch(tmp_path, names: list[str]):
    units = [(n, ["svc", n]) for n in ("a", "b")]
    return supervisor.spawn_forked("launcher", [sys.executable, "-c", LAUNCHER, *names], units, {}, tmp_path,
                                   tmp_path / "log", tmp_path, timeout=20)


def test_each_unit_is_recorded_as_the_leader_of_its_own_session(tmp_path):
    recs = launch(tmp_path, ["a", "b"])
    try:
        assert [r.name for r in recs] == ["a", "b"] and [r.cmd for r in recs] == [["svc", "a"], ["svc", "b"]]
        assert all(supervisor.alive(r) for r in recs)
        assert all(os.getpgid(r.pid) == r.pid for r in recs)  # `down` ends each unit's group
        assert psutil.Process(recs[0].pid).environ()[supervisor.OWNER_VAR] == str(tmp_path)
        assert "starting a: svc a (forked by launcher)" in (tmp_path / "log").read_text()
    finally:
        assert supervisor.terminate(supervisor.tree(recs), 2.0) == []


def test_a_launcher_that_exits_early_says_so_and_leaves_nothing_running(tmp_path):
    with pytest.raises(SandboxError, match=r"process launcher exited with 1 before starting b"):
        launch(tmp_path, ["a", "crash"])
    assert "the launcher's import failed" in (tmp_path / "log").read_text()  # `up` shows the log's cause
    assert not [p for p in psutil.process_iter(["environ"])
                if (p.info["environ"] or {}).get(supervisor.OWNER_VAR) == str(tmp_path)]
