"""The page's server with a hub of plain data (no stack): what passes its guard and what does not."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from sandbox.paths import SandboxPaths
from sandbox.stack import page as lifecycle
from sandbox.ui.server import build

PORT = 28999


class Hub:
    def __init__(self):
        self.started = []

    def look(self, timeout):
        return 1, '{"components": []}'

    do_smoke = do_doctor = do_revert = staticmethod(lambda say: {})

    def start(self, kind, name, work):
        self.started.append(kind)
        return {"started": kind}


PAGE = f"sandbox.localhost:{PORT}"
LOOPBACK = f"127.0.0.1:{PORT}"
PROTECTIVE = {"content-security-policy": "default-src 'self'; frame-ancestors 'none'",
              "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


class Runtime:
    """Two rows as a runtime's status gives them: a login the page may show, and the vault's, which it may not."""

    def status(self):
        from sandbox.runtime.base import ComponentStatus

        return [ComponentStatus("keycloak", "running", True, "", "", username="admin", secret="kc-secret"),
                ComponentStatus("openbao", "running", True, "", "", username="root", secret="root-token-value",
                                secret_elsewhere="the vault's root token lives in /x/openbao-local.json (0600); "
                                                 "`sandbox status --show-secrets` prints it")]


@pytest.fixture
def client(tmp_path):
    paths = SandboxPaths(tmp_path / "home", tmp_path / "cache")
    token = lifecycle.token(paths)
    hub = Hub()
    hub.runtime = Runtime
    c = TestClient(build(paths, PORT, None, hub), base_url=f"http://{PAGE}", follow_redirects=False)
    return c, token, hub


def test_the_token_goes_into_a_strict_cookie_of_the_pages_own_name_and_out_of_the_address(client):
    c, token, _ = client
    assert c.get("/").status_code == 401 and "needs its token" in c.get("/").text
    assert c.get("/?token=wrong").status_code == 401 and "set-cookie" not in c.get("/?token=wrong").headers
    r = c.get(f"/?token={token}&view=map")
    assert r.status_code == 200 and '<meta http-equiv="refresh" content="0;url=/?view=map">' in r.text
    cookie = r.headers["set-cookie"]
    assert f"sandbox_ui_{PORT}={token}" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "domain" not in cookie.lower()  # host-only: sandbox.localhost's, not every loopback service's
    page = c.get("/")  # the client keeps the cookie
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert c.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/static/nope.js").status_code == 404


def test_a_browser_at_a_loopback_address_is_sent_to_the_pages_name_and_given_no_cookie(client):
    c, token, _ = client
    for host in (LOOPBACK, f"localhost:{PORT}"):
        r = c.get(f"/?token={token}", headers={"Host": host})
        assert r.status_code == 307 and r.headers["location"] == f"http://{PAGE}/?token={token}"
        assert "set-cookie" not in r.headers
        r = c.get("/", headers={"Host": host})
        assert r.status_code == 307 and r.headers["location"] == f"http://{PAGE}/"


def test_the_private_file_posts_the_token_from_a_null_origin_and_lands_on_the_page(client):
    c, token, _ = client
    r = c.post("/login", data={"token": token}, headers={"Origin": "null"})
    assert r.status_code == 200 and '<meta http-equiv="refresh" content="0;url=/">' in r.text
    assert f"sandbox_ui_{PORT}={token}" in r.headers["set-cookie"]
    assert c.get("/").status_code == 200
    c.cookies.clear()
    assert c.post("/login", data={"token": "wrong"}).status_code == 401
    assert c.post("/login", data={}).status_code == 401
    at_loopback = c.post("/login", data={"token": token}, headers={"Host": LOOPBACK})
    assert at_loopback.status_code == 403 and "set-cookie" not in at_loopback.headers


def test_the_host_is_checked_before_the_token_link_and_every_answer_carries_the_protective_headers(client):
    c, token, _ = client
    for r in (c.get(f"/?token={token}", headers={"Host": "evil.example"}),
              c.post("/login", data={"token": token}, headers={"Host": f"evil.example:{PORT}"})):
        assert r.status_code == 403 and "set-cookie" not in r.headers
        assert {k: r.headers.get(k) for k in PROTECTIVE} == PROTECTIVE
    for r in (c.get("/"), c.get("/healthz"), c.get("/api/state"), c.get(f"/?token={token}"),
              c.get("/api/state", headers={"X-Sandbox-Token": token}), c.get("/favicon.svg")):
        assert {k: r.headers.get(k) for k in PROTECTIVE} == PROTECTIVE, r.url


def test_the_api_wants_the_token_this_host_and_this_origin(client):
    c, token, hub = client
    ok = {"X-Sandbox-Token": token}
    assert c.get("/healthz", headers={"Host": LOOPBACK}).text == "ok"
    r = c.get("/api/state")
    assert r.status_code == 401 and r.json()["fix"].startswith("run `sandbox ui --url`")
    assert c.get("/api/state", headers=ok).json() == {"components": []}
    assert c.get("/api/state", headers={**ok, "Host": LOOPBACK}).json() == {"components": []}  # the CLI's calls
    assert c.get("/api/state", headers={**ok, "Origin": "http://evil.example"}).status_code == 403
    assert c.get("/api/state", headers={**ok, "Origin": f"http://{LOOPBACK}"}).status_code == 403
    assert c.get("/api/state", headers={**ok, "Origin": f"http://{PAGE}"}).status_code == 200
    assert c.get("/api/state", headers={**ok, "Host": "evil.example"}).status_code == 403
    # a change: the page's own Origin with its cookie, or the token header; a cookie alone is not enough
    c.cookies.set(f"sandbox_ui_{PORT}", token)
    assert c.post("/api/smoke").status_code == 403
    assert c.post("/api/smoke", headers={"Origin": f"http://{PAGE}"}).status_code == 202
    assert c.post("/api/smoke", headers={"Origin": "http://evil.example"}).status_code == 403
    assert c.post("/api/doctor", headers=ok).status_code == 202
    assert c.post("/api/repro/nope", headers=ok).status_code == 404
    assert hub.started == ["smoke", "doctor"]


def test_the_page_never_serves_the_vaults_root_token(client):
    c, token, _ = client
    ok = {"X-Sandbox-Token": token}
    r = c.get("/api/secret/openbao", headers=ok)
    assert r.status_code == 403 and "root-token-value" not in r.text
    assert r.json()["fix"].endswith("`sandbox status --show-secrets` prints it")
    assert c.get("/api/secret/keycloak", headers=ok).json()["secret"] == "kc-secret"


def test_the_token_is_made_once_and_kept_private(tmp_path):
    paths = SandboxPaths(tmp_path / "home", tmp_path / "cache")
    first = lifecycle.token(paths)
    assert lifecycle.token(paths) == first and len(first) >= 32
    assert paths.ui_token.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("plant", ["empty", "short", "foreign", "group-readable"])
def test_an_untrustworthy_token_file_is_refused_and_made_anew(tmp_path, plant):
    import os

    paths = SandboxPaths(tmp_path / "home", tmp_path / "cache")
    lifecycle.token(paths)
    planted = {"empty": "", "short": "abc", "foreign": "x" * 40, "group-readable": "y" * 40}[plant]
    paths.ui_token.write_text(planted)
    paths.ui_token.chmod(0o640 if plant == "group-readable" else 0o600)
    if plant == "foreign":
        assert os.getuid() == 0, "planting another user's file needs root (CI and these machines run as root)"
        os.chown(paths.ui_token, 65534, 65534)
    made = lifecycle.token(paths)
    assert made != planted and len(made) >= 32
    st = paths.ui_token.stat()
    assert paths.ui_token.read_text() == made and st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


def test_a_guard_refuses_to_be_built_on_an_empty_token():
    from sandbox.ui.server import Guard

    with pytest.raises(ValueError):
        Guard("", PORT)


def test_the_private_file_holds_the_token_for_a_form_post_to_the_pages_name(tmp_path, monkeypatch):
    paths = SandboxPaths(tmp_path / "home", tmp_path / "cache")
    made = lifecycle.token(paths)  # as the running server made it
    monkeypatch.setattr(lifecycle, "running", lambda p: (None, PORT))
    path = lifecycle.opener(paths)
    text = path.read_text()
    assert path.stat().st_mode & 0o077 == 0
    assert f'action="http://{PAGE}/login"' in text and f'value="{made}"' in text
    assert "?token=" not in text
