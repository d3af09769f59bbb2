"""Write sandbox/data/airflow-<version>-python<py>.lock: every distribution Airflow's install takes, each pinned with
the SHA-256 of every file PyPI serves for that version, so `pip install --require-hashes` refuses anything else;
and `...-image.lock`: what the Airflow image adds on top (the KubernetesExecutor's provider), resolved against the
same pins, so the image is the local install plus those and the local install does not carry them.

The set comes from pip's own resolution of what the installers ask for (the frozen constraints, Airflow and the
extra packages) on this machine's Python; the hashes from PyPI's simple API (JSON). Rerun after changing
versions.AIRFLOW, the constraints file, AIRFLOW_EXTRA_PACKAGES or AIRFLOW_IMAGE_EXTRA_PACKAGES:

    python3.11 tools/lock_airflow.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from packaging.utils import (  # noqa: E402
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version  # noqa: E402

from sandbox import versions  # noqa: E402

INDEX = "https://pypi.org/simple"


def resolved(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """name -> version of everything a fresh install would take (pip --dry-run --report)."""
    with tempfile.TemporaryDirectory() as tmp:
        constraints, report = Path(tmp) / "c.txt", Path(tmp) / "report.json"
        constraints.write_text(versions.airflow_constraints_text())
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", str(report), "-c", str(constraints), f"apache-airflow=={versions.AIRFLOW}",
                        *versions.AIRFLOW_EXTRA_PACKAGES, *extra], check=True)
        items = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in items}


def of_release(filename: str, name: str, version: str) -> bool:
    try:
        if filename.endswith(".whl"):
            got_name, got_version, *_ = parse_wheel_filename(filename)
        else:
            got_name, got_version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        return False
    return got_name == canonicalize_name(name) and got_version == Version(version)


def hashes(name: str, version: str) -> list[str]:
    req = urllib.request.Request(f"{INDEX}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        files = json.load(r)["files"]
    mine = [f["hashes"]["sha256"] for f in files if not f.get("yanked") and of_release(f["filename"], name, version)]
    if not mine:
        raise SystemExit(f"PyPI lists no file of {name}=={version}")
    return sorted(mine)


def main() -> None:
    if sys.version_info[:2] != tuple(map(int, versions.AIRFLOW_PYTHON.split("."))):
        raise SystemExit(f"run with Python {versions.AIRFLOW_PYTHON}: the constraints were resolved for it")
    base = resolved()
    write(versions.AIRFLOW_LOCK, base)
    image = resolved(versions.AIRFLOW_IMAGE_EXTRA_PACKAGES)
    moved = sorted(n for n, v in base.items() if image.get(n) != v)
    if moved:
        raise SystemExit(f"the image's extra packages move pinned distributions: {', '.join(moved)}")
    write(versions.AIRFLOW_IMAGE_LOCK, {n: v for n, v in image.items() if n not in base})


def write(lock: str, pins: dict[str, str]) -> None:
    lines = [f"# {lock}: written by tools/lock_airflow.py from {versions.AIRFLOW_CONSTRAINTS}; do not edit"]
    for name, version in sorted(pins.items()):
        lines.append(f"{name}=={version} " + " ".join(f"--hash=sha256:{h}" for h in hashes(name, version)))
    out = ROOT / "sandbox" / "data" / lock
    out.write_text("\n".join(lines) + "\n")
    print(f"{out}: {len(lines) - 1} distributions")


if __name__ == "__main__":
    main()
