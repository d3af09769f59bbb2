"""The sandbox spec: load `sandbox.yaml`, validate it, and name the YAML path and line of every problem.

Validation walks PyYAML's node tree rather than plain data, because nodes remember where they stood.
A spec must be UTF-8; problems are listed in line order.

Defaults for keys a spec may leave out (the constants below; the README quotes them):

- `environments.<name>.token_lifespan`: DEFAULT_TOKEN_LIFESPAN, 300 seconds (so `dev: {}` is a whole environment)
- `grants[i].rate`: DEFAULT_RATE, `100/min`
- `grants[i].quota`: DEFAULT_QUOTA, none: no quota, calls are limited by the rate only
- `services.<name>.upstream`: `bundled`; `services.<name>.routes`: `[/]`
- `airflow.environment`: the first environment: the realm Airflow's auth manager trusts (one realm per Airflow)
- `people.<name>.role`: DEFAULT_ROLE, `Viewer`
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from sandbox.errors import SandboxError

# used with fullmatch: `$` alone would accept a trailing newline ("dev\n" became a realm)
NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
SCOPE = re.compile(r"[A-Za-z][A-Za-z0-9._:-]{0,63}")
RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+)?\s*([a-z]+)\s*")
# a whole http(s) URL: scheme, host[:port], an optional path; no whitespace or control character anywhere
UPSTREAM = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?(/[^\s\x00-\x1f\x7f]*)?")
UNITS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
         "d": 86400, "day": 86400, "week": 604800}
BUNDLED = "bundled"

# Defaults for optional keys, kept here so the module docstring and README can quote one place.
DEFAULT_TOKEN_LIFESPAN = 300  # seconds: Keycloak's own default access-token lifespan
DEFAULT_RATE = "100/min"  # a grant's rate; parsed like a written one, so it must stay a valid rate
DEFAULT_QUOTA: str | None = None  # a grant's quota; None means no quota (unlimited)
# Airflow's roles as its Keycloak auth manager names them (its `create-all` makes a policy for each)
ROLES = ("Viewer", "User", "Op", "Admin")
DEFAULT_ROLE = "Viewer"


@dataclass(frozen=True)
class Rate:
    count: int
    per_seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{self.per_seconds}s"


@dataclass(frozen=True)
class Environment:
    name: str
    token_lifespan: int


@dataclass(frozen=True)
class Service:
    name: str
    upstream: str  # BUNDLED or a URL
    routes: tuple[str, ...]


@dataclass(frozen=True)
class Account:
    name: str
    environments: tuple[str, ...]
    description: str = ""


AIRFLOW_SERVICE = "airflow"  # reserved: Airflow's own REST API behind the gateway, for callers into Airflow
DAG_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")  # Airflow's own rule for a DAG id
ASSET_URI = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Grant:
    account: str
    service: str
    scopes: tuple[str, ...]
    rate: Rate
    quota: Rate | None
    dags: tuple[str, ...] = ()  # on Airflow's API: the DAGs the account may trigger and whose runs it may read
    assets: tuple[str, ...] = ()  # on Airflow's API: the assets (by URI) it may post events of

    @property
    def inbound(self) -> bool:
        return self.service == AIRFLOW_SERVICE


@dataclass(frozen=True)
class Person:
    """Somebody who signs in to Airflow's UI through Keycloak, in Airflow's realm."""

    name: str
    role: str = DEFAULT_ROLE


@dataclass(frozen=True)
class Spec:
    environments: dict[str, Environment]
    services: dict[str, Service]
    accounts: dict[str, Account]
    grants: tuple[Grant, ...]
    airflow_account: str
    source: str = "<spec>"
    airflow_environment: str = ""  # the realm Airflow's auth manager trusts; '' = the first environment
    people: dict[str, Person] = field(default_factory=dict)

    @property
    def airflow_realm(self) -> str:
        return self.airflow_environment or next(iter(self.environments))

    def inbound_grant(self, account: str) -> Grant | None:
        """The account's grant on Airflow's own API, if it has one."""
        return next((g for g in self.grants if g.account == account and g.inbound), None)

    def grants_in(self, env: str) -> list[Grant]:
        return [g for g in self.grants if env in self.accounts[g.account].environments]


@dataclass
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.path}: {self.message}"


SPEC_FIX = "correct the spec; nothing was applied. The default spec is fixtures/sandbox.yaml."


class SpecError(SandboxError):
    def __init__(self, source: str, problems: list[Problem], fix: str = SPEC_FIX):
        # In line order, so the list reads like the file; sorted() is stable, so a line keeps its checking order.
        self.problems = sorted(problems, key=lambda p: p.line)
        first = self.problems[0]
        more = "".join(f"\n  {p}" for p in self.problems[1:])
        super().__init__(f"{source}, {first}{more}", fix, exit_code=2)


@dataclass
class _Checker:
    problems: list[Problem] = field(default_factory=list)

    def add(self, path: str, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(path, node.start_mark.line + 1, message))

    def mapping(self, node: yaml.Node, path: str, required: set[str], optional: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.add(path, node, f"must be a mapping, not {_kind(node)}")
            return {}
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            sub = f"{path}.{key}" if path else str(key)
            if key is None:
                self.add(path, k, "keys must be plain names")
            elif key in out:
                self.add(sub, k, f"duplicate key {key!r}")
            elif key not in required | optional:
                known = ", ".join(sorted(required | optional))
                self.add(sub, k, f"unknown key {key!r} (known: {known})")
            else:
                out[key] = v
        for key in sorted(required - out.keys()):
            self.add(f"{path}.{key}" if path else key, node, f"missing required key {key!r}")
        return out

    def named_mapping(self, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """A mapping whose keys are user-chosen names: checks the names and their uniqueness."""
        if not isinstance(node, yaml.MappingNode):
            self.add(path, node, f"must be a mapping of names, not {_kind(node)}")
            return []
        seen, out = set(), []
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else ""
            if name in seen:
                self.add(f"{path}.{name}", k, f"duplicate name {name!r}")
                continue
            seen.add(name)
            if not NAME.fullmatch(name):
                shown = name if name.isprintable() else repr(name)[1:-1]  # a newline in a name is shown, not printed
                self.add(f"{path}.{shown}", k, f"{name!r} is not a valid name (lowercase letters, digits and '-', "
                                              "starting with a letter, at most 31 characters)")
                continue
            out.append((name, k, v))
        if not out and not self.problems:
            self.add(path, node, "must name at least one entry")
        return out

    def scalar(self, node: yaml.Node, path: str, kind: type, default=None):
        if node is None:
            return default
        if not isinstance(node, yaml.ScalarNode):
            self.add(path, node, f"must be {_article(kind)}, not {_kind(node)}")
            return default
        if kind is int:
            if node.tag != "tag:yaml.org,2002:int" or not node.value.lstrip("+").isdigit():
                self.add(path, node, f"must be a whole number, not {node.value!r}")
                return default
            return int(node.value)
        return node.value

    def str_list(self, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node]]:
        if not isinstance(node, yaml.SequenceNode):
            self.add(path, node, f"must be a list, not {_kind(node)}")
            return []
        out = []
        for i, item in enumerate(node.value):
            value = self.scalar(item, f"{path}[{i}]", str)
            if value is not None:
                out.append((value, item))
        return out

    def rate(self, node: yaml.Node, path: str) -> Rate | None:
        text = self.scalar(node, path, str)
        if text is None:
            return None
        try:
            return parse_rate(text)
        except ValueError as e:
            self.add(path, node, str(e))
            return None


def parse_rate(text: str) -> Rate:
    """`COUNT/UNIT` or `COUNT/N UNIT` as a Rate; the ValueError's text is the problem as the user sees it."""
    m = RATE.fullmatch(text)
    if not m or m.group(3) not in UNITS:
        raise ValueError(f"{text!r} is not a rate; write COUNT/UNIT or COUNT/N UNIT, e.g. 100/min, "
                         f"5000/day, 10/30s (units: {', '.join(UNITS)})")
    count, n = int(m.group(1)), int(m.group(2) or 1)
    if count == 0 or n == 0:
        raise ValueError(f"{text!r} allows nothing; use a count and period above zero")
    return Rate(count, n * UNITS[m.group(3)])


