"""The `sandbox` command: parse, call, render. No business logic lives here.

The modules that talk to the live systems (and load Keycloak's client library, half a second of start-up) are
imported by the commands that use them, so `down`, `status` and `logs` start fast.
"""

from __future__ import annotations

import dataclasses
import errno
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
from rich.markup import escape

from sandbox import spec, versions
from sandbox.commands import render
from sandbox.errors import SandboxError
from sandbox.host import ports as port_mod
from sandbox.host.supervisor import tail
from sandbox.paths import SandboxPaths
from sandbox.runtime.base import Runtime
from sandbox.settings import Settings
from sandbox.stack.factory import IMAGE_CHOICES, RUNTIMES, down_everywhere, make_runtime
from sandbox.systems import NAMES
from sandbox.systems.airflow.token_helper import TokenError, decode_claims

# the filters, named and meant the same on every command that filters (smoke, doctor, audit, map)
ENV_FILTER = click.option("--env", "env", default=None, help="Only this environment (default: every one).")
SERVICE_FILTER = click.option("--service", default=None, help="Only this service (default: every one).")
SPEC = click.option("--spec", "spec_path", type=click.Path(dir_okay=False, path_type=Path), envvar="SANDBOX_SPEC",
                    help="The sandbox spec (default: the bundled fixtures/sandbox.yaml).")
OUTPUT = click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
                      show_default=True, help="Output format.")


def place_global_options(args: list[str]) -> list[str]:
    """`--home DIR` is the group's and `-o FORMAT` a command's, but where a user writes them should not matter:
    `sandbox status --home X` is `sandbox --home X status`, `sandbox -o json status` is `sandbox status -o json`."""
    head: list[str] = []  # --home, wherever it was
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i:]
            break
        if a == "--home" and i + 1 < len(args):
            head += args[i:i + 2]
            i += 2
            continue
        if a.startswith("--home="):
            head.append(a)
        else:
            rest.append(a)
        i += 1
    # an output format before the command goes after it
    before: list[str] = []
    output: list[str] = []
    while rest and rest[0].startswith("-"):
        if rest[0] in ("-o", "--output") and len(rest) > 1:
            output += rest[:2]
            rest = rest[2:]
        else:
            before.append(rest.pop(0))
    return head + before + rest[:1] + output + rest[1:]


class SandboxGroup(click.Group):
    """Turns a SandboxError into one sentence and its fix on stderr, never a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, place_global_options(list(args)))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Usage errors in the house style too: one sentence, the fix, exit 2 (click's own words, without its
        usage block)."""
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help() if e.ctx else "")
            code = e.exit_code
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx else "sandbox"
            fix = f"`{where} --help` lists what it takes, with examples."
            if isinstance(e, click.BadParameter) and e.param is not None and isinstance(e.param.type, click.Choice):
                fix = f"use one of: {', '.join(map(str, e.param.type.choices))}; " + fix
            render.err.print(f"[bold red]Error:[/] {escape(e.format_message())}")
            render.err.print(f"[bold]Fix:[/] {escape(fix)}")
            code = 2
        except click.ClickException as e:
            e.show()
            code = e.exit_code
        except click.exceptions.Abort:
            render.err.print("Aborted.")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SandboxError as e:
            # the message and fix may quote logs and user input: "[info ]" is text, not Rich markup
            render.err.print(f"[bold red]Error:[/] {escape(e.message)}", markup=True)
            if e.fix:
                render.err.print(f"[bold]Fix:[/] {escape(e.fix)}")
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            render.err.print("Interrupted. `sandbox down` stops whatever was started.")
            ctx.exit(130)
        except OSError as e:  # the home's filesystem full, read-only or not ours: one sentence, not a traceback
            if (fix := FILESYSTEM_FIXES.get(e.errno or 0)) is None:
                raise
            where = escape(str(e.filename or "the sandbox home"))
            render.err.print(f"[bold red]Error:[/] Cannot write {where}: {e.strerror}.", markup=True)
            render.err.print(f"[bold]Fix:[/] {fix} Files already there were left as they were (writes are atomic).")
            ctx.exit(1)


FILESYSTEM_FIXES = {
    errno.ENOSPC: "free space on that filesystem, or give the sandbox another home (--home or SANDBOX_HOME).",
    errno.EDQUOT: "free space within your quota, or give the sandbox another home (--home or SANDBOX_HOME).",
    errno.EROFS: "the filesystem is read-only: give the sandbox a writable home (--home or SANDBOX_HOME).",
    errno.EACCES: "make it writable by you, or give the sandbox a home of your own (--home or SANDBOX_HOME).",
}


@dataclass(frozen=True)
class Invocation:
    """Made once by the group for every command: the sandbox's paths and what the environment says."""

    paths: SandboxPaths
    settings: Settings


def get_runtime(name: str | None = None, images: str = "auto", context: str | None = None,
                namespace: str | None = None) -> Runtime:
    """The runtime of the sandbox the group's --home chose (the one it runs on, unless `name` says another)."""
    return make_runtime(_paths(), _settings(), name, images, context, namespace)


