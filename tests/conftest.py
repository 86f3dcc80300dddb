"""Shared fixtures: a fresh real database per test (SQLite, and PostgreSQL when
``ATLAS_TEST_POSTGRES_URL`` is set), an opened Atlas, an in-process CLI runner and
real media made with ffmpeg and espeak-ng."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from atlas.app import Atlas, open_atlas  # noqa: E402
from atlas.cli.app import app  # noqa: E402
from atlas.config import Settings, load_settings  # noqa: E402
from atlas.db.engine import normalise_url  # noqa: E402

POSTGRES_URL = os.environ.get("ATLAS_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("ATLAS_TEST_REDIS_URL")

_BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


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
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
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


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(auto_process=False)  # type: ignore[no-any-return]


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
def cli(home: Path, database_url: str) -> Any:
    """Run ``atlas ARGS`` in-process against this test's home and database."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> CliResult:
        base_env = {"ATLAS_HOME": str(home), "ATLAS_DATABASE_URL": database_url,
                    "ATLAS_AUTO_PROCESS": "false", "COLUMNS": "200"}
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

    def video(self, name: str = "clip.mp4", *, seconds: float = 2.0, speech: str | None = None,
              title: str | None = None, pattern: str = "testsrc2") -> Path:
        def build(out: Path) -> None:
            command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
                       "-i", f"{pattern}=size=160x90:rate=10"]
            if speech:
                command += ["-i", str(self.speech(speech)), "-shortest"]
            else:
                command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
                            "-t", str(seconds)]
            command += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                        "-c:a", "aac", "-b:a", "48k"]
            if title:
                command += ["-metadata", f"title={title}"]
            _run([*command, "-f", _format_of(name), str(out)])

        key = uuid.uuid5(uuid.NAMESPACE_URL, f"{name}|{seconds}|{speech}|{title}|{pattern}")
        return self._cached(f"{key.hex[:10]}-{name}", build)

    def audio(self, name: str = "talk.mp3", *, speech: str | None = None,
              seconds: float = 2.0) -> Path:
        def build(out: Path) -> None:
            source = (["-i", str(self.speech(speech))] if speech else
                      ["-f", "lavfi", "-i", "sine=frequency=330:sample_rate=16000", "-t",
                       str(seconds)])
            _run(["ffmpeg", "-v", "error", "-y", *source, "-f", _format_of(name), str(out)])

        key = uuid.uuid5(uuid.NAMESPACE_URL, f"{name}|{speech}|{seconds}")
        return self._cached(f"{key.hex[:10]}-{name}", build)

    def image(self, name: str = "still.png") -> Path:
        return self._cached(
            name,
            lambda out: _run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                              "testsrc2=size=64x64", "-frames:v", "1", "-f", "image2",
                              "-c:v", "png", str(out)]),
        )

    def copy(self, source: Path, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target


def _format_of(name: str) -> str:
    suffix = Path(name).suffix.lstrip(".")
    return {"mkv": "matroska", "m4a": "ipod", "mp4": "mp4", "mov": "mov", "mp3": "mp3",
            "wav": "wav", "ogg": "ogg", "flac": "flac"}.get(suffix, suffix)


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def media_maker(tmp_path_factory: pytest.TempPathFactory) -> MediaMaker:
    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        pytest.skip("needs ffmpeg and espeak-ng (make test installs them)")
    return MediaMaker(tmp_path_factory.mktemp("media-cache"))