def _kind(node: yaml.Node) -> str:
    return {yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list"}.get(type(node), f"{node.value!r}")


def _article(kind: type) -> str:
    return {int: "a whole number", str: "a string"}[kind]


def fixture_path(name: str) -> Path:
    """A file of the project's `fixtures/` folder: installed as the `sandbox.fixtures` package data, or, in a
    source checkout (an editable install does not map that folder), read where it lies."""
    try:
        return Path(str(resources.files("sandbox.fixtures").joinpath(name)))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "fixtures" / name


def default_spec_path() -> Path:
    return fixture_path("sandbox.yaml")


@dataclass(frozen=True)
class Chosen:
    """Which spec a command uses: the one it was given, else the one the sandbox runs (`up --spec` recorded it),
    else the bundled one. `note` says when a given spec is not the one the sandbox runs."""

    path: Path
    note: str = ""


def chosen(record: Path, given: Path | None) -> Chosen:
    """`record`: the sandbox's SandboxPaths.spec_record."""
    try:
        runs: Path | None = Path(json.loads(record.read_text())["path"])
    except (OSError, ValueError, KeyError, TypeError):
        runs = None
    if given is None:
        return Chosen(runs or default_spec_path())
    given = given.resolve()
    note = f"Using {given}, not {runs}, which this sandbox runs (`sandbox up --spec` changes that)." \
        if runs is not None and runs != given else ""
    return Chosen(given, note)


def remember(record: Path, path: Path) -> None:
    """What `up --spec` started: every later command of this sandbox uses it unless told otherwise."""
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"path": str(path.resolve())}) + "\n")


