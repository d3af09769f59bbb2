"""Airflow's part of `sandbox doctor`: where its processes resolve a connection (the connection hop), tokens a DAG
cached in Variables, and a partly-down Airflow (which service, and why, from its log)."""

from __future__ import annotations

import ast
import netrc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests

from sandbox.plan import AirflowConnection
from sandbox.runtime import crash
from sandbox.runtime.base import AirflowHandoff, Endpoints
from sandbox.systems.airflow import applier as airflow_apply
from sandbox.systems.airflow import files as airflow_files
from sandbox.systems.airflow.component import HEALTH_KEYS, Airflow
from sandbox.systems.airflow.token_helper import ROUTES_FILE, decode_claims, routes
from sandbox.systems.checks import Diagnosis, Finding, Hop, Judged
from sandbox.systems.openbao import team_backend as team_vault


def env_var_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def shadowing(conn_id: str, environs: dict[str, dict[str, str]]) -> list[str]:
    """Which Airflow processes carry an AIRFLOW_CONN_ variable for `conn_id` (it wins over the metastore)."""
    return sorted(proc for proc, env in environs.items() if env_var_name(conn_id) in env)


def airflow_environs(endpoints: Endpoints) -> dict[str, dict[str, str]]:
    if (declared := endpoints.environs()) is not None:
        return declared
    out = {}
    for pid in endpoints.components["airflow"].pids:
        try:
            p = psutil.Process(pid)
            tree = [p, *p.children(recursive=True)]
        except psutil.Error:
            continue
        for q in tree:  # a short-lived child (a parse, a task) may be gone by now: the others are still read
            try:
                out[f"{q.pid} {process_label(q.cmdline(), q.name())}"] = q.environ()
            except psutil.Error:
                continue
    return out


def process_label(cmdline: list[str], name: str) -> str:
    """How doctor names an Airflow process: its command (`…/airflow scheduler`), or for a service forked by the
    launcher (whose command line all four share) the name the service took (`scheduler`)."""
    if cmdline[1:3] == ["-m", airflow_files.SERVICES_MODULE]:
        return name
    return " ".join(cmdline[1:3])


def proxied(url: str, environs: dict[str, dict[str, str]]) -> list[str]:
    """Which Airflow processes would send a request for `url` through a proxy, and through which."""
    return sorted(f"{proc} via {proxy}" for proc, env in environs.items() if (proxy := proxy_for(url, env)))


def proxy_for(url: str, env: dict[str, str]) -> str | None:
    """The proxy a process with environment `env` sends a request for `url` through, None for none (requests'
    rules: the scheme's proxy variable, lower case first, unless NO_PROXY lists the host, the host:port or a parent
    domain)."""
    parts = urlsplit(url)
    host, scheme = parts.hostname or "", parts.scheme
    proxy = next((env[k] for k in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY")
                  if env.get(k)), None)
    if not proxy:
        return None
    no = [h.strip().lstrip(".") for h in (env.get("no_proxy") or env.get("NO_PROXY") or "").split(",")]
    if any(h == "*" or h in (host, f"{host}:{parts.port}") or host.endswith("." + h) for h in no if h):
        return None
    return proxy


ROLES = ("triggerer", "scheduler", "dag-processor", "api-server", "task pods")  # task pods: a cluster's executor


def role_name(proc: str) -> str | None:
    """`<pid> <args>` of an Airflow process -> its role ("triggerer", ...); None for a process of none."""
    return next((r for r in ROLES if r in proc), None)


def role(proc: str) -> str:
    """`<pid> <args>` of an Airflow process -> what it is ("the triggerer", ...)."""
    return f"the {r}" if (r := role_name(proc)) else f"process {proc}"


def without_backend(environs: dict[str, dict[str, str]]) -> list[str]:
    """Airflow processes that do not load the sandbox's secrets backend: their connections come without the
    credential. (A process that rewrote its title reads an empty environment: not judged.)"""
    return sorted({role(proc) for proc, env in environs.items()  # Airflow's own, not what a task started
                   if env and any(r in proc for r in ROLES)
                   and env.get(airflow_files.BACKEND_SETTING) != airflow_files.BACKEND})


def triggerer_cannot_import(dag_folder: Path) -> list[tuple[str, str]]:
    """(file, class) of auth and trigger classes defined in the DAG folder: a deferred task hands them to the
    triggerer by dotted path, and the triggerer does not import from the DAG folder."""
    found = []
    for path in sorted(dag_folder.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(), str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                    ast.unparse(b).endswith(("Trigger", "Auth", "AuthBase")) for b in node.bases):
                found.append((path.name, node.name))
    return found


