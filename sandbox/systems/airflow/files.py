"""What the sandbox puts where its Airflow reads it: the lib folder every Airflow process imports from, and the
DAG folder.

The lib folder (on PYTHONPATH of every Airflow process, the triggerer's included) holds code and no secret:
`sandbox_auth` (the token helper, SandboxAuth), `sandbox_secrets` (the workers' secrets backend that puts the
credential into each managed connection), `sandbox_triggerer` (the triggerer, started so that one unbuildable
trigger cannot end it) and, once apply has run, `sandbox_routes.json` (each connection's route and token
endpoint). The code is installed before Airflow starts (the runtimes' prepare); the routes by apply.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.host.credentials import write_private
from sandbox.spec import fixture_path
from sandbox.systems.airflow import token_helper as auth_module

if TYPE_CHECKING:  # the plan imports this system's clients; its objects are only read here
    from sandbox.plan import Desired

LIB_SOURCES = Path(__file__).parent / "lib"
TOKEN_HELPER = "sandbox_auth.py"  # the module name Airflow's processes import
BACKEND = "sandbox_secrets.SandboxSecretsBackend"  # [workers] secrets_backend
BACKEND_SETTING = "AIRFLOW__WORKERS__SECRETS_BACKEND"  # where Airflow's processes are given it
TRIGGERER_MODULE = "sandbox_triggerer"  # python -m sandbox_triggerer: the triggerer
SERVICES_MODULE = "sandbox_services"  # python -m sandbox_services: the four services, Airflow imported once
SMOKE_DAG = "sandbox_smoke.py"
PROBE_MODULE = "sandbox_probe.py"
REPRO_DAG = "sandbox_repro.py"
TEAM_AUTH = "team_http_auth.py"  # a team's own auth_type, imported by the repro DAGs (and the triggerer)
# a DAG file changed -> the DAG ids to re-parse at once (a new file is found within the processor's 5 s refresh)
REPARSE = {SMOKE_DAG: "sandbox_smoke_", REPRO_DAG: "sandbox_repro_"}
# what earlier versions kept in the DAG folder and now lives in the lib folder: removed so nothing shadows it
MOVED_FROM_DAG_FOLDER = (TOKEN_HELPER, auth_module.ROUTES_FILE)
# what a scenario may leave in the DAG folder (triggerer-import): removed only while it is the sandbox's copy
SCENARIO_LEFTOVERS = (TEAM_AUTH,)
# Airflow's sign-in as the spec makes it (its realm, its client, the callers allowed the token exchange): read when
# Airflow's processes are started (auth_settings), written by the stack before a first start and by apply
SIGN_IN_FILE = "sandbox_sign_in.json"
AUTH_MANAGER = "airflow.providers.keycloak.auth_manager.keycloak_auth_manager.KeycloakAuthManager"


PLUGINS = "plugins"  # Airflow's plugins folder inside the lib folder ([core] plugins_folder)
POLICY_PLUGIN = "sandbox_pod_policy_plugin.py"


def lib_code() -> dict[str, tuple[str, str]]:
    """The lib folder's code: file name -> (text, why it is there)."""
    return {
        TOKEN_HELPER: (Path(auth_module.__file__).read_text(), "the token helper and SandboxAuth"),
        "sandbox_secrets.py": ((LIB_SOURCES / "sandbox_secrets.py").read_text(),
                               "the workers' secrets backend: the credential travels with the connection"),
        f"{TRIGGERER_MODULE}.py": ((LIB_SOURCES / f"{TRIGGERER_MODULE}.py").read_text(),
                                   "the triggerer, kept up when one trigger cannot be built"),
        f"{SERVICES_MODULE}.py": ((LIB_SOURCES / f"{SERVICES_MODULE}.py").read_text(),
                                  "Airflow's services forked from one process that imported Airflow once"),
        "sandbox_forward.py": ((LIB_SOURCES / "sandbox_forward.py").read_text(),
                               "Keycloak's host URL inside a container (Airflow's auth manager calls it)"),
        "sandbox_pod_policy.py": ((LIB_SOURCES / "sandbox_pod_policy.py").read_text(),
                                  "what a task's pod may not take, whatever its DAG asks (kubernetes runtime)"),
        "airflow_local_settings.py": ((LIB_SOURCES / "airflow_local_settings.py").read_text(),
                                      "Airflow's hook for every pod it makes: the task pods' policy"),
        f"{PLUGINS}/{POLICY_PLUGIN}": ((LIB_SOURCES / PLUGINS / POLICY_PLUGIN).read_text(),
                                       "the policy's note in a task's own log"),
    }