def _invocation() -> Invocation:
    return click.get_current_context().obj


def _paths() -> SandboxPaths:
    return _invocation().paths


def _settings() -> Settings:
    return _invocation().settings


def _chosen(spec_path: Path | None) -> spec.Chosen:
    """The spec given, else the one this sandbox runs (`up --spec` recorded it), else the bundled one; a given one
    that is not what the sandbox runs is said on stderr."""
    chosen = spec.chosen(_paths().spec_record, spec_path)
    if chosen.note:
        render.err.print(f"[yellow]{render.e(chosen.note)}[/]")
    return chosen


def _spec(spec_path: Path | None) -> spec.Spec:
    return spec.load(_chosen(spec_path).path)


@click.group(name="sandbox", cls=SandboxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="SANDBOX_HOME",
              help="The sandbox's state directory (default: ~/.local/share/airflow-tyk-sandbox/default).")
@click.version_option(package_name="airflow-tyk-sandbox")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """Airflow, the Tyk gateway, Redis and Keycloak on this machine, wired from one spec."""
    ctx.obj = Invocation(SandboxPaths.resolve(home), Settings.from_environment())  # once, for every command below


@cli.command("versions")
@OUTPUT
def versions_cmd(output: str) -> None:
    """Print the pinned component versions.

    \b
    Examples:
      sandbox versions
      sandbox versions -o json
    """
    pins = versions.pins()
    if output == "json":
        render.dump_json(pins)
    else:
        render.simple_table("pinned versions", ["component", "version", "source"],
                            [[p.component, p.version, p.source] for p in pins])


@cli.group()
def images() -> None:
    """The docker runtime's images, built from package registries (no image registry needed)."""


@images.command("build")
@click.argument("components", nargs=-1, type=click.Choice(NAMES))
@OUTPUT
def images_build(components: tuple[str, ...], output: str) -> None:
    """Build images with the official images' layout from Debian, PyPI, Maven Central and the pinned sources
    (all by default); unchanged inputs are cached. `sandbox up --runtime docker --images local` uses them.

    \b
    Examples:
      sandbox images build                # every image, from package registries
      sandbox images build airflow -o json
    """
    from sandbox.commands import images as images_mod

    results = images_mod.build(list(components), _paths().cache, render.ProgressPrinter())
    if output == "json":
        render.dump_json(results)
    else:
        render.simple_table("images", ["component", "image", "result", "seconds"],
                            [[r.component, r.image, r.action, f"{r.seconds:.1f}"] for r in results])
    failed = [r for r in results if r.action == "failed"]
    for r in failed:
        render.err.print(f"[bold red]Error:[/] {r.component}: {escape(r.detail)}")
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("components", nargs=-1, type=click.Choice(NAMES))
@OUTPUT
def provision(components: tuple[str, ...], output: str) -> None:
    """Fetch and build components into the per-user cache (all by default). Safe to re-run.

    \b
    Examples:
      sandbox provision                   # every component, into the per-user cache
      sandbox provision tyk openbao
    """
    results = get_runtime().provision(list(components), render.ProgressPrinter())
    if output == "json":
        render.dump_json(results)
    else:
        render.simple_table("provisioning", ["component", "result", "seconds", "detail"],
                            [[r.name, r.action, f"{r.seconds:.1f}", r.detail] for r in results])
    failed = [r for r in results if not r.ok]
    for r in failed:  # the table folds long lines; the sentence and its fix stay whole on stderr
        render.err.print(f"[bold red]Error:[/] {r.name}: {escape(r.detail)}")
    if failed:
        sys.exit(1)


@cli.command()
@click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
              help="local (native processes), docker (containers) or kubernetes (a cluster in your kubeconfig). "
                   "Default: the one the sandbox runs on; for a new sandbox SANDBOX_RUNTIME, else docker when an "
                   "engine answers, else local.")
@click.option("--images", type=click.Choice(IMAGE_CHOICES), default="auto", show_default=True,
              help="docker runtime: official images, or local ones `sandbox images build` made; auto takes the "
                   "official image where this engine has it, else a local one (SANDBOX_IMAGE_<COMPONENT> wins).")
@click.option("--context", default=None, help="kubernetes runtime: the kubeconfig context (env SANDBOX_KUBE_CONTEXT; "
              "default the current one, recorded by name).")
@click.option("--namespace", default=None, help="kubernetes runtime: the namespace (env SANDBOX_KUBE_NAMESPACE; "
              "default one per sandbox home, like the docker runtime's project).")
@click.option("--without", multiple=True, type=click.Choice(NAMES),
              help="Leave a component out (repeatable; env SANDBOX_WITHOUT, space-separated).")
@click.option("--port", "ports", multiple=True, metavar="NAME=PORT",
              help="Override a port, e.g. --port keycloak=18080 (env SANDBOX_PORTS, comma-separated).")
