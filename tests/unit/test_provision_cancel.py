"""Ctrl-C while components build in threads: `cancel` ends their processes at once and nothing is marked built."""

import threading
import time

import pytest

from sandbox.errors import SandboxError
from sandbox.host import provision


@pytest.fixture(autouse=True)
def fresh():
    provision._cancelled.clear()
    yield
    provision._cancelled.clear()


def test_cancel_ends_a_running_step_and_nothing_counts_as_built(tmp_path):
    errors = []

    def build(target):
        provision.run(["sleep", "30"], "a slow step")

    def work():
        try:
            provision.cached_build(tmp_path / "thing", build, lambda _: None)
        except SandboxError as e:
            errors.append(e.message)

    t = threading.Thread(target=work)
    t0 = time.monotonic()
    t.start()
    while not provision._children and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    provision.cancel()
    t.join(timeout=10)
    assert not t.is_alive() and time.monotonic() - t0 < 10
    assert errors == ["a slow step was interrupted."]
    assert not provision.is_done(tmp_path / "thing") and not provision._children
