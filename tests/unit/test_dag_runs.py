"""Triggering a DAG run: a server error is retried once under the same run id, never making two runs."""

import time

import pytest
import requests

from sandbox.systems.airflow import dag_runs


class Resp:
    def __init__(self, status: int, body: dict | None = None):
        self.status_code, self._body = status, body or {}

    def json(self):
        return self._body

    def raise_for_status(self):
        if self.status_code >= 400:
            raise requests.HTTPError(f"{self.status_code}")


class Api:
    base = "http://airflow/api/v2"

    def __init__(self, posts: list[int], patches: list[int] = ()):
        self.posts, self.bodies, self.patches = list(posts), [], list(patches)
        self.s = self

    def patch(self, url, json, timeout):
        return Resp(self.patches.pop(0) if self.patches else 200)

    def post(self, url, json, timeout):
        self.bodies.append(json)
        status = self.posts.pop(0)
        return Resp(status, {"dag_run_id": json["dag_run_id"]} if status == 200 else {})


@pytest.mark.parametrize("posts", [[200], [500, 200], [500, 409]])
def test_one_run_whatever_the_server_said_first(posts):
    api = Api(posts)
    run_id = dag_runs.trigger(api, "d", {"a": 1}, time.monotonic() + 5)
    assert run_id.startswith("manual__") and {b["dag_run_id"] for b in api.bodies} == {run_id}
    assert not api.posts


def test_a_second_server_error_is_raised():
    with pytest.raises(requests.HTTPError):
        dag_runs.trigger(Api([500, 500]), "d", None, time.monotonic() + 5)
    with pytest.raises(requests.HTTPError):  # a conflict on the first POST is someone else's run: not ours
        dag_runs.trigger(Api([409]), "d", None, time.monotonic() + 5)


def test_a_locked_database_answering_the_unpause_with_500_is_waited_out():
    api = Api([200], patches=[500, 500])
    assert dag_runs.trigger(api, "d", None, time.monotonic() + 10).startswith("manual__")
    assert not api.patches and len(api.bodies) == 1