def load(path: Path | None = None) -> Spec:
    path = path or default_spec_path()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SandboxError(f"The spec {path} cannot be read ({e.strerror}).",
                           "pass an existing file with --spec, or leave --spec out for the default.") from e
    try:
        # UTF-8 whatever the locale (YAML's own encoding), and the bytes are at hand to place a bad one.
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(str(path), data, e) from e
    # The universal newlines read_text() applied, so lines and scalars read as they always did.
    return parse(text.replace("\r\n", "\n").replace("\r", "\n"), str(path))


def _not_utf8(source: str, data: bytes, e: UnicodeDecodeError) -> SpecError:
    # Everything before the first bad byte decoded, so its lines can be counted the way the parser counts them.
    before = data[:e.start].decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    line, column = before.count("\n") + 1, len(before.rsplit("\n", 1)[-1]) + 1
    return SpecError(source, [Problem("(document)", line, f"not UTF-8: byte 0x{data[e.start]:02x} in column {column} "
                                                          "cannot be decoded")],
                     "save the spec as UTF-8 (your editor's encoding setting, or iconv -t UTF-8); nothing was applied.")


def parse(text: str, source: str = "<spec>") -> Spec:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise SpecError(source, [Problem("(document)", line, f"not valid YAML: {getattr(e, 'problem', e)}")]) from e
    if root is None:
        raise SpecError(source, [Problem("(document)", 1, "the spec is empty")])
    c = _Checker()
    top = c.mapping(root, "", {"version", "environments", "services", "accounts", "grants"}, {"airflow", "people"})
    if "version" in top and c.scalar(top["version"], "version", int) not in (1, None):
        c.add("version", top["version"], "only version 1 is known")
    # each section checked on its own, every problem of every section collected before one error names them all
    envs = _environments(c, top)
    services = _services(c, top)
    accounts = _accounts(c, top, envs)
    airflow_account, airflow_environment = _airflow(c, top, root, accounts, envs)
    grants = _grants(c, top, accounts, services, airflow_environment or next(iter(envs), ""))
    people = _people(c, top)
    if c.problems:
        raise SpecError(source, c.problems)
    return Spec(envs, services, accounts, tuple(grants), airflow_account, source, airflow_environment, people)


def _environments(c: _Checker, top: dict) -> dict[str, Environment]:
    envs: dict[str, Environment] = {}
    for name, _, node in c.named_mapping(top["environments"], "environments") if "environments" in top else []:
        f = c.mapping(node, f"environments.{name}", set(), {"token_lifespan"})
        life = c.scalar(f.get("token_lifespan"), f"environments.{name}.token_lifespan", int)
        if life is not None and not 10 <= life <= 86400:
            c.add(f"environments.{name}.token_lifespan", f["token_lifespan"],
                  f"{life} is out of range (10 to 86400 seconds)")
        envs[name] = Environment(name, life or DEFAULT_TOKEN_LIFESPAN)
    return envs


