"""The page's hub refreshes while somebody looks and not otherwise: a page nobody reads costs the stack nothing."""

from __future__ import annotations

import threading
import time

import pytest

from sandbox.paths import SandboxPaths
from sandbox.ui import hub as hub_module
from sandbox.ui.hub import Hub


class Counting(Hub):
    """The hub's loop with a refresh that only counts (no stack behind it)."""

    def __init__(self, paths):
        super().__init__(paths, None)
        self.calls = 0

    def refresh(self, evidence: bool = False) -> None:
        self.calls += 1
        self._set(components=[{"refresh": self.calls}])


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_module, "LINGER", 1.0)
    monkeypatch.setattr(hub_module, "COMPONENTS_EVERY", 0.2)
    h = Counting(SandboxPaths(tmp_path / "home", tmp_path / "cache"))
    threading.Thread(target=h.loop, daemon=True).start()
    return h


def test_nobody_looking_nothing_is_refreshed(hub):
    time.sleep(1.0)
    assert hub.calls == 0


def test_a_look_after_a_pause_gets_a_fresh_snapshot_then_refreshes_stop_once_nobody_looks(hub):
    _, text = hub.look(timeout=5)
    assert '"refresh": 1' in text  # not the empty snapshot of before: the look waited for the refresh it woke
    time.sleep(0.6)
    assert hub.calls >= 2  # within LINGER the loop keeps its cadence
    time.sleep(1.5)  # LINGER passed with no look
    stopped = hub.calls
    time.sleep(1.0)
    assert hub.calls == stopped


def test_an_event_streams_wait_keeps_the_refreshes_going(hub):
    seen, _ = hub.wait_change(0, timeout=5)
    for _ in range(4):  # a stream waits again as soon as it has sent: 2.4 s, past LINGER
        seen, _ = hub.wait_change(seen, timeout=0.6)
    before = hub.calls
    hub.wait_change(seen, timeout=0.6)
    assert hub.calls > before