@click.option("--port-offset", type=click.IntRange(1, 30000), default=None, metavar="N",
              help="Every port N higher than its default: a second sandbox beside the first, in one flag "
                   "(remembered, as every port is).")
@click.option("--show-secrets", is_flag=True, help="Show logins unmasked.")
@click.option("--no-apply", is_flag=True, help="Only start the stack; do not seed it from the spec (nor smoke it).")
@click.option("--no-smoke", is_flag=True, help="Seed, but skip the smoke run that proves every connection.")
@SPEC
@OUTPUT
def up(runtime: str | None, images: str, context: str | None, namespace: str | None, without: tuple[str, ...],
       ports: tuple[str, ...], port_offset: int | None, show_secrets: bool, no_apply: bool, no_smoke: bool,
       spec_path: Path | None, output: str) -> None:
    """Start the stack (idempotent: starts only what is not running), wait until healthy, seed it from the spec,
    and smoke it: a green `up` means every connection works end to end.

    \b
    Examples:
      sandbox up                          # start, seed from the spec, smoke
      sandbox up --spec my.yaml          # later commands use my.yaml too
      sandbox up --runtime docker --images local
      sandbox up --without tyk --port airflow=18080
      sandbox --home ~/second up --port-offset 1000   # a second sandbox beside the first
    """
    from sandbox.commands import smoke
    from sandbox.stack.seed import start_and_seed

    rt = get_runtime(runtime, images, context, namespace)
    t0 = time.monotonic()
    chosen = None if no_apply else _chosen(spec_path)
    the_spec = None if chosen is None else spec.load(chosen.path)  # a bad spec stops `up` before anything starts
    progress = render.ProgressPrinter()
    without = without or _settings().without
    asked = port_mod.parse_overrides(",".join(ports))
    if port_offset:  # every default moved; a port named with --port is taken as it is
        asked = {**{n: p + port_offset for n, p in rt.default_ports().items()}, **asked}
    started = start_and_seed(rt, the_spec, list(without), asked, progress)
    if chosen is not None and spec_path is not None:  # what it runs now: every later command uses it
        spec.remember(rt.paths.spec_record, chosen.path)
    results, rows, report, smoked = started.results, _with_ui(started.rows, rt), started.report, None
    if the_spec is not None and not no_smoke and not ({"airflow", "keycloak", "tyk", "upstream"} & set(without)):
        progress("smoke", "a real DAG run per environment, every connection through the gateway")
        smoked = smoke.run(the_spec, started.endpoints, rt.paths)
    if output == "json":
        render.dump_json({"seconds": round(time.monotonic() - t0, 2), "components": results, "apply": report,
                          "smoke": smoked, "status": render.status_dicts(rows, show_secrets)})
    else:
        render.status_table(rows, show_secrets)
        if report is not None:
            render.changes(report, applied=True)
        if smoked is not None:
            render.smoke(smoked)
        render.out.print(f"Up in {time.monotonic() - t0:.1f}s: "
                         + ", ".join(f"{r.name} {r.action}" for r in results))
    if smoked is not None and not smoked.ok:
        sys.exit(1)


