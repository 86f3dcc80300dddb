"""Shared fixtures: a fresh real database per test (SQLite, and PostgreSQL when
``ATLAS_TEST_POSTGRES_URL`` is set), an opened Atlas, an in-process CLI runner and
real media made with ffmpeg and espeak-ng."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from atlas.app import Atlas, open_atlas
from atlas.cli.app import app
from atlas.config import Settings, load_settings
from atlas.db.engine import normalise_url

POSTGRES_URL = os.environ.get("ATLAS_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("ATLAS_TEST_REDIS_URL")

_BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


def _drop_schema(admin: Engine, schema: str) -> None:
    """Drop a test's schema; a connection the test left behind (a lease renewal, a
    task finishing) can deadlock with the drop, which then goes again."""
    for attempt in range(5):
        try:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            return
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.5)


@pytest.fixture(params=_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'atlas.db'}"
        return
    assert POSTGRES_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(POSTGRES_URL))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    _drop_schema(admin, schema)
    admin.dispose()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def make_settings(home: Path, database_url: str) -> Any:
    """Build Settings for this test's home and database, plus any overrides."""

    def make(**overrides: Any) -> Settings:
        values = {"database_url": database_url, **overrides}
        return load_settings(home=home, overrides=values, environ={}).settings

    return make


#: ``@pytest.mark.small_feedback``: the test builds small feedback sets, where 3 of 3
#: corrections (confidence 0.8) must make a rule; the shipped floor (0.9) wants more
#: evidence (test_feedback_mining.py::test_the_default_floor_wants_more_evidence).
SMALL_FEEDBACK_CONFIDENCE = 0.6


