"""The sandbox's page in a real browser (Debian's headless Chromium, driven by Selenium) on the session's stack:
it loads with its token and refuses without; every component and connection is shown; no console error; a smoke
started from the page ends green on the page; a scenario reproduced from the page shows its symptom on its edge
and green again after its revert. And the server itself: token, Origin and Host refusals, loopback only. A
screenshot of the page is kept in test-artifacts/ and is the docs' picture (docs/ui.png)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import psutil
import pytest
import requests

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DOCS = Path(__file__).resolve().parents[2] / "docs"
CONNECTIONS = {"tyk_dev_orders", "tyk_dev_billing", "tyk_prod_orders", "tyk_prod_billing"}
SCENARIO = "missing-scope"  # a token-hop symptom in seconds, reverted by apply
# an admitted /api/state waits up to 10 s for the refresh a pause asks for (hub.look): longer than that to answer
STATE_S = 15


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "the page's tests need Debian's chromium and chromium-driver (.ci/run installs them)"
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1800"):
        opts.add_argument(arg)
    opts.binary_location = chromium
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def _link(stack) -> str:
    return stack.cli("ui", "--url").stdout.strip()


def _opener(stack) -> str:
    """What `sandbox ui` opens: the private file that hands the page its token (no browser here, so it says where)."""
    said = " ".join(stack.cli("ui").stdout.split())
    uri = (stack.home / "data" / "ui" / "open.html").as_uri()
    assert f"No browser here; open {uri}" in said, said
    return uri


def _api(stack) -> tuple[str, str]:
    """The server at 127.0.0.1 (no name to resolve for requests) and the token, from the link `--url` prints."""
    base, token = _link(stack).split("?token=")
    assert base.startswith("http://sandbox.localhost:"), base
    return base.replace("sandbox.localhost", "127.0.0.1"), token


def _wait(browser, condition, timeout: float = 30, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if got := condition():
                return got
        except Exception:  # noqa: BLE001 - the page re-renders under us: try again
            pass
        time.sleep(0.1)
    raise AssertionError(f"the page never showed {what}:\n{browser.find_element('id', 'job-lines').text}")


def _rows(browser, section: str, attr: str) -> dict[str, dict]:
    """Each row of a table as the page shows it now: its data attributes and its text (read at once: the page
    re-renders when the snapshot changes)."""
    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(r => [Object.assign({}, r.dataset), "
        "r.innerText])", f"#{section} tbody tr")
    return {data[attr]: {**data, "text": text} for data, text in rows}


def _click(browser, css: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(browser, lambda: browser.find_element(By.CSS_SELECTOR, css).click() or True, 10, f"a clickable {css}")


def _run_job(browser, button_css: str, timeout: float = 240) -> str:
    """Click a job's button, wait for that job's end; its title."""
    from selenium.webdriver.common.by import By

    job = browser.find_element(By.ID, "job")
    before = job.get_attribute("data-started")
    _click(browser, button_css)
    _wait(browser, lambda: job.get_attribute("data-started") != before and job.get_attribute("data-state") in
          ("done", "failed"), timeout, f"the end of {button_css}")
    return browser.find_element(By.ID, "job-title").text


def _open(browser, stack) -> None:
    browser.get(_opener(stack))
    browser.execute_script("localStorage.setItem('sandbox-tour-done', '1')")
    _wait(browser, lambda: len(_rows(browser, "connections", "connection")) == 4, what="the connections")


def test_the_page_loads_with_its_token_and_refuses_without(stack, browser):
    from selenium.webdriver.common.by import By

    link = _link(stack)
    base = link.split("?")[0]
    browser.get(base)
    assert "needs its token" in browser.page_source
    browser.get_log("browser")  # drained: the refusal's 401 is logged as an error, by design
    browser.execute_script("localStorage.removeItem('sandbox-tour-done')")
    opener = _opener(stack)
    assert link.split("?token=")[1] not in stack.cli("ui").stdout  # the token is in the private file only
    browser.get(opener)
    _wait(browser, lambda: len(_rows(browser, "connections", "connection")) == 4, what="the connections")
    assert browser.current_url == base  # from the file to the page's own name, the token nowhere in the address
    components = _rows(browser, "components", "component")
    assert set(components) == {"keycloak", "redis", "tyk", "openbao", "airflow", "upstream", "ui"}
    assert {n: r["healthy"] for n, r in components.items()} == {n: "true" for n in components}
    assert set(_rows(browser, "connections", "connection")) == CONNECTIONS
    svg_text = browser.find_element(By.CSS_SELECTOR, "#map-svg svg").text
    assert all(c in svg_text for c in CONNECTIONS)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#scenarios [data-scenario]")) >= 20
    # the first visit's tour: the stack first, as data flows
    assert browser.find_element(By.ID, "tour").is_displayed()
    assert browser.find_element(By.ID, "tour-title").text == "The stack"
    for _ in range(6):
        _click(browser, "#tour-next")
    assert not browser.find_element(By.ID, "tour").is_displayed()
    # every login is masked; the vault's root token is not on the page at all, only where it lives
    secrets = {e.get_attribute("data-secret"): e.text for e in browser.find_elements(By.CSS_SELECTOR, "[data-secret]")}
    assert secrets == {"keycloak": "••••••", "redis": "••••••", "tyk": "••••••", "airflow": "••••••",
                       "ui": "••••••"}, secrets
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-reveal='openbao']")
    vault = browser.find_element(By.CSS_SELECTOR, "[data-elsewhere='openbao']").text
    assert "openbao-local.json" in vault and "sandbox status --show-secrets" in vault, vault
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "ui.png"))
    browser.save_screenshot(str(DOCS / "ui.png"))  # the docs' picture, made anew by every run: every login masked
    # a login is shown when asked for, and hidden again
    _click(browser, "[data-reveal='keycloak']")
    _wait(browser, lambda: browser.find_element(By.CSS_SELECTOR, "[data-secret='keycloak']").text != "••••••",
          what="the revealed login")
    _click(browser, "[data-hide='keycloak']")
    _wait(browser, lambda: browser.find_element(By.CSS_SELECTOR, "[data-secret='keycloak']").text == "••••••",
          what="the login masked again")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_the_pages_cookie_reaches_no_other_local_service(stack, browser):
    _open(browser, stack)
    upstream = stack.status()["upstream"]["url"].rstrip("/")
    port = upstream.rsplit(":", 1)[1]
    for where in (upstream, f"http://localhost:{port}"):  # cookies ignore ports: only the host name keeps it apart
        browser.get(f"{where}/cookies")
        echoed = json.loads(browser.find_element("tag name", "body").text)
        assert echoed == {"cookies": {}}, (where, echoed)
    # and the bundled upstream lets no other page read its answers with a user's credentials
    r = requests.get(f"{upstream}/cookies", headers={"Origin": "http://evil.example", "Cookie": "a=b"}, timeout=5)
    assert r.status_code == 200 and r.json() == {"cookies": {"a": "b"}}
    assert "access-control-allow-credentials" not in r.headers, dict(r.headers)
    assert r.headers.get("access-control-allow-origin") in (None, "*"), dict(r.headers)
    pre = requests.options(f"{upstream}/cookies", headers={"Origin": "http://evil.example",
                                                           "Access-Control-Request-Method": "GET"}, timeout=5)
    assert "access-control-allow-credentials" not in pre.headers, dict(pre.headers)


def test_a_smoke_started_from_the_page_ends_green_on_the_page(stack, browser):
    _open(browser, stack)
    title = _run_job(browser, "#smoke")
    assert title.startswith("smoke: done"), title
    _wait(browser, lambda: {c: r["state"] for c, r in _rows(browser, "connections", "connection").items()} ==
          {c: "ok" for c in CONNECTIONS}, what="every connection green")


def test_a_scenario_reproduced_from_the_page_shows_its_symptom_on_its_edge_then_green_after_revert(stack, browser):
    from selenium.webdriver.common.by import By

    _open(browser, stack)
    try:
        title = _run_job(browser, f"[data-repro='{SCENARIO}']")
        assert title.startswith(f"repro {SCENARIO}: done"), title
        row = _wait(browser, lambda: (r := _rows(browser, "connections", "connection")["tyk_dev_orders"]) and
                    r["state"] == "failing" and r, what="the failing edge")
        assert "invalid_scope" in row["text"] and "scopes" in row["text"], row  # the symptom, and doctor's verdict
        assert browser.execute_script(
            "const p = document.querySelector(\"#map-svg path[data-connection='tyk_dev_orders']\");"
            "p.dispatchEvent(new MouseEvent('click', {bubbles: true})); return p.getAttribute('data-state')") == \
            "failing"
        assert "invalid_scope" in browser.find_element(By.ID, "edge").text
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "ui-scenario.png"))
        title = _run_job(browser, f"[data-revert='{SCENARIO}']")
        assert title.startswith("revert: done"), title
    finally:
        stack.cli("repro", "revert")
    _wait(browser, lambda: _rows(browser, "connections", "connection")["tyk_dev_orders"]["state"] == "ok",
          what="the edge green again")


def test_a_snapshot_dropped_on_the_page_is_compared_with_the_sandbox_now(stack, browser, tmp_path):
    from selenium.webdriver.common.by import By

    laptop, wrong = tmp_path / "laptop.json", tmp_path / "notes.json"
    stack.cli("snapshot", str(laptop))  # another machine's, here: the same sandbox a moment ago
    wrong.write_text('{"hello": "world"}')
    _open(browser, stack)
    browser.find_element(By.ID, "compare-file").send_keys(str(wrong))
    _wait(browser, lambda: "is not a snapshot" in browser.find_element(By.ID, "error").text, what="the refusal")
    job = browser.find_element(By.ID, "job")
    before = job.get_attribute("data-started")
    browser.find_element(By.ID, "compare-file").send_keys(str(laptop))
    _wait(browser, lambda: job.get_attribute("data-started") != before and job.get_attribute("data-state") in
          ("done", "failed"), 120, "the comparison")
    assert browser.find_element(By.ID, "job-title").text.startswith("compare laptop.json: done")
    lines = browser.find_element(By.ID, "job-lines").text
    assert "B: this sandbox, a snapshot now" in lines and lines.rstrip().endswith("no difference"), lines


def test_the_server_refuses_what_it_should_and_listens_on_loopback_only(stack):
    base, token = _api(stack)
    page_host = f"sandbox.localhost:{base.rsplit(':', 1)[1].strip('/')}"
    assert requests.get(f"{base}healthz", timeout=5).text == "ok"
    assert requests.get(f"{base}api/state", timeout=5).status_code == 401
    ok = {"X-Sandbox-Token": token}
    assert requests.get(f"{base}api/state", headers=ok, timeout=STATE_S).status_code == 200
    foreign = requests.get(f"{base}api/state", headers={**ok, "Origin": "http://evil.example"}, timeout=5)
    assert foreign.status_code == 403 and "refused" in foreign.json()["error"]
    assert requests.post(f"{base}api/smoke", headers={"Host": page_host, "Origin": "http://evil.example", "Cookie":
                                                      f"sandbox_ui_{page_host.split(':')[1]}={token}"},
                         timeout=5).status_code == 403
    assert requests.get(f"{base}api/state", headers={**ok, "Host": "evil.example"}, timeout=5).status_code == 403
    assert requests.get(f"{base}?token=wrong", headers={"Host": page_host}, timeout=5).status_code == 401
    evil = requests.get(f"{base}?token={token}", headers={"Host": "evil.example"}, timeout=5, allow_redirects=False)
    assert evil.status_code == 403 and "set-cookie" not in evil.headers  # the Host first, then the token
    assert requests.get(f"{base}api/secret/openbao", headers=ok, timeout=5).status_code == 403
    assert evil.headers["content-security-policy"] == "default-src 'self'; frame-ancestors 'none'"
    row = stack.status()["ui"]
    (pid,) = row["pids"]
    listening = [c.laddr for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(a.ip == "127.0.0.1" for a in listening), listening


def test_a_rotated_token_ends_every_session_with_the_old_one(stack, browser):
    base, old = _api(stack)
    _open(browser, stack)
    said = stack.cli("ui", "--rotate-token").stdout
    assert "every session with the old token has ended" in " ".join(said.split()), said
    new = _api(stack)[1]
    assert new != old and new not in said
    assert requests.get(f"{base}api/state", headers={"X-Sandbox-Token": old}, timeout=5).status_code == 401
    assert requests.get(f"{base}api/state", headers={"X-Sandbox-Token": new}, timeout=STATE_S).status_code == 200
    browser.refresh()  # the old cookie
    assert "needs its token" in browser.page_source
    _open(browser, stack)  # the new token, through the file again
