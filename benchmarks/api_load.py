"""Load on ``atlas serve``: 50 clients for 60 s while a worker tags and embeds.

The library is the TMDB catalogue (3,000 movies, embedded first). ``atlas serve``
runs on loopback with a SQLite task queue, one server process per core
(``--processes``). Two phases with the same client mix
(similar-by-id, text search in every mode, media pages, feedback posts):

* idle: no worker runs; gives the idle text-search p95;
* busy: an ``atlas worker`` tags every item again and embeds it (one chain per batch).

Prints each figure with its target and a verdict; exits 1 on a miss:

* 5xx answers (and failed connections): 0
* feedback rows lost (posts answered 2xx minus rows stored): 0
* p95 of similar-by-id and of media pages while busy: under 150 ms
* p95 of text search while busy: under 400 ms, and within 2x of the idle p95

    python benchmarks/api_load.py [--media 3000] [--clients 50] [--seconds 60]
        [--idle-seconds 20] [--processes CORES] [--threads N] [--data PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import func, select

from atlas.app import open_atlas
from atlas.config import load_settings
from atlas.db.tables import media, user_feedback
from atlas.embeddings import embed_media
from atlas.media import import_catalog
from search_quality import DATA, read_movies, write_catalogue

SIMILAR_P95_MS = 150.0
PAGE_P95_MS = 150.0
SEARCH_P95_MS = 400.0
SEARCH_SLOWDOWN = 2.0
QUERIES = (
    "a heist that goes wrong",
    "space station crew in danger",
    "love story in paris",
    "detective hunts a serial killer",
    "animated talking animals",
    "war drama soldiers",
    "haunted house ghost",
    "high school comedy",
)
#: Share of each kind of request in the client mix.
MIX = (("similar", 0.3), ("search", 0.3), ("page", 0.3), ("feedback", 0.1))


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Load:
    """What the clients saw: latencies per kind, 5xx, failed connections, feedback posted."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.server_errors: list[str] = []
        self.failed: list[str] = []
        self.posted = 0
        self.requests = 0


