"""The queue's connection to Redis: every call is bounded by ``queue_timeout_s``."""

from __future__ import annotations

import pytest

from atlas.config import load_settings
from atlas.errors import InvalidInput, Unavailable
from atlas.tasks.queue import BLOCKING_READ_S, TaskQueue, _describe
from conftest import raised_by

pytest.importorskip("redis")


def test_enqueue_to_a_redis_that_never_answers_fails_within_the_timeout(
    silent_server, make_settings
):
    host, port = silent_server
    settings = make_settings(queue_url=f"redis://{host}:{port}/0", queue_timeout_s=1.5)
    queue = TaskQueue(settings, execute=lambda task_id: None)
    raised = raised_by(lambda: queue.enqueue(1))
    assert isinstance(raised, Unavailable)
    assert str(raised) == (
        f"the task queue at redis://{host}:{port}/0 did not answer within 1.5 s; "
        "check that it is running and not overloaded, or raise queue_timeout_s"
    )


def test_redis_connections_wait_longer_than_an_idle_workers_blocking_read(make_settings):
    settings = make_settings(queue_url="redis://127.0.0.1:6379/0", queue_timeout_s=2.5)
    storage = TaskQueue(settings, execute=lambda task_id: None).huey.storage
    options = storage.pool.connection_kwargs
    assert options["socket_connect_timeout"] == options["socket_timeout"] == 2.5
    assert storage.read_timeout == BLOCKING_READ_S < options["socket_timeout"]


def test_a_queue_timeout_no_longer_than_the_blocking_read_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match=r"^invalid setting queue_timeout_s .*greater than 1$"):
        load_settings(home=tmp_path, overrides={"queue_timeout_s": BLOCKING_READ_S}, environ={})


def test_messages_about_the_queue_hide_its_password():
    assert _describe("redis://:s3cret@queue.local:6379/0") == "redis://:***@queue.local:6379/0"
    assert _describe("redis://queue.local:6379/0") == "redis://queue.local:6379/0"
