"""pytest plugin (entry point `sandbox`; `-p no:sandbox` turns it off): the sandbox as fixtures.

    def test_orders(sandbox, sandbox_token):
        token = sandbox_token("airflow", env="dev")
        ...

Options: --sandbox-spec / ini sandbox_spec, --sandbox-home / ini sandbox_home, --sandbox-without / ini
sandbox_without ("unavailable" leaves out what this machine cannot provision), --sandbox-keep. Ports come
from SANDBOX_PORTS as for the CLI.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandbox import reconcile
from sandbox.errors import SandboxError
from sandbox.paths import SandboxPaths
from sandbox.runtime.base import RUNTIMES
from sandbox.settings import Settings
from sandbox.spec import load as load_spec
from sandbox.stack import hold as hold_mod
from sandbox.stack.factory import make_runtime
from sandbox.stack.handle import Handle


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("sandbox", "airflow-tyk-sandbox")
    g.addoption("--sandbox-spec", help="spec file for the `sandbox` fixture (default: the bundled spec)")
    g.addoption("--sandbox-home", help="sandbox directory to start or attach to (default: SANDBOX_HOME or the "
                                       "default sandbox, so a running `sandbox up` is reused)")
    g.addoption("--sandbox-without", action="append", default=None,
                help="leave a component out (repeatable); 'unavailable' leaves out what cannot be provisioned")
    g.addoption("--sandbox-keep", action="store_true", help="leave the sandbox running after the session")
    g.addoption("--sandbox-snapshot-on-failure", metavar="DIR", default=None,
                help="when a test that uses the sandbox fails, write the sandbox's snapshot (`sandbox snapshot`) to "
                     "DIR/<test>.json: an artifact to `sandbox compare` with a machine where the test passes")
    g.addoption("--sandbox-runtime", choices=RUNTIMES, default=None,
                help="runtime of a sandbox the session starts (default: as `sandbox up` chooses)")
    parser.addini("sandbox_spec", "spec file for the `sandbox` fixture (relative to the rootdir)")
    parser.addini("sandbox_home", "sandbox directory (relative to the rootdir)")
    parser.addini("sandbox_without", "components to leave out, space-separated", type="args")
    parser.addini("sandbox_runtime", "runtime of a sandbox the session starts: local or docker")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sandbox_spec(path): run this module against its own spec file")
    path = _spec_path(config)
    if path is not None:
        try:
            load_spec(path)  # a spec that does not validate stops the session here, with its message
        except SandboxError as e:
            raise pytest.UsageError(f"sandbox spec: {e}") from None


def _rooted(config: pytest.Config, value: str | None) -> Path | None:
    return (config.rootpath / value).resolve() if value else None


def _spec_path(config: pytest.Config) -> Path | None:
    return _rooted(config, config.getoption("sandbox_spec") or config.getini("sandbox_spec") or None)


def _paths(config: pytest.Config) -> SandboxPaths:
    value = config.getoption("sandbox_home") or config.getini("sandbox_home")
    try:
        return SandboxPaths.resolve(_rooted(config, value) if value else None)
    except SandboxError as e:  # a home others use: one sentence and the fix, not an internal error
        raise pytest.UsageError(f"sandbox home: {e.message} Fix: {e.fix}") from None


def _settings(config: pytest.Config) -> Settings:
    """What the environment says, read once per session (as the CLI reads it once per command)."""
    if not hasattr(config, "_sandbox_settings"):
        config._sandbox_settings = Settings.from_environment()  # type: ignore[attr-defined]
    return config._sandbox_settings  # type: ignore[attr-defined]


def _without(config: pytest.Config) -> list[str]:
    # the command line, then the environment (as for the CLI), then the ini file
    return list(config.getoption("sandbox_without") or _settings(config).without or config.getini("sandbox_without"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    # which sandbox the tests use, said first: a suite run beside `sandbox up` is a second stack unless told otherwise
    home = _paths(config).home
    lines = [f"sandbox: the tests' own sandbox in {home} (started here unless it runs; `--sandbox-home DIR` "
             "attaches to another, such as the one `sandbox up` started)"]
    without = _without(config)
    if without:
        what = ", ".join("whatever cannot be provisioned" if w == "unavailable" else w for w in without)
        lines.append(f"sandbox: LEAVING OUT {what}: tests of those components will skip or fail")
    return lines


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    left_out = hold_mod.left_out(_paths(config)) if _without(config) else {}
    if left_out:
        terminalreporter.section("sandbox: components left out", sep="=", yellow=True, bold=True)
        for name, why in sorted(left_out.items()):
            terminalreporter.line(f"{name}: {why}")


def _xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("dsession")


def pytest_sessionstart(session: pytest.Session) -> None:
    if _xdist_controller(session.config):
        session.config._sandbox_held = _paths(session.config)  # type: ignore[attr-defined]
        hold_mod.hold(session.config._sandbox_held)  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session) -> None:
    paths = getattr(session.config, "_sandbox_held", None)
    if paths is not None:
        hold_mod.release(paths, keep=session.config.getoption("sandbox_keep"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    folder = _rooted(item.config, item.config.getoption("sandbox_snapshot_on_failure"))
    handle = getattr(item, "funcargs", {}).get("sandbox")
    if folder is None or report.when != "call" or not report.failed or handle is None:
        return
    from sandbox.commands import snapshot
    path = folder / ("".join(c if c.isalnum() or c in "-_." else "_" for c in item.nodeid) + ".json")
    try:  # the sandbox as it is now (a component restarted since the session began has other processes)
        taken = snapshot.of_runtime(handle.spec, make_runtime(handle.paths, _settings(item.config), handle.runtime))
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(snapshot.dump(taken))
    except Exception as e:  # noqa: BLE001 - a failure here must not end the user's session: the report says it
        report.sections.append(("sandbox snapshot", f"not taken: {type(e).__name__}: {e}"))
        return
    report.sections.append(("sandbox snapshot", f"written to {path}: `sandbox compare {path}` on a machine where "
                                                "this test passes names what differs"))


@pytest.fixture(scope="session")
def sandbox(request: pytest.FixtureRequest):
    """The stack, started or attached to, seeded from the spec. Yields a `sandbox.stack.handle.Handle`."""
    config = request.config
    without = _without(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def progress(component: str, message: str) -> None:
        if reporter is not None and not os.environ.get("PYTEST_XDIST_WORKER"):
            reporter.write_line(f"sandbox: {component}: {message}")

    try:
        runtime = config.getoption("sandbox_runtime") or config.getini("sandbox_runtime") or None
        handle = hold_mod.acquire(_paths(config), _settings(config), _spec_path(config), without, progress, runtime)
    except SandboxError as e:
        pytest.fail(f"sandbox could not start: {e}", pytrace=False)
    try:
        yield handle
    finally:  # also on Ctrl-C: pytest runs finalizers before it exits
        hold_mod.release(handle.paths, keep=config.getoption("sandbox_keep"))


@pytest.fixture
def sandbox_token(sandbox):
    """sandbox_token(account, env="dev") -> a fresh access token from Keycloak."""
    return sandbox.token


@pytest.fixture
def sandbox_session(sandbox):
    """sandbox_session(env, service, as_=None) -> a requests.Session through the gateway, with a valid token."""
    opened = []

    def make(env: str, service: str, as_: str | None = None):
        s = sandbox.session(env, service, as_)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def sandbox_run_dag(sandbox):
    """sandbox_run_dag(dag_id, conf=None, timeout=180) -> {"state", "dag_run_id", "tasks": {task: state}}."""
    return sandbox.run_dag


@pytest.fixture(scope="module", autouse=True)
def _sandbox_module_spec(request: pytest.FixtureRequest):
    """`pytestmark = pytest.mark.sandbox_spec("my.yaml")`: the module runs against its own spec, then the
    session's spec is restored."""
    marker = request.node.get_closest_marker("sandbox_spec")
    if marker is None:
        yield
        return
    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.fail("pytest.mark.sandbox_spec re-seeds the shared sandbox, which would change it under the other "
                    "xdist workers; run such modules without -n, or with their own --sandbox-home.", pytrace=False)
    handle = request.getfixturevalue("sandbox")
    path = Path(request.node.path).parent / marker.args[0]
    with use_spec(handle, path):
        yield


@contextmanager
def use_spec(handle: Handle, path: Path):
    try:
        spec = load_spec(path)
    except SandboxError as e:
        pytest.fail(f"sandbox spec of {path.name}: {e}", pytrace=False)
    previous = handle.spec
    handle.spec = spec
    handle.apply_report = reconcile.apply(spec, handle.endpoints, handle.paths)
    try:
        yield handle
    finally:
        handle.spec = previous
        handle.apply_report = reconcile.apply(previous, handle.endpoints, handle.paths)
