"""The Tyk open-source gateway: built from the pinned release's source, or taken from an existing install.

Three ways, in the order a user should try them (docs/install.md says the same):
1. SANDBOX_TYK_HOME: an installed gateway (e.g. /opt/tyk-gateway), a folder with `tyk` and `templates/`.
2. SANDBOX_TYK_SOURCE: the release's source tarball, a local path or an http(s) URL (default: GitHub's tag
   tarball), checked against the pinned commit and built with Go (dependencies from the Go module proxy).
3. SANDBOX_TYK_SOURCE=goproxy: the gateway module itself from the Go module proxy, by commit, where a proxy
   serves it. Also tried when the default tarball cannot be downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.host import go_source
from sandbox.host.credentials import write_private
from sandbox.host.go_source import GO_HINT, TYK, BuiltOrInstalled
from sandbox.host.provision import Say, require_tool
from sandbox.host.readiness import Check, http_ok
from sandbox.paths import compose_dir
from sandbox.runtime.component import Component, ComponentContext, Login, ProcessSpec
from sandbox.systems.tyk import chart

ANALYTICS_TTL = 24 * 3600  # records must outlive the gap between a DAG run and `sandbox audit`


def hello_complaint(body: dict) -> str | None:
    redis = body.get("details", {}).get("redis", {}).get("status")
    if body.get("status") != "pass" or redis != "pass":
        return f"tyk /hello: status={body.get('status')}, redis={redis}"
    return None


def middleware() -> Path:
    """The gateway's JS plugins, the same files on every runtime (a container mounts them, a pod's ConfigMap)."""
    return compose_dir() / "tyk" / "middleware"


def gateway_config(ctx: ComponentContext, templates: Path) -> dict:
    data = ctx.data_dir("tyk")
    return {
        "listen_address": "127.0.0.1",
        "listen_port": ctx.ports["tyk"],
        "secret": ctx.secrets["tyk_secret"],
        "template_path": str(templates),
        "app_path": str(data / "apps"),
        "middleware_path": str(data / "middleware"),
        "use_db_app_configs": False,
        "policies": {"policy_source": "file", "policy_path": str(data / "policies")},
        "storage": {"type": "redis", "host": "127.0.0.1", "port": ctx.ports["redis"],
                    "password": ctx.secrets["redis_password"], "database": 0},
        "enable_analytics": True,
        "analytics_config": {"type": "", "ignored_ips": [], "storage_expiration_time": ANALYTICS_TTL},
        # the exchange into Airflow is a JS post plugin (middleware/airflow_exchange.js): Tyk's open-source edition
        # has no token exchange of its own
        "enable_jsvm": True,
        # a policy's allowed_urls (a caller into Airflow: its DAGs' paths) anchored and matched without the listen
        # path, as written in the plan; otherwise they are unanchored regexes on the whole path
        "http_server_options": {"enable_path_prefix_matching": True, "enable_path_suffix_matching": True},
        "hash_keys": True,
        "pid_file_location": str(data / "tyk.pid"),
        "health_check": {"enable_health_checks": False},
        # /hello reports Redis only after its first liveness check, every 10 s by default: checking every
        # second makes the gateway healthy ~1 s after start instead of ~11 s (Go duration, in nanoseconds).
        "liveness_check": {"check_duration": 1_000_000_000},
        # The default limiter on one gateway is an in-memory bucket sized when first used and kept while a
        # policy's rate changes; Redis's sliding log reads the policy's rate on every request, so what the
        # policy says is what a call gets (and `sandbox repro rate-limited` is deterministic).
        "enable_redis_rolling_limiter": True,
    }


class Tyk(BuiltOrInstalled, Component):
    name = "tyk"
    cluster_form = chart.FORM  # on a cluster: Tyk's own chart, one replica a node
    default_ports = {"tyk": 28082}
    after = ("redis",)
    start_timeout = 60.0
    login = Login("x-tyk-authorization", "tyk_secret")
    secrets = ("tyk_secret", "redis_password")

    # SANDBOX_TYK_HOME: a gateway installed elsewhere (such as /opt/tyk-gateway), used instead of a build
    home_variable = "SANDBOX_TYK_HOME"
    cache_folder = ("tyk", versions.TYK)
    install_holds = ("tyk", "templates/")
    install_fix = "point it at a Tyk gateway install such as /opt/tyk-gateway, or unset it."

    def build(self, cache: Path, target: Path, say: Say) -> None:
        source = os.environ.get("SANDBOX_TYK_SOURCE", "").strip()
        go = require_tool("go", GO_HINT)
        work = target / "src"
        if source == go_source.GOPROXY_SOURCE:
            src = _from_module_proxy(go, work, say)
        elif source:
            src = _from_archive(source, cache, work, say)
        else:
            try:
                src = _from_archive(TYK.default_source, cache, work, say)
            except SandboxError as first:
                say(f"{first.message} Trying the Go module proxy by commit instead.")
                try:
                    src = _from_module_proxy(go, work, say)
                except SandboxError as second:
                    raise SandboxError(
                        f"No Tyk {versions.TYK} source could be had: {first.message} {second.message}",
                        "set SANDBOX_TYK_SOURCE to a local copy of the source tarball, or SANDBOX_TYK_HOME to "
                        "an installed gateway (see docs/install.md, \"Getting the Tyk gateway\").") from second
        go_source.go_build(TYK, go, src, target / "tyk", {**os.environ, "CGO_ENABLED": "0"}, say)
        shutil.copytree(src / "templates", target / "templates")  # read at run time (`template_path`)
        shutil.rmtree(work)

    def prepare(self, ctx: ComponentContext, say: Say) -> None:
        data = ctx.data_dir(self.name)
        for sub in ("apps", "middleware", "policies"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        for js in middleware().glob("*.js"):  # the plugins the APIs name, read from the gateway's working folder
            shutil.copyfile(js, data / "middleware" / js.name)
        # it holds the gateway secret and the Redis password
        write_private(data / "tyk.conf", json.dumps(gateway_config(ctx, self.home(ctx.cache) / "templates"), indent=2))

    def processes(self, ctx: ComponentContext) -> list[ProcessSpec]:
        return [ProcessSpec("tyk", [str(self.home(ctx.cache) / "tyk"), "--conf",
                                    str(ctx.data_dir(self.name) / "tyk.conf")], cwd=ctx.data_dir(self.name))]

    def health(self, ctx: ComponentContext) -> Check:
        return http_ok(ctx.url("tyk") + "/hello", lambda r: hello_complaint(r.json()))


def _from_archive(source: str, cache: Path, work: Path, say: Say) -> Path:
    return go_source.from_archive(TYK, source, cache / "tyk" / "downloads", work, say)


def _from_module_proxy(go: str, work: Path, say: Say) -> Path:
    ref = f"{versions.TYK_MODULE}@{versions.TYK_COMMIT}"
    say(f"go mod download {ref} ({versions.TYK})")
    p = run_json([go, "mod", "download", "-json", ref])
    if p.get("Error") or not p.get("Dir"):
        raise SandboxError(f"The Go module proxy did not serve {ref} "
                           f"({p.get('Error', 'no module directory').splitlines()[0]}).",
                           "set GOPROXY to a proxy that serves it, or use a source tarball (SANDBOX_TYK_SOURCE).")
    shutil.copytree(p["Dir"], work)  # the module cache is read-only; go build needs to write
    for d in (work, *work.rglob("*")):
        if d.is_dir():
            d.chmod(0o755)
    return work


def run_json(cmd: list[str]) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    try:
        return json.loads(p.stdout)
    except ValueError:
        return {"Error": (p.stderr or p.stdout or f"exit {p.returncode}").strip()}
