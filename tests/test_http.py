"""The shared JSON-over-HTTP client of the model hosts, against a real local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from atlas.errors import Unavailable
from atlas.http import Endpoint, json_client, post_json


class _Host:
    """Answers every POST with the status and raw body set on it."""

    def __init__(self) -> None:
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                host.received.append(
                    json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                )
                body = host.body.encode()
                self.send_response(host.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.status = 200
        self.body = "{}"
        self.received: list[Any] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host() -> Iterator[_Host]:
    server = _Host()
    yield server
    server.close()


def _endpoint(where: str) -> Endpoint:
    return Endpoint(
        where=where,
        timeout_s=2,
        timeout_setting="x.request_timeout_s",
        unreachable="start it or set x.host",
        refused="check x.model",
    )


def _post(host: _Host) -> Any:
    with json_client(2) as client:
        return post_json(client, f"{host.url}/api", {"q": 1}, _endpoint(f"Host at {host.url}"))


def test_a_json_object_comes_back_as_sent_and_answered(host):
    host.body = '{"answer": [1, 2]}'
    assert _post(host) == {"answer": [1, 2]}
    assert host.received == [{"q": 1}]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, '{"error": "model \\"m\\" not found"}', 'refused the request (HTTP 404: model "m" '),
        (401, '{"error": {"message": "bad key"}}', "refused the request (HTTP 401: bad key); "),
        (500, "<html>oops</html>", "refused the request (HTTP 500: Internal Server Error); "),
        (200, "<html>oops</html>", "answered with something that is not JSON"),
        (200, "[1, 2]", "answered with JSON that is not an object"),
    ],
)
def test_every_failure_is_one_line_naming_the_host_and_what_to_change(host, status, body, expected):
    host.status, host.body = status, body
    with pytest.raises(Unavailable) as raised:
        _post(host)
    message = str(raised.value)
    assert message.startswith(f"Host at {host.url} {expected}")
    assert "\n" not in message
    if status >= 400:
        assert message.endswith("; check x.model")


def test_a_host_that_is_not_there_names_the_host_setting():
    with json_client(2) as client, pytest.raises(Unavailable) as raised:
        post_json(client, "http://127.0.0.1:9/api", {}, _endpoint("Host at port 9"))
    assert str(raised.value).startswith("Host at port 9 is not reachable (")
    assert str(raised.value).endswith("); start it or set x.host")


def test_the_client_connects_and_reads_with_the_configured_timeout():
    with json_client(7.5, {"Authorization": "Bearer k"}) as client:
        timeout, headers = client.timeout, client.headers
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (7.5, 7.5, 7.5, 7.5)
    assert headers["Authorization"] == "Bearer k"