@cli.command("plan")
@SPEC
@click.option("--base", "base_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="With -o md: compare with this spec (the pull request's base) instead of what the gateway "
                   "enforces now; needs no running sandbox.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "md"]), default="table", show_default=True,
              help="Output format; md: the access changes, written for the reviewer of a pull request.")
def plan_cmd(spec_path: Path | None, base_path: Path | None, output: str) -> None:
    """Show what `apply` would create, update or delete in each system. Changes nothing.

    \b
    Examples:
      sandbox plan
      sandbox plan --spec my.yaml -o json
      sandbox plan -o md --spec pr.yaml --base main.yaml
    """
    from sandbox import reconcile
    if output == "md":
        _access_plan(_spec(spec_path), base_path)
        return
    if base_path is not None:
        raise SandboxError("--base compares two specs' access, which only -o md shows.",
                           "run `sandbox plan -o md --base BASE_SPEC`.", exit_code=2)
    report = reconcile.plan_report(_spec(spec_path), get_runtime().endpoints())
    if output == "json":
        render.dump_json(report)
    else:
        render.changes(report, applied=False)


def _access_plan(wanted: spec.Spec, base_path: Path | None) -> None:
    from sandbox.clients import Clients, why_not_running
    from sandbox.commands import access
    from sandbox.plan import Addresses, plan
    after = access.of_desired(plan(wanted, Addresses.nowhere()))
    if base_path is not None:
        before, label = access.of_desired(plan(spec.load(base_path), Addresses.nowhere())), f"`{base_path}`"
    else:
        endpoints = get_runtime().endpoints()
        if why := why_not_running(endpoints, "tyk"):
            raise SandboxError(f"The access plan compares the spec with what the gateway enforces, and {why}.",
                               "run `sandbox up`, or compare with another spec: `sandbox plan -o md --base FILE`.")
        gw = Clients(endpoints).tyk
        before, label = access.of_gateway(gw.policies(), gw.apis()), "what the gateway enforces now"
    sys.stdout.write(access.markdown(access.diff(before, after), label, f"`{wanted.source}`"))


@cli.command("apply")
@SPEC
@OUTPUT
def apply_cmd(spec_path: Path | None, output: str) -> None:
    """Converge Keycloak, Tyk and Airflow to the spec; a second run changes nothing.

    \b
    Examples:
      sandbox apply
      sandbox apply --spec my.yaml -o json
    """
    from sandbox import reconcile
    rt = get_runtime()
    report = reconcile.apply(_spec(spec_path), rt.endpoints(), rt.paths)
    if output == "json":
        render.dump_json(report)
    else:
        render.changes(report, applied=True)


@cli.command("smoke")
@ENV_FILTER
@SERVICE_FILTER
@SPEC
@OUTPUT
def smoke_cmd(env: str | None, service: str | None, spec_path: Path | None, output: str) -> None:
    """Prove every connection end to end with real DAG runs; exit 1 when one fails.

    \b
    Examples:
      sandbox smoke
      sandbox smoke --env dev --service orders -o json
    """
    from sandbox.commands import smoke
    rt = get_runtime()
    report = smoke.run(_spec(spec_path), rt.endpoints(), rt.paths, env, service)
    if output == "json":
        render.dump_json(report)
    else:
        render.smoke(report)
    if not report.ok:
        sys.exit(1)


@cli.command("repro")
@click.argument("name", required=False)
@click.option("--all", "run_all", is_flag=True, help="Run the whole catalogue.")
@click.option("--keep", is_flag=True, help="Leave the fault in place for a person (`sandbox repro revert` ends it).")
@SPEC
@OUTPUT
def repro_cmd(name: str | None, run_all: bool, keep: bool, spec_path: Path | None, output: str) -> None:
    """Reproduce a credential bug through a real DAG run: `repro list`, `repro NAME`, `repro --all`, `repro revert`.

    \b
    Examples:
      sandbox repro list
      sandbox repro rotated-secret
      sandbox repro --all -o json
      sandbox repro revert
    """
    from sandbox.scenarios import repro
    from sandbox.scenarios.base import ScenarioContext
    if name == "list":  # each with the connection it breaks in this spec
        scenarios = repro.listed(_spec(spec_path))
        if output == "json":
            render.dump_json([{"name": s.name, "connection": s.connection, "expected": s.expected, "cause": s.cause,
                               "fix": s.fix, "story": s.story, "runtimes": s.runtimes} for s in scenarios])
        else:
            render.scenarios(scenarios)
        return
    if not name and not run_all:
        raise SandboxError("Name a scenario, or give --all.", "`sandbox repro list` shows the catalogue.", exit_code=2)
    rt = get_runtime()
    ctx = ScenarioContext.of(_spec(spec_path), rt)
    if name == "revert":
        kept = repro.revert_kept(ctx)
        render.out.print(f"Reverted {', '.join(sorted(kept)) or 'nothing (no fault kept)'}; the spec is applied again.")
        say = render.ProgressPrinter()
        rows = repro.prove_reverted(ctx, kept, lambda m: say("repro", m))
        for row in rows:  # each connection a fault was in: its smoke verdict is green again, or says why not
            render.out.print(f"{'✓' if row.ok else '✗'} {row.connection}" + ("" if row.ok else f": {row.verdict}"))
        if not all(r.ok for r in rows):
            sys.exit(1)
        return
    if run_all and keep:
        raise SandboxError("--keep leaves one fault in place; it does not go with --all.",
                           "keep one scenario at a time: sandbox repro NAME --keep.", exit_code=2)
    names = repro.runnable(rt.name) if run_all else [repro.scenario(name or "").name]
    progress = render.ProgressPrinter()
    for other in (n for n in repro.CATALOGUE if run_all and n not in names):
        progress(other, f"left out: it needs {repro.CATALOGUE[other].needs}")
    repro.prepare(ctx, progress)
    results = [repro.run(n, ctx, keep, progress) for n in names]
    if output == "json":
        render.dump_json([repro.as_dict(r) for r in results])
    else:
        for r in results:
            render.repro_result(r)
    if not all(r.ok for r in results):
        sys.exit(1)


@cli.command()
@click.argument("accounts", nargs=-1, metavar="[ACCOUNT]...")
@click.option("--env", "env", default=None, help="Only this environment (Keycloak realm); default: every one.")
@click.option("--signing-key", is_flag=True, help="Rotate the realms' signing keys instead of client secrets: new "
              "key passive, gateway told, new key active, old key retired after the longest token lifespan.")
@click.option("--now", is_flag=True, help="No grace: the old secret or key stops working at once (shows the "
              "failures a rotation without overlap causes).")
@SPEC
@OUTPUT
def rotate(accounts: tuple[str, ...], env: str | None, signing_key: bool, now: bool, spec_path: Path | None,
           output: str) -> None:
    """Rotate client secrets (of ACCOUNTs, default every one) or signing keys, with no failed call.

    \b
    Examples:
      sandbox rotate                      # every client secret, with a grace period
      sandbox rotate airflow --env dev
      sandbox rotate --signing-key --env prod
    """
    from sandbox.commands import rotation
    the_spec = _spec(spec_path)
    if signing_key and accounts:
        raise SandboxError("A signing key belongs to a realm, not to an account.",
                           "leave out the accounts (use --env for one realm), or leave out --signing-key.",
                           exit_code=2)
    progress = render.ProgressPrinter()
    endpoints = get_runtime().endpoints()
    if signing_key:
        done = rotation.rotate_signing_keys(the_spec, endpoints, _paths(), rotation.realm_targets(the_spec, env),
                                            now, progress)
    else:
        done = rotation.rotate_secrets(the_spec, endpoints, _paths(), rotation.secret_targets(the_spec, list(accounts),
                                                                                                env), now, progress)
    if output == "json":
        render.dump_json(done)
    else:
        render.simple_table("rotated", ["kind", "name", "old", "new", "overlap (s)", "took (s)"],
                            [[r.kind, r.name, r.old, r.new, f"{r.grace_s:.0f}", f"{r.seconds:.1f}"] for r in done])


@cli.command()
@click.option("--since", default=None, metavar="DURATION", help="Only calls of the last DURATION (30s, 15m, 2h, 1d).")
@ENV_FILTER
@SERVICE_FILTER
@click.option("--dag", "dag_id", default=None, help="Only this DAG's calls.")
@click.option("--secrets", "secrets_", is_flag=True, help="The vault's records instead: which identity read which "
              "secret path, when (and what it was refused).")
@click.option("--inbound", is_flag=True, help="Calls into Airflow through the gateway instead: which caller triggered "
              "which DAG run or posted which asset event, checked against Airflow's runs.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="Output format.")
def audit(since: str | None, env: str | None, service: str | None, dag_id: str | None, secrets_: bool,
          inbound: bool, output: str) -> None:
    """Which DAG called which service: the gateway's records by DAG, task, API and status.

    \b
    Examples:
      sandbox audit
      sandbox audit --since 10m --dag sandbox_smoke_dev -o json
      sandbox audit --secrets
      sandbox audit --inbound --since 1h
    """
    from sandbox.clients import Clients
    from sandbox.commands import audit as audit_mod
    try:
        window = audit_mod.parse_duration(since) if since else None
    except ValueError as e:
        raise SandboxError(f"--since {e}.", "e.g. --since 15m.", exit_code=2) from e
    if secrets_:
        if dag_id:
            raise SandboxError("--dag does not apply to --secrets (the vault knows identities, not DAGs).",
                               "leave out --dag.", exit_code=2)
        return _audit_secrets(window, output)
    if inbound:
        return _audit_inbound(window, env, dag_id, output)
    endpoints = get_runtime().endpoints()
    live = Clients(endpoints)
    records = audit_mod.read(live.redis)
    try:
        runs = audit_mod.airflow_runs(live.airflow)
    except SandboxError as e:  # the records stand without Airflow; none of them can be verified then
        runs = None
        render.err.print(f"[yellow]Calls not checked against Airflow's task instances: {e.message}[/]")
    filters = audit_mod.Filters(time.time() - window if window else None, dag_id, env, service)
    rows = audit_mod.summarise(records, filters, runs)
    if output == "json":
        render.dump_json(rows)
    elif output == "csv":
        render.csv_rows(rows, audit_mod.AuditRow)
    else:
        render.audit(rows, audit_mod.tally(records, filters))


def _audit_inbound(window: int | None, env: str | None, dag_id: str | None, output: str) -> None:
    from sandbox.clients import Clients
    from sandbox.commands import audit as audit_mod
    from sandbox.commands import audit_inbound
    live = Clients(get_runtime().endpoints())
    records = audit_mod.read(live.redis)
    try:
        triggers = audit_inbound.airflow_triggers(live.airflow)
    except SandboxError as e:
        triggers = None
        render.err.print(f"[yellow]Triggers not checked against Airflow's runs: {e.message}[/]")
    rows = [r for r in audit_inbound.rows(records, triggers, time.time() - window if window else None)
            if (env is None or r.env == env) and (dag_id is None or r.action == f"trigger {dag_id}")]
    if output == "json":
        render.dump_json(rows)
    elif output == "csv":
        render.csv_rows(rows, audit_inbound.InboundRow)
    else:
        render.simple_table("calls into Airflow through the gateway",
                            ["when", "env", "caller", "method", "path", "status", "made", "run", "verified"],
                            [[r.when, r.env, r.account, r.method, r.path, str(r.status), r.action, r.run_id or "-",
                              "yes" if r.verified else "no"] for r in rows])


def _audit_secrets(window: int | None, output: str) -> None:
    from sandbox.clients import why_not_running
    from sandbox.systems.openbao import audit_log as vault_audit
    rt = get_runtime()
    if why := why_not_running(rt.endpoints(), "openbao"):
        raise SandboxError(f"The vault's records are read from the running vault, and {why}.", "run `sandbox up`.")
    log = rt.log_path("openbao")  # the whole log: the audit records are most of it
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    rows = vault_audit.summarise(vault_audit.records(lines), time.time() - window if window else None)
    if output == "json":
        render.dump_json(rows)
    elif output == "csv":
        render.csv_rows(rows, vault_audit.SecretAccess)
    else:
        render.simple_table("vault access by identity and path", ["identity", "policies", "operation", "path",
                                                                    "outcome", "count", "first seen", "last seen"],
                            [[r.identity, r.policies, r.operation, r.path, r.outcome, str(r.count), r.first_seen,
                              r.last_seen] for r in rows])


@cli.command()
@ENV_FILTER
@SERVICE_FILTER
@click.option("--connection", default=None, help="Only this connection id (e.g. tyk_dev_orders).")
@click.option("--caller", default=None, help="Walk this account's way into Airflow through the gateway instead "
              "(grant, token, gateway, exchange, Airflow's permission).")
@click.option("--token-file", type=click.File("r"), default=None, help="With --caller: an Airflow token the caller "
              "holds (from Airflow's /auth/token), read from this file or `-` for stdin, never the command line.")
@click.option("--said", default=None, help="With --caller: what the caller's own call was answered (e.g. \"403 "
              "Client credentials authentication failed\"), read beside what the walk finds.")
@SPEC
@OUTPUT
def doctor(env: str | None, service: str | None, connection: str | None, caller: str | None, token_file,
           said: str | None, spec_path: Path | None, output: str) -> None:
    """Walk each connection's path hop by hop (changing nothing) and name the broken one, with the fix.

    \b
    Examples:
      sandbox doctor
      sandbox doctor --env dev --connection tyk_dev_orders -o json
      sandbox doctor --caller ci
      sandbox doctor --caller ci --token-file -  # the Airflow token ci holds, on stdin
      sandbox doctor --caller ci --said "403 Client credentials authentication failed"
    """
    from sandbox.commands import doctor as doctor_mod
    if (token_file is not None or said) and not caller:
        raise SandboxError("--token-file and --said tell of a caller's own call into Airflow: they need --caller.",
                           "add `--caller NAME` (the account that made it).", exit_code=2)
    rt = get_runtime()
    if caller:
        from sandbox.commands import doctor_caller
        held = token_file.read() if token_file is not None else None
        results = [doctor_caller.diagnose(_spec(spec_path), rt.endpoints(), _paths(), caller, held, said)]
    else:
        results = doctor_mod.run(_spec(spec_path), rt.endpoints(), rt.handoff(), env, connection,
                                 lambda name: tail(rt.log_path(name), 400), service)
    if output == "json":
        render.dump_json([{**vars(d), "ok": d.ok} for d in results])
    else:
        render.diagnoses(results)
    if not all(d.ok for d in results):
        sys.exit(1)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=False)
@SPEC
def snapshot(file: Path | None, spec_path: Path | None) -> None:
    """Write what decides each connection's credential path on this machine — where it is defined, proxies and
    ~/.netrc of Airflow's processes, a fresh token's claims, the IdP's keys and clock, the gateway's API, policy and
    quota, the vault token, versions, doctor's verdicts — as JSON with no secret in it, to compare with another's.

    \b
    Examples:
      sandbox snapshot laptop.json
      sandbox snapshot > ci.json
    """
    from sandbox.commands import snapshot as snap
    taken = snap.of_runtime(_spec(spec_path), get_runtime())
    if file is None:
        sys.stdout.write(snap.dump(taken))
        return
    file.write_text(snap.dump(taken))
    failing = [c for c, d in taken["doctor"].items() if not d["ok"]]
    render.err.print(f"snapshot of {len(taken['connections'])} connections written to {render.e(file)}"
                     + (f"; doctor fails {', '.join(failing)}" if failing else "; doctor: every connection healthy"))


@cli.command()
@click.argument("a", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(dir_okay=False, path_type=Path), required=False)
@SPEC
@click.option("-o", "--output", type=click.Choice(["table", "json", "md"]), default="table", show_default=True,
              help="Output format.")
def compare(a: Path, b: Path | None, spec_path: Path | None, output: str) -> None:
    """What differs between two snapshots (B: this machine now), in the order a call travels, and the difference
    that explains a failing connection, named by the catalogue scenario it matches. Exit 1 when one does.

    \b
    Examples:
      sandbox compare laptop.json ci.json
      sandbox compare colleague.json -o md
    """
    from sandbox.commands import compare as cmp
    from sandbox.commands import snapshot as snap
    from sandbox.scenarios import known_differences
    wanted = _spec(spec_path)
    left = snap.read(a)
    right = snap.read(b) if b is not None else snap.of_runtime(wanted, get_runtime())
    result = cmp.compare(left, right, known_differences(wanted))
    if output == "json":
        render.dump_json(result.as_dict())
    elif output == "md":
        sys.stdout.write(render.comparison_md(result))
    else:
        render.comparison(result)
    if result.explained:
        sys.exit(1)


@cli.command("map")
@ENV_FILTER
@SERVICE_FILTER
@SPEC
@click.option("-o", "--output", type=click.Choice(["table", "md", "json", "csv", "svg"]), default="table",
              show_default=True, help="A table for the terminal, Markdown for a control document, JSON or CSV for "
              "tools, an SVG picture.")
def map_cmd(env: str | None, service: str | None, spec_path: Path | None, output: str) -> None:
    """The trust boundaries: every grant as an edge (DAG, connection, account, scopes, policy, API, upstream), where
    each secret lives and its age, checked against the live systems.

    \b
    Examples:
      sandbox map
      sandbox map -o md > trust-map.md
      sandbox map -o svg > trust-map.svg
    """
    from sandbox.commands import map_render, trust_map
    rt = get_runtime()
    m = trust_map.gather(_spec(spec_path), rt.endpoints(), rt.paths)
    m = dataclasses.replace(m, edges=[e for e in m.edges if (env is None or e.env == env)
                                      and (service is None or e.service == service)])
    if output == "json":
        render.dump_json(m.as_dict())
    elif output == "table":
        render.simple_table(f"trust map of {m.spec}", list(map_render.TERMINAL_COLUMNS), map_render.terminal_rows(m))
        render.out.print("[dim]Every field of every edge: `sandbox map -o md` (or json, csv, svg).[/]")
    else:
        sys.stdout.write({"md": map_render.markdown, "csv": map_render.to_csv, "svg": map_render.svg}[output](m))


@cli.command()
@click.argument("account")
@click.option("--env", "env", default="dev", show_default=True, help="The environment (Keycloak realm).")
@SPEC
@OUTPUT
def token(account: str, env: str, spec_path: Path | None, output: str) -> None:
    """Print a fresh access token for a service account (e.g. for curl).

    \b
    Examples:
      sandbox token airflow
      sandbox token reporting --env dev -o json
    """
    from sandbox.commands.accounts import auth_for
    auth = auth_for(_spec(spec_path), get_runtime().endpoints(), _paths(), account, env)
    try:
        tok = auth.token()
    except TokenError as e:
        raise SandboxError(f"Keycloak refused a token for {account} in {env}: {e}",
                           "run `sandbox apply` to repair the client, then retry.") from e
    if output == "json":
        render.dump_json({"access_token": tok, "claims": decode_claims(tok)})
    else:
        print(tok)


@cli.command("call")
@click.argument("account")
@click.argument("service")
@click.argument("path", default="")
@click.option("--env", "env", default="dev", show_default=True, help="The environment (Keycloak realm, gateway route).")
@click.option("-X", "--request", "method", default="GET", show_default=True, help="The HTTP method.")
@click.option("-d", "--data", default=None, help="The request body.")
@SPEC
@OUTPUT
def call_cmd(account: str, service: str, path: str, env: str, method: str, data: str | None,
             spec_path: Path | None, output: str) -> None:
    """Call SERVICE through the gateway as ACCOUNT: its token, the route, the answer. Exit 1 when refused.

    \b
    Examples:
      sandbox call airflow orders
      sandbox call airflow billing /get --env prod
      sandbox call airflow orders /post -X POST -d '{"a": 1}'
      sandbox call ci airflow api/v2/dags/sandbox_smoke_dev/dagRuns -X POST -d '{"logical_date": null}'
    """
    from sandbox.commands import call as call_mod
    result = call_mod.call(_spec(spec_path), get_runtime().endpoints(), _paths(), account, service, path, env,
                           method.upper(), data)
    if output == "json":
        render.dump_json({**vars(result), "ok": result.ok})
    else:
        render.call_result(result)
    if not result.ok:
        sys.exit(1)


@cli.command()
@click.option("--force", is_flag=True, help="Also works without a (readable) state file: stops every "
              "process marked as this sandbox's and resets the state.")
@click.option("--volumes", is_flag=True, help="Also remove the sandbox's container volumes (docker) or its claims "
              "and namespace (kubernetes): Keycloak's and Airflow's databases; the next `up` starts them empty.")
@OUTPUT
def down(force: bool, volumes: bool, output: str) -> None:
    """Stop every component of the sandbox; nothing is left running. Data and secrets are kept.

    \b
    Examples:
      sandbox down
      sandbox down --volumes                # and the data
    """
    t0 = time.monotonic()
    stopped = down_everywhere(_paths(), force=force, volumes=volumes, settings=_settings())
    secs = time.monotonic() - t0
    if output == "json":
        render.dump_json({"stopped": stopped, "seconds": round(secs, 2)})
    else:
        render.out.print(f"Stopped {', '.join(stopped) or 'nothing (not running)'} in {secs:.1f}s.")


@cli.command()
@click.option("-o", "--output", type=click.Choice(["table", "json", "env"]), default="table",
              show_default=True, help="Output format.")
@click.option("--show-secrets", is_flag=True, help="Show logins unmasked.")
@click.option("--credentials", is_flag=True, help="Each credential the sandbox manages instead: where it lives "
              "and its age (client secrets, signing keys, Airflow's vault token).")
@SPEC
def status(output: str, show_secrets: bool, credentials: bool, spec_path: Path | None) -> None:
    """Show each component's state, health, URL and login.

    \b
    Examples:
      sandbox status
      sandbox status -o json --home ~/other-sandbox
      sandbox status --credentials
    """
    if credentials:
        return _credentials(spec_path, output)
    rt = get_runtime()
    rows = _with_ui(rt.status(), rt)
    if output == "json":
        render.dump_json(render.status_dicts(rows, show_secrets))
    elif output == "env":
        render.status_env(rows, show_secrets)
    else:
        render.status_table(rows, show_secrets)
        render.out.print(f"[dim]Spec:[/] {render.e(_chosen(spec_path).path)}")


def _with_ui(rows: list, rt: Runtime) -> list:
    """The stack's rows and the sandbox's page (served from the host, on either runtime)."""
    from sandbox.stack import page as lifecycle
    return [*rows, lifecycle.status_row(rt.paths, rt.name)]


@cli.command()
@click.option("--url", "url_only", is_flag=True, help="Print only the page's link (with its token), nothing else.")
@click.option("--rotate-token", is_flag=True, help="Make a new token; every session holding the old one ends.")
def ui(url_only: bool, rotate_token: bool) -> None:
    """Open the sandbox's page in a browser (where one exists) through a private file that hands it the token.

    \b
    Examples:
      sandbox ui                   # opens the page; no token on any command line
      sandbox ui --url             # the link with its token, for a browser elsewhere
      sandbox ui --rotate-token    # a new token; open tabs must be opened again
    """
    from sandbox.stack import page as lifecycle
    paths = _paths()
    if rotate_token:
        restarted = lifecycle.rotate_token(paths)
        render.out.print("A new token for the sandbox's page" + (": the page restarted, every session with the "
                         "old token has ended; `sandbox ui` opens it again." if restarted else
                         " (the page is not running; `sandbox up` starts it)."))
        return
    if url_only:
        print(lifecycle.link(paths))
        return
    opener = lifecycle.opener(paths)
    import os
    import webbrowser
    opened = False
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform == "darwin":  # a desktop
        try:
            opened = webbrowser.open(opener.as_uri())  # a file's name on the command line, not the token
        except webbrowser.Error:
            opened = False
    render.out.print(("Opened " if opened else "No browser here; open ") + opener.as_uri()
                     + ("" if opened else " in a browser on this machine, or `sandbox ui --url` for the link "
                        "(the token is the sandbox's: keep it to yourself)"))


def _credentials(spec_path: Path | None, output: str) -> None:
    from sandbox.commands import rotation
    if output == "env":
        raise SandboxError("--credentials has no env output.", "use -o table or -o json.", exit_code=2)
    rows = rotation.inventory(_spec(spec_path), get_runtime().endpoints(), _paths())
    if output == "json":
        render.dump_json(rows)
    else:
        render.simple_table("credentials", ["kind", "name", "lives in", "age", "note"],
                            [[c.kind, c.name, c.lives_in, render.age(c.age_s), c.detail] for c in rows])


@cli.command()
@click.argument("component", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C to stop).")
@click.option("-n", "--lines", default=50, show_default=True, help="How many of the last lines to show.")
def logs(component: str | None, follow: bool, lines: int) -> None:
    """Show a component's log (every component's when none is named).

    \b
    Examples:
      sandbox logs airflow
      sandbox logs -f tyk
      sandbox logs ui                     # the sandbox's page
    """
    from sandbox.stack import page

    rt = get_runtime()
    # the page runs on the host whatever the runtime: its log is a file of the home, followed as a file
    own_page = component == page.NAME
    if component and not own_page:
        rt.check_names([component], "logs")
    names = [component] if component else rt.component_names()
    for name in names:
        path = rt.paths.log(name) if own_page else rt.log_path(name)
        if not component and not path.exists():
            continue
        if not component:
            render.out.print(f"[bold]==> {name} ({escape(str(path))})[/]")
        if not path.exists():
            raise SandboxError(f"{name} has no log yet ({path}).", "start it with `sandbox up`.")
        for line in tail(path, lines):
            print(line)
    if follow:
        following = ((page.NAME, line) for line in _new_lines(rt.paths.log(page.NAME))) if own_page else \
            rt.follow(names)
        try:
            for name, line in following:
                print((f"{name}| " if len(names) > 1 else "") + line, flush=True)
        except KeyboardInterrupt:
            pass


def _new_lines(path: Path):
    """What is written to `path` from now on, line by line (Ctrl-C ends it)."""
    with path.open(errors="replace") as f:
        f.seek(0, 2)
        while True:
            line = f.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(0.2)


def main() -> None:
    cli(prog_name="sandbox")


if __name__ == "__main__":
    main()
