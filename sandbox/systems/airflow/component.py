"""Apache Airflow in its own virtualenv, installed from the frozen constraints.

Runs the four services `airflow standalone` would, but started one by one: standalone's scheduler and
triggerer serve logs on every interface (0.0.0.0:8793/8794), which a sandbox must not do. The API server
reads task logs from the shared log folder instead, so the log servers are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from sandbox import versions
from sandbox.errors import SandboxError
from sandbox.host.provision import Say, cached_build, is_done, run
from sandbox.host.readiness import Check, http_ok
from sandbox.host.supervisor import base_env
from sandbox.plan import issuer
from sandbox.runtime.component import Component, ComponentContext, Login, ProcessSpec
from sandbox.systems.airflow import files as airflow_files
from sandbox.systems.airflow import kube_executor
from sandbox.systems.airflow.client import SIGN_IN
from sandbox.systems.airflow.token_helper import ROUTES_FILE
from sandbox.systems.openbao.client import MOUNT

# pip installs the lock as it is: every file checked against its hash, nothing resolved again (provision, below)
PIP_LOCKED = ("install", "--quiet", "--disable-pip-version-check", "--require-hashes", "--no-deps")
SERVICES = ("scheduler", "dag-processor", "triggerer", "api-server")
HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def find_python() -> str:
    want = versions.AIRFLOW_PYTHON
    if f"{sys.version_info.major}.{sys.version_info.minor}" == want:
        return sys.executable
    exe = shutil.which(f"python{want}")
    if exe:
        return exe
    raise SandboxError(
        f"Airflow's frozen environment needs Python {want}, which was not found on PATH.",
        f"install python{want} (e.g. apt-get install python{want}-venv, or pyenv install {want}).",
    )


def health_complaint(body: dict) -> str | None:
    """None when every Airflow component reports healthy, else which ones do not."""
    bad = [f"{k}={body.get(k, {}).get('status', 'missing')}" for k in HEALTH_KEYS
           if body.get(k, {}).get("status") != "healthy"]
    return "airflow not healthy: " + ", ".join(bad) if bad else None


# Airflow's settings whichever runtime runs it (a test holds the compose file's to these); paths, ports and secrets
# are each runtime's own.
SETTINGS = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__PARALLELISM": "4",  # LocalExecutor forks this many workers up front
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",  # another listener we do not need
    # Each service would load Alembic and compare the schema's revision with the code's at its start (~0.65
    # CPU-s each, four services): the sandbox has the database migrated before any service starts (a migrated
    # template copy, or `db migrate` for another version's; in containers, airflow-init).
    "AIRFLOW__DATABASE__CHECK_MIGRATIONS": "False",
    # A task whose process died (a killed scheduler's workers, a laptop closed mid-run) fails visibly within
    # about a minute instead of five: a sandbox's runs are short, and nobody should wait on a dead one.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
    # Where user code runs (tasks, triggers, DAG parsing) a managed connection comes with its credential;
    # server processes (API server, `airflow connections get`) see the metastore's: the route, no secret.
    airflow_files.BACKEND_SETTING: airflow_files.BACKEND,
}


def unit_of(args: list[str]) -> list:
    """[module, its arguments] of a service's command after its program: `-m MODULE …` (Python), else Airflow's CLI."""
    return [args[1], args[2:]] if args[:1] == ["-m"] else ["airflow", args]


def labels(names: Iterable[str]) -> list[str]:
    """What `ps` shows of the launcher: the services' short names."""
    return [name.removeprefix("airflow-") for name in names]


# The launcher as Airflow's image runs it (its Python on PATH, the lib folder on PYTHONPATH)
CONTAINER_LAUNCHER = ["python", "-m", airflow_files.SERVICES_MODULE]