def netrc_login(home: Path, url: str) -> str | None:
    """The login a ~/.netrc in `home` holds for `url`'s host: requests sends it as Basic auth whenever a request
    has no auth of its own, replacing a bearer header set by hand."""
    path = home / ".netrc"
    if not path.exists():
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(urlsplit(url).hostname or "")
    except (OSError, netrc.NetrcParseError):
        return "(unreadable entry)"
    return entry[0] if entry else None


def stale_tokens(variables: list[dict], client_id: str, issuer: str, now: float) -> list[tuple[str, int]]:
    """Airflow Variables that hold an expired access token of `client_id` from `issuer` (a token cached without
    its expiry): (key, seconds since it expired)."""
    out = []
    for v in variables:
        value = str(v.get("value") or "")
        claims = decode_claims(value) if value.count(".") == 2 else {}
        if claims.get("azp") == client_id and claims.get("iss") == issuer and claims.get("exp", now) < now:
            out.append((v["key"], round(now - claims["exp"])))
    return out


@dataclass
class Seen:
    """What the connection hop looks at: the connection wanted, the metastore's copy (None: missing), the Airflow
    processes' environments, and the folders Airflow reads."""

    want: AirflowConnection
    live: dict | None
    environs: dict[str, dict[str, str]]
    handoff: AirflowHandoff
    team: team_vault.TeamBackend | None = None  # a [secrets] backend the team set in Airflow's environment
    team_read: team_vault.VaultRead | None = None  # its read of the connection, repeated from the host


def _proxied(s: Seen) -> Finding:
    proxies = proxied(s.want.token_url, s.environs) + proxied(s.want.url, s.environs)
    if not proxies:
        return None
    host = urlsplit(s.want.url).hostname
    procs = len({p.split(" via ")[0] for p in proxies})
    return (f"calls to {host} go through a proxy: {proxies[0]}",
            f"Airflow's tasks send {s.want.conn_id}'s calls (token and gateway) through a proxy: HTTP_PROXY/"
            f"HTTPS_PROXY is set in {procs} process(es) and NO_PROXY does not list {host}. Fix: add {host} to "
            "NO_PROXY where the workers run (or unset the proxy) and restart them.")


def _shadowed(s: Seen) -> Finding:
    shadows = shadowing(s.want.conn_id, s.environs)
    if not shadows:
        return None
    var = env_var_name(s.want.conn_id)
    return (f"{var} is set in {len(shadows)} Airflow process(es) ({shadows[0]}); tasks use it, the UI shows the "
            "metastore",
            f"{s.want.conn_id} is shadowed by the environment variable {var}: tasks do not use the connection "
            "everyone sees. Fix: unset it where Airflow runs and restart Airflow.")


def _without_backend(s: Seen) -> Finding:
    bare = without_backend(s.environs)
    if not bare:
        return None
    who = ", ".join(bare)
    do = "do" if len(bare) > 1 or bare[0].endswith("pods") else "does"
    return (f"{who}: {airflow_files.BACKEND_SETTING} is not {airflow_files.BACKEND}",
            f"{who[0].upper()}{who[1:]} {do} not load the sandbox's secrets backend: {s.want.conn_id} comes "
            "without its credential there, and a deferred call's auth_type is dropped by HttpAsyncHook (it applies "
            f"one only with a login). Fix: give it the workers' [workers] secrets_backend ({airflow_files.BACKEND}) "
            "and restart it.")


def _unimportable(s: Seen) -> Finding:
    found = triggerer_cannot_import(s.handoff.dag_folder)
    if not found:
        return None
    file, cls = found[0]
    return (f"{file} in the DAG folder defines {cls}, which the triggerer cannot import",
            f"{file} in the DAG folder defines {cls}: a deferred task that names it (an HttpOperator's auth_type, a "
            "trigger) fails, because the triggerer imports it by its dotted path and the DAG folder is not on its "
            f"path. Fix: move it to a module every Airflow process imports (an installed package, or the lib folder "
            f"{s.handoff.lib}).")


def _team_backend(s: Seen) -> Finding:
    return team_vault.judge(s.want.conn_id, s.team, s.team_read, (s.live or {}).get("host"))


def _missing(s: Seen) -> Finding:
    if s.live is not None:
        return None
    return "not in Airflow's metastore", f"{s.want.conn_id} does not exist in Airflow. Fix: `sandbox apply`."


def _netrc(s: Seen) -> Finding:
    user = netrc_login(s.handoff.home, s.want.url)
    if not user:
        return None
    host = urlsplit(s.want.url).hostname
    return (f"~/.netrc of Airflow's workers has login {user!r} for {host}",
            f"Airflow's workers have a ~/.netrc entry for {host} ({s.handoff.home / '.netrc'}): a task that sets the "
            "Authorization header itself gets it replaced by the entry's Basic credentials. Fix: remove the entry, "
            "or give the hook auth_type=SandboxAuth.")


