"""``atlas serve`` as a real process: loopback without a token, other addresses with one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import free_port

SRC = Path(__file__).resolve().parents[1] / "src"


@contextmanager
def serving(
    home: Path, database_url: str, *args: str, token: str | None = None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    env = {
        **os.environ,
        "ATLAS_HOME": str(home),
        "ATLAS_DATABASE_URL": database_url,
        "PYTHONPATH": str(SRC),
    }
    env.pop("ATLAS_API_TOKEN", None)
    if token is not None:
        env["ATLAS_API_TOKEN"] = token
    # Warming up loads the model; only the test of several processes needs it.
    if "--processes" not in args:
        args = ("--no-warm-up", *args)
    process = subprocess.Popen(
        [sys.executable, "-m", "atlas", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/static/app.js", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"atlas serve did not start: {process.stderr.read()}"
                    ) from None
                time.sleep(0.2)
        yield process, port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_on_loopback_answers_without_a_token(home, database_url):
    with serving(home, database_url) as (process, port):
        response = httpx.get(f"http://127.0.0.1:{port}/api/v1/media", timeout=10)
        assert response.status_code == 200 and response.json()["total"] == 0
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "Nothing here yet" in page.text
    _, err = process.communicate(timeout=10)
    assert f"atlas serve: http://127.0.0.1:{port}/" in err
    assert "token" not in err


def test_serve_on_another_address_prints_a_token_once_and_requires_it(home, database_url):
    with serving(home, database_url, "--host", "0.0.0.0") as (process, port):
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/v1/media", timeout=10).status_code == 401
        assert httpx.get(f"{base}/", timeout=10).status_code == 303
        process.terminate()
        _, err = process.communicate(timeout=30)
    (line,) = [line for line in err.splitlines() if "API token" in line]
    token = line.rsplit(" ", 1)[1]
    assert len(token) >= 40


def test_serve_takes_the_token_from_the_environment(home, database_url):
    token = "a-token-from-the-environment-42"
    with serving(home, database_url, "--host", "0.0.0.0", token=token) as (process, port):
        url = f"http://127.0.0.1:{port}/api/v1/media"
        assert httpx.get(url, timeout=10).status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(url, headers=headers, timeout=10).status_code == 200
    _, err = process.communicate(timeout=10)
    assert token not in err and "API token" not in err


@pytest.mark.parametrize("bound", [1, 3])
def test_requests_beyond_the_thread_bound_wait_their_turn(atlas, bound):
    """``threads`` bounds how many routes run at once; later requests queue, none fail."""
    from concurrent.futures import ThreadPoolExecutor

    from _api import make_client

    lock = threading.Lock()
    running = peak = 0
    client = make_client(atlas, threads=bound)

    @client.app.get("/test-busy")
    def busy() -> dict[str, int]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        return {"ok": 1}

    with client, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: client.get("/test-busy").status_code, range(6)))
    assert answers == [200] * 6
    assert peak == bound


def _children(process: subprocess.Popen[str]) -> list[int]:
    """The server processes started by ``process`` (multiprocessing's, not its tracker)."""
    found = subprocess.run(
        ["pgrep", "-P", str(process.pid), "-f", "spawn_main"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


def _wait_for(check, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_several_processes_serve_one_library_and_replace_one_that_dies(
    home, database_url, themed_library
):
    """``--processes 2``: both take the token, a correction made through one connection
    is seen through every later one (each process keeps its indexes current), and a
    process killed outright is started again while the other goes on answering."""
    token = "a-token-for-two-processes-42"
    kitchen = themed_library["Kitchen Chemistry"]
    args = ("--processes", "2", "--host", "0.0.0.0")
    with serving(home, database_url, *args, token=token) as (process, port):
        base = f"http://127.0.0.1:{port}/api/v1"
        headers = {"Authorization": f"Bearer {token}"}
        _wait_for(lambda: len(_children(process)) == 2)
        # A fresh connection each time: the kernel hands them to either process.
        assert {httpx.get(f"{base}/media", timeout=10).status_code for _ in range(10)} == {401}
        posted = httpx.post(
            f"{base}/media/{kitchen}/feedback",
            json={"tags": ["Lighthouse keeper"]},
            headers=headers,
            timeout=30,
        )
        assert posted.status_code == 200, posted.text
        for _ in range(10):
            found = httpx.get(
                f"{base}/search",
                params={"q": "lighthouse", "mode": "lexical"},
                headers=headers,
                timeout=30,
            )
            assert [hit["id"] for hit in found.json()["results"]] == [kitchen]

        dead = _children(process)[0]
        os.kill(dead, 9)
        _wait_for(lambda: dead not in _children(process) and len(_children(process)) == 2)
        for _ in range(10):
            response = httpx.get(f"{base}/media/{kitchen}/tags", headers=headers, timeout=30)
            assert response.status_code == 200
            assert "Lighthouse keeper" in {tag["tag"] for tag in response.json()["tags"]}
        children = _children(process)
    for child in children:  # stopping the server stops its processes
        _wait_for(lambda child=child: not os.path.exists(f"/proc/{child}"), 30)


def test_several_processes_on_a_taken_port_fail_in_one_line(home, database_url):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    env = {**os.environ, "ATLAS_HOME": str(home), "ATLAS_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "atlas", "serve", "--processes", "2", "--port", str(port)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    finally:
        taken.close()
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
