"""The queue's connection to Redis: every call is bounded by ``queue_timeout_s``."""

from __future__ import annotations

import os
import uuid

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


def _queues(make_settings, tmp_path):
    yield make_settings(queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    redis_url = os.environ.get("ATLAS_TEST_REDIS_URL")
    if redis_url:
        yield make_settings(queue_url=redis_url, queue_name=f"order-{uuid.uuid4().hex[:8]}")


def test_a_message_sent_first_is_taken_before_those_already_waiting(make_settings, tmp_path):
    for settings in _queues(make_settings, tmp_path):
        queue = TaskQueue(settings, execute=lambda task_id: None)
        try:
            for task_id in (1, 2, 3):
                queue.enqueue(task_id)
            queue.enqueue(4, first=True)
            queue.enqueue(5)
            taken = []
            while (message := queue.huey.dequeue()) is not None:
                taken.append(message.args[0])
            assert taken == [4, 1, 2, 3, 5], settings.queue_url
        finally:
            queue.huey.flush()