def _login(s: Seen) -> Finding:
    if not (s.live or {}).get("login"):
        return None
    return (f"login {s.live['login']!r} is set",
            f"{s.want.conn_id} has a login, so Airflow's HTTP hook sends Basic auth and silently drops the Bearer "
            "token. Fix: clear the login (`sandbox apply`).")


def _drift(s: Seen) -> Finding:
    drift = airflow_apply.differences(s.live or {}, airflow_apply.connection_body(s.want))
    if not drift:
        return None
    return (f"differs from the spec: {', '.join(drift)}",
            f"{s.want.conn_id} differs from the spec ({', '.join(drift)}). Fix: `sandbox apply`.")


def _route_drift(s: Seen) -> Finding:
    route = _routes(s.handoff).get(s.want.conn_id)
    drift = sorted(k for k, v in s.want.route().items() if (route or {}).get(k) != v)
    if not drift:
        return None
    what = "has no entry" if route is None else f"differs from the spec: {', '.join(drift)}"
    return (f"{ROUTES_FILE} {what}",
            f"{s.want.conn_id}'s entry in {ROUTES_FILE} {what}, so tasks get their token from the wrong place. "
            "Fix: `sandbox apply` rewrites the file.")


def _routes(handoff: AirflowHandoff) -> dict[str, dict]:
    try:
        return routes(handoff.lib)
    except (OSError, ValueError):
        return {}


# in this order: the first finding is the connection hop's verdict
CONNECTION_CHECKS: tuple[Callable[[Seen], Finding], ...] = (
    _proxied, _shadowed, _without_backend, _team_backend, _missing, _netrc, _login, _drift, _route_drift, _unimportable)


def judge_connection(seen: Seen) -> Judged:
    found = next((f for check in CONNECTION_CHECKS if (f := check(seen))), None)
    if found:
        return Hop("connection", False, found[0]), found[1]
    return Hop("connection", True, f"metastore and {ROUTES_FILE} match the spec ({seen.want.url})"), None


def airflow_down(endpoints: Endpoints, log_lines: Callable[[str], list[str]]) -> tuple[Diagnosis, bool]:
    """A partly-down Airflow: each of its services (as its health endpoint and the runtime see them), and why,
    from its log. Returns the diagnosis and whether the API server answers (connections can then be walked)."""
    st = endpoints.components["airflow"]
    d = Diagnosis("airflow")
    try:
        health = requests.get(f"{st.url}/api/v2/monitor/health", timeout=10).json()
    except (requests.RequestException, ValueError):
        health = None
    d.hops.append(Hop("api-server", health is not None, f"{st.url}/api/v2/monitor/health " +
                      ("answers" if health is not None else "does not answer")))
    # A container that runs all of Airflow's services (docker) is named after the API server; when one service's
    # end stopped it, the runtime says that service ended: the others stopped with it.
    exited = set(st.ended)
    for svc in HEALTH_KEYS:
        name = svc.replace("_", "-")
        status = (health or {}).get(svc, {}).get("status") if health is not None else None
        if f"airflow-{name}" in exited:  # the runtime saw it exit: Airflow says healthy until its heartbeat ages
            d.hops.append(Hop(name, False, f"its process exited ({st.detail})"))
        else:
            d.hops.append(Hop(name, None if health is None else status == "healthy",
                              "not checked: the API server does not answer" if health is None else status or "missing"))
    if "airflow-api-server" in exited:
        d.hops[0] = Hop("api-server", False, f"its process exited ({st.detail})")
    elif "airflow-api-server" in st.stopped:
        d.hops[0] = Hop("api-server", False, f"stopped with {', '.join(sorted(exited))}, which shares its container "
                                             f"({st.detail})")
    if not any(h.ok is False for h in d.hops):  # the runtime's view is all there is
        d.hops.append(Hop("processes", False, st.detail or f"airflow is {st.state}"))
    down = [h.name for h in d.hops if h.ok is False]
    line = crash.cause(log_lines("airflow"))
    said = f" Its log says: {line.rstrip('.')}." if line else ""
    fix = crash.fix_for(line, Airflow.crash_fixes) if line else "see `sandbox logs airflow`; `sandbox up` restarts it"
    d.verdict = f"Airflow is partly down: {', '.join(down) or 'not healthy'}.{said} Fix: {fix}."
    # the connections are walked with the admin's login: only while a process of ours serves the port
    return d, health is not None and bool(st.pids)