class Connection:
    """One keep-alive HTTP/1.1 connection, as lean as a load client can be.

    The clients run on the same cores as the server; a full HTTP client (httpx
    spends about 6 ms of CPU per request here) would take a large share of the CPU
    the benchmark is meant to measure the server with. Requests carry no cookies:
    without a token, pages and the API need none.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        target = f"{path}?{urlencode(params)}" if params else path
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        try:
            self.writer.write(head.encode() + b"\r\n" + data)
            return await self._answer(self.reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.close()
            raise

    @staticmethod
    async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return status, await reader.readexactly(int(headers["content-length"]))
        if "chunked" not in headers.get("transfer-encoding", ""):
            raise ValueError("an answer without a length")
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            parts.append((await reader.readexactly(size + 2))[:-2])
        await reader.readuntil(b"\r\n")
        return status, b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def client_loop(
    host: str, port: int, ids: list[int], load: Load, deadline: float, seed: int
) -> None:
    """One client on its own connection: API requests and pages, one after another."""
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    connection = Connection(host, port)
    while time.monotonic() < deadline:
        kind = rng.choices(kinds, weights)[0]
        item = rng.choice(ids)
        clock = time.perf_counter()
        try:
            if kind == "similar":
                status, payload = await connection.request(
                    "GET", f"/api/v1/media/{item}/similar", {"top": 10}
                )
            elif kind == "search":
                mode = rng.choice(("vector", "lexical", "hybrid"))
                params = {"q": rng.choice(QUERIES), "mode": mode, "top": 10}
                status, payload = await connection.request("GET", "/api/v1/search", params)
            elif kind == "page":
                status, payload = await connection.request("GET", f"/media/{item}")
            else:
                tags = [f"bench {rng.randrange(10**9)}", "benchmarked"]
                status, payload = await connection.request(
                    "POST", f"/api/v1/media/{item}/feedback", body={"tags": tags}
                )
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            load.failed.append(f"{kind}: {type(exc).__name__}: {exc}")
            continue
        elapsed_ms = (time.perf_counter() - clock) * 1000
        load.requests += 1
        if status >= 500:
            load.server_errors.append(f"{kind} {status}: {payload[:200]!r}")
            continue
        if kind == "feedback" and status == 200:
            changes = json.loads(payload)["changes"]
            load.posted += sum(1 for change in changes if change.get("feedback_id"))
        if status < 400:
            load.latency[kind].append(elapsed_ms)
        else:
            load.failed.append(f"{kind} {status}: {payload[:200]!r}")
    connection.close()


async def run_load(port: int, ids: list[int], clients: int, seconds: float) -> Load:
    load = Load()
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        *(client_loop("127.0.0.1", port, ids, load, deadline, seed) for seed in range(clients))
    )
    return load


def warm_up(base: str, ids: list[int]) -> None:
    """Load the model, the lexical index and the vector store once, before measuring."""
    with httpx.Client(base_url=base, timeout=300) as http:
        for mode in ("vector", "lexical", "hybrid"):
            http.get("/api/v1/search", params={"q": QUERIES[0], "mode": mode}).raise_for_status()
        http.get(f"/api/v1/media/{ids[0]}/similar").raise_for_status()
        http.get(f"/media/{ids[0]}").raise_for_status()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "atlas", *args], env=env, stdout=handle, stderr=handle
    )


def wait_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(f"{base}/static/app.js", timeout=2)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"atlas serve did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.3)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def summary(name: str, load: Load, seconds: float) -> None:
    figures = ", ".join(
        f"{kind} {len(values)} (p50 {percentile(values, 0.5):.0f} ms, "
        f"p95 {percentile(values, 0.95):.0f} ms)"
        for kind, values in sorted(load.latency.items())
    )
    print(
        f"{name}: {load.requests} requests in {seconds:.0f} s "
        f"({load.requests / seconds:.0f}/s): {figures}"
    )


def verdict(label: str, value: float, target: str, met: bool, unit: str = "") -> bool:
    print(f"{label}: {value:.1f}{unit} (target {target}: {'met' if met else 'MISSED'})")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="atlas serve --processes (default: one per core)",
    )
    parser.add_argument("--threads", type=int, help="atlas serve --threads (default: its own)")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"no data file at {args.data}; pass --data PATH")

    with tempfile.TemporaryDirectory(prefix="atlas-api-load-") as scratch:
        root = Path(scratch)
        home = root / "home"
        catalogue = root / "movies.csv"
        write_catalogue(read_movies(args.data, args.media), set(), catalogue)
        setup = load_settings(home=home, overrides={"auto_process": False}, environ={})
        atlas = open_atlas(setup.settings)
        clock = time.perf_counter()
        report = import_catalog(atlas.dispatcher, catalogue, process=False)
        if report.failed_tasks:
            raise SystemExit(f"catalogue import failed: {report.failed_tasks[0]}")
        embedded = embed_media(atlas.dispatcher, all_media=True)
        print(
            f"library: {len(report.created)} movies imported and {embedded.embedded} embedded "
            f"in {time.perf_counter() - clock:.0f} s"
        )
        with atlas.engine.connect() as connection:
            ids = list(connection.execute(select(media.c.id)).scalars())
            rows_before = connection.scalar(select(func.count()).select_from(user_feedback)) or 0
        atlas.close()
        # The clients share the cores with the server: keep what embedding the library
        # loaded here (the model, PyTorch: about a million objects) out of this process's
        # garbage collections, each of which would stall every client for a while.
        gc.collect()
        gc.freeze()

        queue = f"sqlite:///{home / 'queue.db'}"
        env = {
            **os.environ,
            "ATLAS_HOME": str(home),
            "ATLAS_QUEUE_URL": queue,
            "ATLAS_AUTO_PROCESS": "false",
        }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server_log = root / "serve.log"
        serve = ["serve", "--port", str(port), "--processes", str(args.processes)]
        if args.threads:
            serve += ["--threads", str(args.threads)]
        server = start(serve, env, server_log)
        print(f"server: atlas serve {' '.join(serve[3:])}, {args.clients} clients")
        worker = None
        try:
            wait_up(base, server, server_log)
            warm_up(base, ids)
            idle = asyncio.run(run_load(port, ids, args.clients, args.idle_seconds))
            summary("idle", idle, args.idle_seconds)

            # Work for the worker: every item tagged again, then embedded again.
            busy_settings = load_settings(
                home=home, overrides={"auto_process": False, "queue_url": queue}, environ={}
            ).settings
            busy_atlas = open_atlas(busy_settings)
            batches = [ids[start : start + 50] for start in range(0, len(ids), 50)]
            busy_atlas.dispatcher.submit_many(
                "tag", [{"media_ids": batch, "force": True, "chain": True} for batch in batches]
            )
            worker = start(["worker", "--workers", "1"], env, root / "worker.log")
            busy = asyncio.run(run_load(port, ids, args.clients, args.seconds))
            summary("busy (worker tagging and embedding)", busy, args.seconds)
            with busy_atlas.engine.connect() as connection:
                done = connection.execute(
                    select(func.count()).select_from(user_feedback)
                ).scalar_one()
                rows = int(done) - int(rows_before)
            busy_atlas.close()
        finally:
            if worker is not None:
                stop(worker)
            stop(server)

    posted = idle.posted + busy.posted
    errors = idle.server_errors + busy.server_errors + idle.failed + busy.failed
    for line in errors[:5]:
        print(f"  e.g. {line}")
    ok = verdict("5xx answers and failed requests", len(errors), "0", not errors)
    ok &= verdict(
        f"feedback rows lost ({posted} posted, {rows} stored)", posted - rows, "0", posted == rows
    )
    p95 = {kind: percentile(values, 0.95) for kind, values in busy.latency.items()}
    ok &= verdict(
        "similar-by-id p95 (busy)",
        p95.get("similar", float("nan")),
        f"< {SIMILAR_P95_MS:.0f} ms",
        p95.get("similar", 1e9) < SIMILAR_P95_MS,
        " ms",
    )
    ok &= verdict(
        "media page p95 (busy)",
        p95.get("page", float("nan")),
        f"< {PAGE_P95_MS:.0f} ms",
        p95.get("page", 1e9) < PAGE_P95_MS,
        " ms",
    )
    search_busy = p95.get("search", float("nan"))
    ok &= verdict(
        "text search p95 (busy)",
        search_busy,
        f"< {SEARCH_P95_MS:.0f} ms",
        search_busy < SEARCH_P95_MS,
        " ms",
    )
    search_idle = percentile(idle.latency.get("search", []), 0.95)
    ratio = search_busy / search_idle if search_idle else float("inf")
    ok &= verdict(
        f"text search p95 busy / idle ({search_idle:.0f} ms idle)",
        ratio,
        f"<= {SEARCH_SLOWDOWN:.0f}x",
        ratio <= SEARCH_SLOWDOWN,
        "x",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