def _routes_json(routes: dict[str, dict]) -> str:
    return json.dumps(routes, indent=2, sort_keys=True)


def routes_text(desired: Desired) -> str:
    return _routes_json({c.conn_id: c.route() for c in desired.connections})


def sign_in_text(desired: Desired) -> str:
    return json.dumps(desired.sign_in.handoff() if desired.sign_in else {}, indent=2, sort_keys=True)


def lib_files(desired: Desired) -> dict[str, tuple[str, str]]:
    """What apply keeps in the lib folder: its code, the routes and Airflow's sign-in."""
    return {**lib_code(), auth_module.ROUTES_FILE:
            (routes_text(desired), "each connection's route and token endpoint (no secret)"),
            SIGN_IN_FILE: (sign_in_text(desired), "Airflow's realm and the callers it lets exchange a token"),
            TEAM_AUTH: (fixture_path(f"dags/{TEAM_AUTH}").read_text(), "a team's own auth_type, for the repro DAGs")}


def write_sign_in(lib: Path, desired: Desired) -> bool:
    """Airflow's sign-in before its processes start; True when it changed (a running Airflow then restarts)."""
    return bool(write_changed(lib, {SIGN_IN_FILE: (sign_in_text(desired), "")}))


def auth_settings(lib: Path, keycloak_url: str) -> dict[str, str]:
    """Airflow's Keycloak auth manager, as the lib folder's sign-in file says (its secret is the runtime's to give).
    Before any spec was applied the realm is `master`'s: the API server starts, and nobody signs in yet."""
    try:
        sign_in = json.loads((lib / SIGN_IN_FILE).read_text())
    except (OSError, ValueError):
        sign_in = {}
    return {"AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
            "AIRFLOW__KEYCLOAK_AUTH_MANAGER__SERVER_URL": keycloak_url,
            "AIRFLOW__KEYCLOAK_AUTH_MANAGER__REALM": sign_in.get("realm", "master"),
            "AIRFLOW__KEYCLOAK_AUTH_MANAGER__CLIENT_ID": sign_in.get("client_id", "airflow-server"),
            "AIRFLOW__KEYCLOAK_AUTH_MANAGER__JWT_FEDERATED_CLIENT_IDS":
                ",".join(sign_in.get("federated_client_ids", []))}


def dag_files(desired: Desired) -> dict[str, tuple[str, str]]:
    """What apply keeps in Airflow's DAG folder: file name -> (text, why it is there)."""
    routes = routes_text(desired)
    # The smoke DAGs are built from the routes file; a digest line makes the DAG file change with it, so Airflow
    # re-parses it at once instead of at its next periodic parse.
    smoke = fixture_path(f"dags/{SMOKE_DAG}").read_text() + \
        f"# routes digest: {hashlib.sha256(routes.encode()).hexdigest()[:16]}\n"
    return {
        PROBE_MODULE: (fixture_path(f"dags/{PROBE_MODULE}").read_text(), "the smoke's and repro's hop-by-hop call"),
        SMOKE_DAG: (smoke, "the smoke DAGs, one per environment"),
        REPRO_DAG: (fixture_path(f"dags/{REPRO_DAG}").read_text(), "the DAGs `sandbox repro` shows bugs with"),
    }


def write_changed(folder: Path, files: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    """Write each file whose text differs (0600); (name, why) of each one written."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for name, (text, what) in files.items():
        target = folder / name
        if target.exists() and target.read_text() == text:
            continue
        write_private(target, text)
        written.append((name, what))
    return written


def install_lib(lib: Path) -> list[tuple[str, str]]:
    """The lib folder's code, before Airflow starts (its processes import it at start)."""
    return write_changed(lib, lib_code())


def read_routes(lib: Path) -> dict[str, dict]:
    return auth_module.routes(lib)


def write_routes(lib: Path, routes: dict[str, dict]) -> None:
    write_private(lib / auth_module.ROUTES_FILE, _routes_json(routes))