class Airflow(Component):
    name = "airflow"
    cluster_form = kube_executor.FORM  # on a cluster: the KubernetesExecutor, a pod per task
    image_user = 50000  # the official image's airflow user (group 0)
    holds_handoff = True
    default_ports = {"airflow": 28080}
    after = ("openbao",)  # its client secrets are in the vault, read with its own token
    start_timeout = 180.0
    # The API server's worker waits for idle keep-alive connections ([api] worker_timeout, 120 s) before it exits
    # on TERM; nothing of it needs a graceful end (the metastore is transactional), so KILL follows soon.
    stop_grace = 2.0
    # Nobody has a password of Airflow's: people sign in through Keycloak, and the sandbox calls Airflow's API as
    # its own client's service account (`sandbox` in Airflow's realm), whose secret this is.
    login = Login("sandbox", "airflow_caller_secret")
    service = "airflow-api-server"
    secrets = ("airflow_fernet_key", "airflow_jwt_secret", "airflow_api_secret_key", "airflow_client_secret")
    # The task execution API (Cadwyn) generates its routers for every API version on its first request, 3-7 CPU-s
    # on two cores: otherwise a task's first call waits for it (smoke's first task, a user's first DAG run).
    first_use = ("/execution/health",)
    crash_fixes = (
        ("AirflowConfigException", "correct that setting in Airflow's configuration (the sandbox's Airflow reads "
                                   "airflow.cfg in its AIRFLOW_HOME, `sandbox logs airflow` shows where), then "
                                   "`sandbox up`"),
        ("Trigger runner process has died", "a trigger ended the triggerer's runner (the log names it above this "
                                            "line): fail its task or delete its row in the trigger table, then "
                                            "`sandbox up`"),
        ("ModuleNotFoundError", "install the module where every Airflow process imports it (an installed package, "
                                "or the sandbox's lib folder), or remove what names it; then `sandbox up`"),
        ("database is locked", "another process holds Airflow's SQLite metastore: `sandbox down --force`, then "
                               "`sandbox up`"),
        ("Address already in use", "another process holds Airflow's port: stop it, or `sandbox up --port "
                                   "airflow=<free port>`"),
    )

    def start_after(self, ctx: ComponentContext) -> tuple[str, ...]:
        """Only user code reads the vault (a task, a trigger, a DAG file being parsed), and all of it comes from the
        DAG folder: while that is empty (a new sandbox, before its first apply) Airflow starts beside the vault, not
        after it — on the docker runtime, the second or two OpenBao takes to be up and issue Airflow's token."""
        folder = ctx.handoff.dag_folder
        return self.after if folder.is_dir() and any(folder.iterdir()) else ()

    def venv(self, cache: Path) -> Path:
        digest = hashlib.sha256(versions.airflow_lock_text().encode()).hexdigest()[:10]
        return cache / "airflow" / f"{versions.AIRFLOW}-py{versions.AIRFLOW_PYTHON}-{digest}"

    def provisioned(self, cache: Path) -> bool:
        return is_done(self.venv(cache))

    def provision(self, cache: Path, say: Say) -> None:
        def build(tmp: Path) -> None:
            python = find_python()
            say(f"creating a virtualenv (Python {versions.AIRFLOW_PYTHON})")
            run([python, "-m", "venv", str(tmp)], "creating Airflow's virtualenv")
            lock = tmp / "requirements.lock"
            lock.write_text(versions.airflow_lock_text())
            say(f"pip install apache-airflow=={versions.AIRFLOW}, every file checked against its pinned hash "
                "(about a minute)")
            # --no-deps: the lock is the whole resolution already. Without it pip resolves again, and asks the
            # index for an extra's base (fastapi-cli's `uvicorn[standard]`) unpinned: it took a uvicorn released
            # after the lock and refused it for having no hash. `pip check` then proves the lock complete.
            run([str(tmp / "bin" / "pip"), *PIP_LOCKED, "-r", str(lock)], "installing Airflow")
            run([str(tmp / "bin" / "pip"), "check"], "checking Airflow's install is complete")
            # A migrated metadata database every new sandbox copies: saves each one `airflow db migrate`.
            say("airflow db migrate (template database)")
            env = {**base_env(), "AIRFLOW_HOME": str(tmp / "template"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                   "PATH": f"{tmp / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
            run([str(tmp / "bin" / "airflow"), "db", "migrate"], "migrating Airflow's template database", env=env)
            for leftover in (tmp / "template").iterdir():
                if leftover.name != "airflow.db":
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()

        cached_build(self.venv(cache), build, say)

    def _env(self, ctx: ComponentContext) -> dict[str, str]:
        home = ctx.data_dir(self.name)
        url = ctx.url("airflow")
        venv_bin = self.venv(ctx.cache) / "bin"
        return {
            **SETTINGS,
            "AIRFLOW_HOME": str(home),
            "HOME": str(ctx.handoff.home),
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ctx.handoff.dag_folder),
            # Keycloak's auth manager: its realm from the lib folder's sign-in file, its client's secret here
            **airflow_files.auth_settings(ctx.handoff.lib, ctx.url("keycloak")),
            "AIRFLOW__KEYCLOAK_AUTH_MANAGER__CLIENT_SECRET": ctx.secrets["airflow_client_secret"],
            # Pinned per sandbox: tokens and encrypted connections survive restarts.
            "AIRFLOW__CORE__FERNET_KEY": ctx.secrets["airflow_fernet_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": ctx.secrets["airflow_jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": ctx.secrets["airflow_api_secret_key"],
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(ctx.ports["airflow"]),
            "AIRFLOW__API__BASE_URL": url,
            # Without this, task processes call the execution API on the default port 8080.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            # The sandbox's code (token helper, secrets backend, triggerer guard) for every process, triggerer included.
            "PYTHONPATH": str(ctx.handoff.lib),
            # its plugin: a task whose pod lost what the sandbox keeps from tasks says so in its log (kubernetes)
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ctx.handoff.lib / airflow_files.PLUGINS),
            "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS":
                json.dumps({"vault_url": ctx.url("openbao"), "vault_token_file": str(ctx.handoff.vault_token),
                            "vault_mount": MOUNT, "routes_file": str(ctx.handoff.lib / ROUTES_FILE)}),
        }

    def host_folders(self, ctx: ComponentContext) -> dict[str, Path]:
        return {"SANDBOX_DAGS": ctx.handoff.dag_folder, "SANDBOX_AIRFLOW_SECRETS": ctx.handoff.vault_token.parent,
                "SANDBOX_AIRFLOW_WORKER_HOME": ctx.handoff.home, "SANDBOX_AIRFLOW_LIB": ctx.handoff.lib,
                "SANDBOX_AIRFLOW_CONFIG": ctx.data_dir(self.name)}

    def prepare_host(self, ctx: ComponentContext) -> None:
        home = ctx.data_dir(self.name)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        ctx.handoff.dag_folder.mkdir(parents=True, exist_ok=True)
        ctx.handoff.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        airflow_files.install_lib(ctx.handoff.lib)
        ctx.handoff.vault_token.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # the client secrets moved to the vault: a sandbox of an earlier version loses its copy of them here
        (ctx.handoff.vault_token.parent / "airflow-variables.json").unlink(missing_ok=True)
        (home / "passwords.json").unlink(missing_ok=True)  # the simple auth manager's, before Keycloak signed in

    def prepare(self, ctx: ComponentContext, say: Say) -> None:
        self.prepare_host(ctx)
        home = ctx.data_dir(self.name)
        db, marker = home / "airflow.db", home / f".migrated-{versions.AIRFLOW}"
        if not db.exists():
            shutil.copyfile(self.venv(ctx.cache) / "template" / "airflow.db", db)
            marker.write_text("from the template\n")
        elif not marker.exists():  # a sandbox made by another Airflow version
            say("airflow db migrate")
            env = {**base_env(), **self._env(ctx)}
            run([str(self.venv(ctx.cache) / "bin" / "airflow"), "db", "migrate"], "airflow db migrate", env=env)
            marker.write_text("migrated\n")

    def processes(self, ctx: ComponentContext) -> list[ProcessSpec]:
        airflow = str(self.venv(ctx.cache) / "bin" / "airflow")
        env = self._env(ctx)
        command = {s: [airflow, s] for s in SERVICES}
        command["triggerer"] = [str(self.venv(ctx.cache) / "bin" / "python"), "-m", airflow_files.TRIGGERER_MODULE]
        extra = {"scheduler": ["--skip-serve-logs"], "triggerer": ["--skip-serve-logs"],
                 "api-server": ["--workers", "1"]}
        # The API server runs no user code and calls Keycloak for every sign-in and permission: it does not read
        # the workers' HOME, where a ~/.netrc for the gateway's host (127.0.0.1, Keycloak's too) would add Basic auth
        # to those calls (`sandbox repro netrc-override` puts one there).
        own = {"api-server": {"HOME": str(ctx.data_dir(self.name))}}
        return [ProcessSpec(f"airflow-{s}", [*command[s], *extra.get(s, [])], env={**env, **own.get(s, {})},
                            cwd=ctx.data_dir(self.name)) for s in SERVICES]

    def launcher(self, ctx: ComponentContext, units: list[ProcessSpec]) -> ProcessSpec | None:
        """The four services forked from one process that imported Airflow once (sandbox_services): a quarter of
        the CPU-seconds a start costs, and a second less to healthy on two cores."""
        python = str(self.venv(ctx.cache) / "bin" / "python")
        base = units[0].env
        plan = json.dumps([[u.name, *unit_of(u.cmd[1:]), {k: v for k, v in u.env.items() if base.get(k) != v}]
                           for u in units])
        return ProcessSpec("airflow-services",
                           [python, "-m", airflow_files.SERVICES_MODULE, *labels(u.name for u in units)],
                           env={**units[0].env, "SANDBOX_SERVICES": plan}, cwd=units[0].cwd)

    def shared_container(self, commands: dict[str, list[str]]) -> tuple[list[str], dict[str, str]] | None:
        """The same in one container (the image's entry point runs `python …` as given, anything else as an airflow
        command): each container imported Airflow on its own, ~4.5 CPU-s of a docker `up` more than natively."""
        plan = [[name, *unit_of(cmd[1:] if cmd[:1] == ["python"] else cmd)] for name, cmd in commands.items()]
        return [*CONTAINER_LAUNCHER, *labels(commands)], {"SANDBOX_SERVICES": json.dumps(plan)}

    def release_command(self, unit: str) -> list[str]:
        return [*CONTAINER_LAUNCHER, "--release", unit]

    def compose_settings(self, ctx: ComponentContext) -> dict[str, str]:
        """Its realm and callers in a container, as the lib folder's sign-in file says now."""
        auth = airflow_files.auth_settings(ctx.handoff.lib, "")
        return {"SANDBOX_AIRFLOW_REALM": auth["AIRFLOW__KEYCLOAK_AUTH_MANAGER__REALM"],
                "SANDBOX_AIRFLOW_CLIENT_ID": auth["AIRFLOW__KEYCLOAK_AUTH_MANAGER__CLIENT_ID"],
                "SANDBOX_AIRFLOW_CALLERS": auth["AIRFLOW__KEYCLOAK_AUTH_MANAGER__JWT_FEDERATED_CLIENT_IDS"]}

    def extra_urls(self, ctx: ComponentContext) -> dict[str, str]:
        """Where people and callers sign in: the issuer of Airflow's realm (its token endpoint below it)."""
        realm = airflow_files.auth_settings(ctx.handoff.lib, "")["AIRFLOW__KEYCLOAK_AUTH_MANAGER__REALM"]
        return {SIGN_IN: issuer(ctx.url("keycloak"), realm)}

    def health(self, ctx: ComponentContext) -> Check:
        return http_ok(ctx.url("airflow") + "/api/v2/monitor/health", lambda r: health_complaint(r.json()))

