import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from sandbox.host.readiness import Result, all_of, http_ok, wait_for


@pytest.fixture(scope="module")
def server():
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if self.path == "/ok" else 503
            body = b'{"status": "pass"}'
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_http_ok(server):
    assert http_ok(server + "/ok")().ok
    r = http_ok(server + "/down")()
    assert not r.ok and "HTTP 503" in r.detail


def test_http_predicate(server):
    assert http_ok(server + "/ok", lambda r: None if r.json()["status"] == "pass" else "bad")().ok
    r = http_ok(server + "/ok", lambda r: "redis down")()
    assert not r.ok and r.detail == "redis down"


def test_connection_refused_is_a_result_not_an_exception():
    r = http_ok("http://127.0.0.1:9/")()
    assert not r.ok and "ConnectionError" in r.detail


def test_all_of_reports_first_failure():
    ok = lambda: Result(True, "a")  # noqa: E731
    bad = lambda: Result(False, "b failed")  # noqa: E731
    assert all_of(ok, ok)().ok
    assert all_of(ok, bad)().detail == "b failed"


def test_wait_for_timeout_and_abort():
    calls = []

    def check():
        calls.append(1)
        return Result(len(calls) >= 3, f"try {len(calls)}")

    assert wait_for(check, timeout=5, interval=0.01).ok
    r = wait_for(lambda: Result(False, "nope"), timeout=0.05, interval=0.01)
    assert not r.ok and r.detail.startswith("not healthy after 0s: nope")
    r = wait_for(lambda: Result(False, "nope"), timeout=5, interval=0.01, abort=lambda: "process x exited")
    assert r.detail == "process x exited"
