"""The page's server with a hub of plain data (no stack): what passes its guard and what does not."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from sandbox.paths import SandboxPaths
from sandbox.ui import lifecycle
from sandbox.ui.server import build

PORT = 28999


class Hub:
    def __init__(self):
        self.started = []

    def snapshot(self):
        return 1, '{"components": []}'

    do_smoke = do_doctor = do_revert = staticmethod(lambda say: {})

    def start(self, kind, name, work):
        self.started.append(kind)
        return {"started": kind}


@pytest.fixture
def client(tmp_path):
    paths = SandboxPaths(tmp_path / "home", tmp_path / "cache")
    token = lifecycle.token(paths)
    hub = Hub()
    c = TestClient(build(paths, PORT, None, hub), base_url=f"http://127.0.0.1:{PORT}", follow_redirects=False)
    return c, token, hub


def test_the_link_puts_the_token_in_a_strict_cookie_and_takes_it_out_of_the_address(client):
    c, token, _ = client
    assert c.get("/").status_code == 401 and "needs its token" in c.get("/").text
    assert c.get("/?token=wrong").status_code == 401
    r = c.get(f"/?token={token}")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert f"sandbox_ui_{PORT}={token}" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = c.get("/")  # the client keeps the cookie
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert c.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/static/nope.js").status_code == 404


def test_the_api_wants_the_token_this_host_and_this_origin(client):
    c, token, hub = client
    ok = {"X-Sandbox-Token": token}
    assert c.get("/healthz").text == "ok"
    r = c.get("/api/state")
    assert r.status_code == 401 and r.json()["fix"].startswith("run `sandbox ui --url`")
    assert c.get("/api/state", headers=ok).json() == {"components": []}
    assert c.get("/api/state", headers={**ok, "Origin": "http://evil.example"}).status_code == 403
    assert c.get("/api/state", headers={**ok, "Origin": f"http://127.0.0.1:{PORT}"}).status_code == 200
    assert c.get("/api/state", headers={**ok, "Host": "evil.example"}).status_code == 403
    assert c.get("/api/state", headers={**ok, "Host": f"localhost:{PORT}"}).status_code == 200
    # a change: the page's own Origin with its cookie, or the token header; a cookie alone is not enough
    c.cookies.set(f"sandbox_ui_{PORT}", token)
    assert c.post("/api/smoke").status_code == 403
    assert c.post("/api/smoke", headers={"Origin": f"http://127.0.0.1:{PORT}"}).status_code == 202
    assert c.post("/api/smoke", headers={"Origin": "http://evil.example"}).status_code == 403
    assert c.post("/api/doctor", headers=ok).status_code == 202
    assert c.post("/api/repro/nope", headers=ok).status_code == 404
    assert hub.started == ["smoke", "doctor"]


def test_the_token_is_made_once_and_kept_private(tmp_path):
    paths = SandboxPaths(tmp_path / "home", tmp_path / "cache")
    first = lifecycle.token(paths)
    assert lifecycle.token(paths) == first and len(first) >= 24
    assert paths.ui_token.stat().st_mode & 0o077 == 0