def _services(c: _Checker, top: dict) -> dict[str, Service]:
    services: dict[str, Service] = {}
    for name, _, node in c.named_mapping(top["services"], "services") if "services" in top else []:
        p = f"services.{name}"
        if name == AIRFLOW_SERVICE:
            c.add(p, node, "'airflow' is reserved: Airflow's own API, which grants name as `service: airflow` "
                           "with `dags` and `assets`; call your service something else")
        f = c.mapping(node, p, set(), {"upstream", "routes"})
        upstream = c.scalar(f.get("upstream"), f"{p}.upstream", str, BUNDLED)
        if upstream != BUNDLED and not UPSTREAM.fullmatch(upstream or ""):
            c.add(f"{p}.upstream", f["upstream"], f"{upstream!r} is neither 'bundled' nor an http(s) URL")
        routes = c.str_list(f["routes"], f"{p}.routes") if "routes" in f else [("/", node)]
        for i, (r, rnode) in enumerate(routes):
            if not r.startswith("/"):
                c.add(f"{p}.routes[{i}]", rnode, f"{r!r} must start with '/'")
        services[name] = Service(name, upstream or BUNDLED, tuple(r for r, _ in routes))
    return services


def _accounts(c: _Checker, top: dict, envs: dict[str, Environment]) -> dict[str, Account]:
    accounts: dict[str, Account] = {}
    for name, _, node in c.named_mapping(top["accounts"], "accounts") if "accounts" in top else []:
        p = f"accounts.{name}"
        f = c.mapping(node, p, {"environments"}, {"description"})
        listed = c.str_list(f["environments"], f"{p}.environments") if "environments" in f else []
        for i, (e, enode) in enumerate(listed):
            if e not in envs:
                c.add(f"{p}.environments[{i}]", enode, f"no environment named {e!r}")
        accounts[name] = Account(name, tuple(e for e, _ in listed),
                                 c.scalar(f.get("description"), f"{p}.description", str, "") or "")
    return accounts


def _grants(c: _Checker, top: dict, accounts: dict[str, Account], services: dict[str, Service],
            airflow_env: str) -> list[Grant]:
    grants: list[Grant] = []
    seen_pairs: dict[tuple[str, str], int] = {}
    # (env, service, scope) -> (account, grant index): each environment has its own gateway APIs
    scope_owner: dict[tuple[str, str | None, str], tuple[str | None, int]] = {}
    gnode = top.get("grants")
    if gnode is not None and not isinstance(gnode, yaml.SequenceNode):
        c.add("grants", gnode, f"must be a list, not {_kind(gnode)}")
    for i, node in enumerate(gnode.value if isinstance(gnode, yaml.SequenceNode) else []):
        p = f"grants[{i}]"
        inbound = _names(node, "service") == AIRFLOW_SERVICE  # into Airflow: DAGs and assets, not scopes
        f = c.mapping(node, p, {"account", "service"} | (set() if inbound else {"scopes"}),
                      {"rate", "quota"} | ({"dags", "assets"} if inbound else set()))
        account = c.scalar(f.get("account"), f"{p}.account", str)
        service = c.scalar(f.get("service"), f"{p}.service", str)
        if account is not None and account not in accounts:
            c.add(f"{p}.account", f["account"], f"no account named {account!r}")
        if service is not None and service not in services and not inbound:
            c.add(f"{p}.service", f["service"], f"no service named {service!r}")
        dags = _listed(c, f, p, "dags", DAG_ID, "is not a DAG id Airflow accepts")
        assets = _listed(c, f, p, "assets", ASSET_URI, "is not an asset URI (scheme://…)")
        if inbound and not dags and not assets:
            c.add(p, node, "a grant on Airflow's API names what the account may do there: `dags` it may trigger, "
                           "`assets` it may post events of")
        if inbound and account in accounts and airflow_env and airflow_env not in accounts[account].environments:
            c.add(f"{p}.account", f["account"], f"Airflow's API is served in {airflow_env} only (its auth manager "
                  f"trusts that realm): add {airflow_env} to accounts.{account}.environments")
        scopes = c.str_list(f["scopes"], f"{p}.scopes") if "scopes" in f else []
        for j, (s, snode) in enumerate(scopes):
            if not SCOPE.fullmatch(s):
                c.add(f"{p}.scopes[{j}]", snode, f"{s!r} is not a valid scope name")
        if "scopes" in f and not scopes and isinstance(f["scopes"], yaml.SequenceNode):
            c.add(f"{p}.scopes", f["scopes"], "must list at least one scope")
        rate = c.rate(f["rate"], f"{p}.rate") if "rate" in f else parse_rate(DEFAULT_RATE)
        quota = c.rate(f["quota"], f"{p}.quota") if "quota" in f else (parse_rate(DEFAULT_QUOTA) if DEFAULT_QUOTA
                                                                        else None)
        if account and service:
            if (account, service) in seen_pairs:
                c.add(p, node, f"{account} is already granted {service} in grants[{seen_pairs[(account, service)]}]")
            seen_pairs[(account, service)] = i
        envs_of = accounts[account].environments if account in accounts else ()
        for j, (s, snode) in enumerate(scopes):
            clash = next((o for e in envs_of if (o := scope_owner.setdefault((e, service, s), (account, i)))[0]
                          != account), None)
            if service and clash:
                c.add(f"{p}.scopes[{j}]", snode, f"scope {s!r} of {service} is already granted to {clash[0]} in "
                      f"grants[{clash[1]}]; the gateway maps a scope to one policy, so give each account its own")
        if inbound and account:  # the gateway maps a scope to a policy: each caller's grant has its own
            scopes = [(f"{AIRFLOW_SERVICE}.{account}", node)]
        if account and service and rate:
            grants.append(Grant(account, service, tuple(s for s, _ in scopes), rate, quota, dags, assets))
    return grants


