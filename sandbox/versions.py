"""Every pinned component version, in one place, read by every runtime.

Change a version here and nowhere else; the provisioning cache is keyed by these values, so a
bump provisions fresh copies beside the old ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

AIRFLOW = "3.3.2"
AIRFLOW_PYTHON = "3.11"  # the frozen constraints below were resolved for this Python
AIRFLOW_EXTRA_PACKAGES = ("apache-airflow-providers-http",)  # versions come from the constraints file
AIRFLOW_CONSTRAINTS = f"airflow-{AIRFLOW}-python{AIRFLOW_PYTHON}.txt"

KEYCLOAK = "26.7.3"
KEYCLOAK_MAVEN = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK}:zip"
KEYCLOAK_MIN_JAVA = 21

TYK = "v5.14.0"
# The tag's commit: a source tarball must carry it (pax header), and the Go module proxy is asked by it
# (release tags are not valid Go module versions).
TYK_MODULE = "github.com/TykTechnologies/tyk"
TYK_COMMIT = "2e9450120e2b05f13457f441ee012cc57d6bd604"

REDIS_MIN = (7, 0)

UPSTREAM = "v2.26.0"  # go-httpbin: a real HTTP service whose /anything echoes the request it got
UPSTREAM_MODULE = "github.com/mccutchen/go-httpbin/v2"


@dataclass(frozen=True)
class Pin:
    component: str
    version: str
    source: str


def pins() -> list[Pin]:
    return [
        Pin("airflow", AIRFLOW, f"PyPI, frozen constraints {AIRFLOW_CONSTRAINTS}"),
        Pin("keycloak", KEYCLOAK, f"Maven Central {KEYCLOAK_MAVEN}"),
        Pin("tyk", TYK, f"source tarball of commit {TYK_COMMIT[:12]}, built with Go"),
        Pin("redis", ">=" + ".".join(map(str, REDIS_MIN)), "redis-server on PATH (Debian: redis-server)"),
        Pin("upstream", UPSTREAM, f"Go module proxy {UPSTREAM_MODULE} (go-httpbin)"),
    ]


def airflow_constraints_text() -> str:
    return resources.files("sandbox.data").joinpath(AIRFLOW_CONSTRAINTS).read_text()