def _small_feedback(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("small_feedback") is not None


@pytest.fixture
def settings(make_settings: Any, request: pytest.FixtureRequest) -> Settings:
    overrides: dict[str, Any] = {"auto_process": False}
    if _small_feedback(request):
        overrides["feedback.min_confidence"] = SMALL_FEEDBACK_CONFIDENCE
    return make_settings(**overrides)  # type: ignore[no-any-return]


@pytest.fixture
def atlas(settings: Settings) -> Iterator[Atlas]:
    opened = open_atlas(settings)
    yield opened
    opened.close()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli(home: Path, database_url: str, request: pytest.FixtureRequest) -> Any:
    """Run ``atlas ARGS`` in-process against this test's home and database."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> CliResult:
        base_env = {
            "ATLAS_HOME": str(home),
            "ATLAS_DATABASE_URL": database_url,
            "ATLAS_AUTO_PROCESS": "false",
            "COLUMNS": "200",
        }
        if _small_feedback(request):
            base_env["ATLAS_FEEDBACK__MIN_CONFIDENCE"] = str(SMALL_FEEDBACK_CONFIDENCE)
        result = runner.invoke(app, list(args), env={**base_env, **(env or {})}, **kwargs)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


# --- real media ----------------------------------------------------------------

requires_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None,
    reason="needs ffmpeg and espeak-ng (make test installs them)",
)


class MediaMaker:
    """Makes real media files with ffmpeg (and speech with espeak-ng), cached per session."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def _cached(self, name: str, build: Any) -> Path:
        path = self.cache / name
        if not path.exists():
            partial = path.with_name(f"partial-{path.name}")
            build(partial)
            partial.replace(path)
        return path

    def speech(self, text: str = "The quick brown fox jumps over the lazy dog.") -> Path:
        key = uuid.uuid5(uuid.NAMESPACE_URL, text).hex[:10]
        return self._cached(
            f"speech-{key}.wav",
            lambda out: _run(["espeak-ng", "-s", "150", "-w", str(out), text]),
        )

    def video(
        self,
        name: str = "clip.mp4",
        *,
        seconds: float = 2.0,
        speech: str | None = None,
        title: str | None = None,
        pattern: str = "testsrc2",
    ) -> Path:
        def build(out: Path) -> None:
            command = [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"{pattern}=size=160x90:rate=10",
            ]
            if speech:
                command += ["-i", str(self.speech(speech)), "-shortest"]
            else:
                command += [
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=16000",
                    "-t",
                    str(seconds),
                ]
            command += [
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "48k",
            ]
            if title:
                command += ["-metadata", f"title={title}"]
            _run([*command, "-f", _format_of(name), str(out)])

        key = uuid.uuid5(uuid.NAMESPACE_URL, f"{name}|{seconds}|{speech}|{title}|{pattern}")
        return self._cached(f"{key.hex[:10]}-{name}", build)

    def audio(
        self, name: str = "talk.mp3", *, speech: str | None = None, seconds: float = 2.0
    ) -> Path:
        def build(out: Path) -> None:
            source = (
                ["-i", str(self.speech(speech))]
                if speech
                else [
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=330:sample_rate=16000",
                    "-t",
                    str(seconds),
                ]
            )
            _run(["ffmpeg", "-v", "error", "-y", *source, "-f", _format_of(name), str(out)])

        key = uuid.uuid5(uuid.NAMESPACE_URL, f"{name}|{speech}|{seconds}")
        return self._cached(f"{key.hex[:10]}-{name}", build)

    def image(self, name: str = "still.png") -> Path:
        return self._cached(
            name,
            lambda out: _run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=64x64",
                    "-frames:v",
                    "1",
                    "-f",
                    "image2",
                    "-c:v",
                    "png",
                    str(out),
                ]
            ),
        )

    def copy(self, source: Path, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target


def _format_of(name: str) -> str:
    suffix = Path(name).suffix.lstrip(".")
    return {
        "mkv": "matroska",
        "m4a": "ipod",
        "mp4": "mp4",
        "mov": "mov",
        "mp3": "mp3",
        "wav": "wav",
        "ogg": "ogg",
        "flac": "flac",
    }.get(suffix, suffix)


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def media_maker(tmp_path_factory: pytest.TempPathFactory) -> MediaMaker:
    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        pytest.skip("needs ffmpeg and espeak-ng (make test installs them)")
    return MediaMaker(tmp_path_factory.mktemp("media-cache"))


# --- embeddings: the shared model, a Chroma server, a small themed library --------------


@pytest.fixture(autouse=True)
def _fresh_embedding_caches() -> Iterator[None]:
    """Each test's library state (Chroma client, lexical index...) is forgotten; models stay."""
    yield
    import sys

    from atlas.caches import clear_caches

    clear_caches("library")
    if "chromadb" in sys.modules:
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()


@pytest.fixture(scope="session")
def embedding_model() -> Any:
    """The default sentence-transformers model, loaded once for the whole session.

    ``get_provider`` caches providers per process, so every Settings with the
    default embedding section gets this same loaded instance.
    """
    from atlas.config import EmbeddingSettings
    from atlas.embeddings import get_provider

    provider = get_provider(EmbeddingSettings())
    provider.check()
    return provider


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_chroma_server(folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A real Chroma server (``chroma run``) on a free local port, data in ``folder``.

    Yields the process and its port; skips the test when no server can be started.
    """
    import sys
    import time

    import httpx

    executable = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    if not Path(executable).exists():
        pytest.skip("the chroma CLI is not installed, so no Chroma server can be started")
    port = free_port()
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [
            executable,
            "run",
            "--path",
            str(folder / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    deadline = time.monotonic() + 60
    ready = False
    while time.monotonic() < deadline and process.poll() is None:
        try:
            ready = httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).is_success
        except httpx.HTTPError:
            ready = False
        if ready:
            break
        time.sleep(0.3)
    try:
        if not ready:
            tail = (folder / "server.log").read_text(errors="replace")[-300:]
            pytest.skip(f"the Chroma server did not start: {tail}")
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real Chroma server (``chroma run``) on a free local port, for the session."""
    with running_chroma_server(tmp_path_factory.mktemp("chroma-server")) as (_process, port):
        yield "127.0.0.1", port


def raised_by(call: Any, *, guard_s: float = 60.0) -> BaseException | None:
    """Run ``call()`` and return what it raised (``None`` if nothing).

    A call that blocks for ``guard_s`` (far beyond any timeout a test sets) fails
    the test instead of hanging the suite; the thread left behind is a daemon.
    """
    import threading

    outcome: dict[str, BaseException | None] = {}

    def run() -> None:
        try:
            call()
            outcome["raised"] = None
        except BaseException as exc:
            outcome["raised"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(guard_s)
    if thread.is_alive():
        pytest.fail(f"the call was still blocked after {guard_s:g} s")
    return outcome["raised"]


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """A TCP server that accepts connections and never answers: a hung service.

    Whatever is sent to it stays unread in the kernel's buffers; connections are
    closed when the test ends.
    """
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)  # so the accepting thread notices the end of the test
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield "127.0.0.1", int(listener.getsockname()[1])
    stopping.set()
    thread.join(timeout=5)
    listener.close()
    for connection in accepted:
        connection.close()


#: Three themes that a sentence model tells apart: space, cooking, crime.
THEMED_ITEMS: list[dict[str, Any]] = [
    {
        "title": "Orbit of Silence",
        "genres": ["Science Fiction"],
        "tags": ["space", "astronaut"],
        "description": "An astronaut alone on a space station loses contact with mission control.",
    },
    {
        "title": "Red Planet Harvest",
        "genres": ["Science Fiction"],
        "tags": ["space", "mars"],
        "description": "Colonists on Mars race to save their greenhouse before a dust storm.",
    },
    {
        "title": "The Comet Chasers",
        "genres": ["Science Fiction", "Adventure"],
        "tags": ["space", "comet", "spaceship"],
        "description": "A spaceship crew follows a comet beyond Jupiter to mine its ice.",
    },
    {
        "title": "Rockets and Dreams",
        "genres": ["Documentary"],
        "tags": ["space", "rockets"],
        "description": "Engineers tell how the first rockets carried astronauts into orbit.",
        "path": "rockets-and-dreams.mp3",
    },
    {
        "title": "Flour, Water, Salt",
        "genres": ["Food"],
        "tags": ["cooking", "bread", "baking"],
        "description": "A baker shows how bread rises, from sourdough starter to crusty loaf.",
    },
    {
        "title": "Sunday Dumplings",
        "genres": ["Food", "Family"],
        "tags": ["cooking", "dumplings"],
        "description": "A grandmother teaches her grandchildren to fold dumplings in her kitchen.",
    },
    {
        "title": "Spice Market Diaries",
        "genres": ["Food", "Travel"],
        "tags": ["cooking", "spices", "recipes"],
        "description": "A chef travels through spice markets and cooks a recipe in every city.",
    },
    {
        "title": "Kitchen Chemistry",
        "genres": ["Food", "Documentary"],
        "tags": ["cooking", "chemistry"],
        "description": "Why onions caramelise and cakes rise: the science of cooking at home.",
        "path": "kitchen-chemistry.mp3",
    },
    {
        "title": "Rain on Calloway Street",
        "genres": ["Crime"],
        "tags": ["detective", "murder"],
        "description": "A tired detective hunts a killer through the rainy streets of the city.",
    },
    {
        "title": "The Vault Job",
        "genres": ["Crime", "Comedy"],
        "tags": ["heist", "bank", "thieves"],
        "description": "Four clumsy thieves plan to rob the most secure bank vault in town.",
    },
    {
        "title": "Glass Alibi",
        "genres": ["Crime", "Thriller"],
        "tags": ["detective", "alibi"],
        "description": "A detective doubts the perfect alibi of a suspect in a murder case.",
    },
    {
        "title": "Cold Case Conversations",
        "genres": ["Crime", "Documentary"],
        "tags": ["true crime", "investigation"],
        "description": "Investigators revisit an unsolved robbery and the police detective who "
        "never gave up.",
        "path": "cold-case.mp3",
    },
]
THEMES = {
    "space": ["Orbit of Silence", "Red Planet Harvest", "The Comet Chasers", "Rockets and Dreams"],
    "cooking": [
        "Flour, Water, Salt",
        "Sunday Dumplings",
        "Spice Market Diaries",
        "Kitchen Chemistry",
    ],
    "crime": ["Rain on Calloway Street", "The Vault Job", "Glass Alibi", "Cold Case Conversations"],
}


@pytest.fixture
def themed_library(atlas: Atlas, tmp_path: Path) -> dict[str, int]:
    """Twelve catalogue records in three themes (three of them audio); title -> media id."""
    from atlas.media.catalog import CatalogEntry, store_entries

    entries = []
    for item in THEMED_ITEMS:
        values = dict(item)
        if "path" in values:
            values["path"] = str(tmp_path / "files" / values["path"])
        entries.append(CatalogEntry.model_validate(values))
    created, _ = store_entries(atlas.engine, entries)
    return {entry.title: media_id for entry, media_id in zip(entries, created, strict=True)}


@pytest.fixture
def embedded_library(
    atlas: Atlas, themed_library: dict[str, int], embedding_model: Any
) -> dict[str, int]:
    """The themed library with every item embedded by the default model."""
    from atlas.embeddings import embed_media

    report = embed_media(atlas.dispatcher, all_media=True)
    assert report.embedded == len(themed_library) and not report.failed
    return themed_library


#: A new item on the science-fiction theme of the themed library.
STATION = {
    "title": "Starlight Station",
    "description": (
        "Astronauts aboard a space station orbit Jupiter while their rocket engine fails "
        "and mission control loses contact."
    ),
}


@pytest.fixture
def tagger(make_settings: Any, embedded_library: dict[str, int]) -> Iterator[Atlas]:
    """An Atlas that learns from the small themed library (3 examples per tag suffice)."""
    opened = open_atlas(make_settings(auto_process=False, **{"tagging.profile_min_examples": 3}))
    yield opened
    opened.close()


class JsonServer:
    """A small threaded HTTP server answering JSON POSTs, for remote services that
    cannot run here. Subclasses implement :meth:`answer`; every request (path,
    body, headers) is kept in ``requests``."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.path, body, dict(self.headers)))
                status, payload = server.answer(self.path, body)
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        raise NotImplementedError

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeEmbeddingServer(JsonServer):
    """Speaks Ollama's ``/api/embed`` and OpenAI's ``/v1/embeddings``.

    Vectors are 8-d bags of hashed words, so equal texts get equal vectors.
    ``fail_with`` makes the next answers an error (status, JSON body).
    """

    dimension = 8

    def __init__(self) -> None:
        self.fail_with: tuple[int, dict[str, Any]] | None = None
        super().__init__()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if self.fail_with is not None:
            return self.fail_with
        if path == "/api/embed":
            return 200, {
                "model": body["model"],
                "embeddings": [self.vector(t) for t in body["input"]],
            }
        if path == "/v1/embeddings":
            data = [
                {"object": "embedding", "index": i, "embedding": self.vector(t)}
                for i, t in enumerate(body["input"])
            ]
            # Out of order on purpose.
            return 200, {"object": "list", "model": body["model"], "data": list(reversed(data))}
        return 404, {"error": "not found"}

    def vector(self, text: str) -> list[float]:
        import zlib

        values = [0.01] * self.dimension
        for word in text.lower().split():
            values[zlib.crc32(word.encode()) % self.dimension] += 1.0
        return values


@pytest.fixture
def fake_embedding_server() -> Iterator[FakeEmbeddingServer]:
    server = FakeEmbeddingServer()
    yield server
    server.close()