def _names(node: yaml.Node, key: str) -> str | None:
    """A mapping's scalar value for `key`, read before the mapping is checked (what it is decides its keys)."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.ScalarNode):
                return v.value
    return None


def _listed(c: _Checker, f: dict, p: str, key: str, shape: re.Pattern, says: str) -> tuple[str, ...]:
    items = c.str_list(f[key], f"{p}.{key}") if key in f else []
    for j, (v, vnode) in enumerate(items):
        if not shape.fullmatch(v):
            c.add(f"{p}.{key}[{j}]", vnode, f"{v!r} {says}")
    return tuple(v for v, _ in items)


def _airflow(c: _Checker, top: dict, root, accounts: dict[str, Account],
             envs: dict[str, Environment]) -> tuple[str, str]:
    """The account behind Airflow's connections, and the environment whose realm Airflow trusts ('' = the first)."""
    airflow_account, environment = "airflow", ""
    if "airflow" in top:
        f = c.mapping(top["airflow"], "airflow", {"account"}, {"environment"})
        airflow_account = c.scalar(f.get("account"), "airflow.account", str, "airflow") or "airflow"
        if "account" in f and airflow_account not in accounts:
            c.add("airflow.account", f["account"], f"no account named {airflow_account!r}")
        environment = c.scalar(f.get("environment"), "airflow.environment", str, "") or ""
        if "environment" in f and environment and environment not in envs:
            c.add("airflow.environment", f["environment"], f"no environment named {environment!r} (Airflow's "
                  "auth manager trusts the realm of one environment of the spec)")
    elif "airflow" not in accounts and accounts:
        c.add("airflow", root, "no 'airflow' section and no account named 'airflow' for Airflow's connections")
    return airflow_account, environment


def _people(c: _Checker, top: dict) -> dict[str, Person]:
    people: dict[str, Person] = {}
    for name, _, node in c.named_mapping(top["people"], "people") if "people" in top else []:
        f = c.mapping(node, f"people.{name}", set(), {"role"})
        role = c.scalar(f.get("role"), f"people.{name}.role", str, DEFAULT_ROLE) or DEFAULT_ROLE
        if name.startswith("service-account-"):
            c.add(f"people.{name}", node, f"{name!r} is the name Keycloak gives a client's service account; "
                  "choose another")
        if role not in ROLES:
            c.add(f"people.{name}.role", f["role"], f"{role!r} is not one of Airflow's roles ({', '.join(ROLES)})")
        people[name] = Person(name, role)
    return people
