"""What the suites on each runtime check alike through the CLI: a scenario kept, named by doctor and reverted;
`sandbox logs -f` following a component. `stack`: anything with `cli(*args, check=, timeout=)`, `env` and `paths`
(the main suite's, the docker tests' and the cluster suite's stacks)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from sandbox.commands.smoke import verdicts_of
from sandbox.scenarios import CATALOGUE
from sandbox.scenarios.inbound import InboundScenario
from sandbox.spec import load as load_spec


def repro(stack, *args: str) -> tuple[int, list[dict], str]:
    """Exit code, the reports, and the progress lines (stderr: what a failed assertion shows beside the report)."""
    p = stack.cli("repro", *args, "-o", "json", check=False, timeout=1200 if "--all" in args else 300)
    assert "Traceback" not in p.stderr, p.stderr
    assert p.stdout.strip(), f"repro {' '.join(args)} reported nothing (exit {p.returncode}):\n{p.stderr[-3000:]}"
    return p.returncode, json.loads(p.stdout), p.stderr[-3000:]


def kept_fault_is_named_and_reverted(stack, name: str, compared_with: Path | None = None) -> None:
    """One run of scenario `name`, kept, so that doctor sees the fault the DAG run showed: its exact symptom, doctor's
    verdict, then `repro revert` green again (the scenario's own revert and green proof are the code a run without
    --keep ends with). `compared_with`: a snapshot of the green sandbox, which `compare` holds against the sandbox
    with the fault in, and must explain the broken connection by this scenario."""
    sc = CATALOGUE[name].on(load_spec())  # bound to the connection it breaks in the bundled spec
    try:
        rc, (r,), progress = repro(stack, name, "--keep")
        expected, seen = r["expected"], r["observed"]
        assert seen, (r, progress)  # the DAG run after the fault was green
        assert (seen["hop"], seen["status"]) == (expected["hop"], expected["status"]), (r, progress)
        assert expected["words"] in seen["words"] and expected["log"] in seen["log"], (r, progress)
        assert rc == 0 and r["matched"] and r["kept"] and r["green_after"] is None
        # a caller's way into Airflow is walked by `doctor --caller`; a connection's by `doctor --connection`
        which = sc.doctor_args(stack.paths)
        p = stack.cli("doctor", "-o", "json", *which, check=False)
        (d,) = json.loads(p.stdout)
        assert p.returncode == 1 and sc.doctor_says in d["verdict"], d["verdict"]
        if compared_with is not None:  # B: this machine now
            p = stack.cli("compare", str(compared_with), "-o", "json", check=False)
            c = json.loads(p.stdout)
            named = {e["connection"]: e["scenario"] for e in c["explained"]}
            assert p.returncode == 1 and named.get(sc.connection) == name, (c["explained"], c["differences"])
    finally:
        reverted = stack.cli("repro", "revert")
    # the revert proves the connection with its smoke (or the caller with its call): green again at once
    assert f"✓ {sc.connection}" in reverted.stdout, reverted.stdout
    if not isinstance(sc, InboundScenario):  # the smoke's verdict (status, map, page)
        assert verdicts_of(stack.paths)[sc.connection]["ok"]
    p = stack.cli("doctor", "-o", "json", *which[:2], check=False)  # a held token is the fault's: gone with it
    assert p.returncode == 0, p.stdout


def logs_follow_the_upstream(env: dict[str, str], upstream_url: str, settle: float, within: float) -> None:
    """`sandbox logs upstream -f` prints a request made after it started (`settle` s), within `within` s."""
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.cli", "logs", "upstream", "-f", "-n", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(settle)  # the follow has started
        requests.get(f"{upstream_url}/get?follow-me", timeout=10)
        # read beside the wait: a follow that prints nothing fails at the deadline rather than hanging the suite
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
        deadline, seen = time.monotonic() + within, []
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            seen.append(line)
            if "follow-me" in line:
                break
        assert any("follow-me" in line for line in seen), seen
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def secrets_in(home: Path) -> list[tuple[str, str]]:
    """(file, value) of every secret the sandbox keeps in its home: each string of its secret files (JSON) or the
    file's text, when long enough to be one (names and flags are not)."""
    places = [home / "secrets.json", *(home / d for d in ("secrets", "airflow-secrets", "container-secrets"))]
    files = [p for p in places if p.is_file()] + [f for p in places if p.is_dir() for f in sorted(p.glob("**/*"))]
    found = []
    for f in (f for f in files if f.is_file()):
        text = f.read_text(errors="replace")
        try:
            values = _strings(json.loads(text))
        except ValueError:
            values = [text.strip()]
        found += [(f.name, v) for v in values if len(v) >= 16 and "://" not in v]
    return found


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []
