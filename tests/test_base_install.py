"""Atlas installed without extras: every command that needs no model works, the others
say in one line which extra to install.

The commands run in a fresh interpreter in which every module of the optional
extras (torch, chromadb, sentence-transformers, faster-whisper, redis, psycopg, ...)
fails to import, as in a ``pip install atlas-media`` without extras.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import wave
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

_RUNNER = r"""
import importlib.abc, json, sys

blocked = set(json.loads(sys.argv[1]))

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocked())

from typer.testing import CliRunner
from atlas.cli.app import app

runner = CliRunner()
results = []
for args in json.loads(sys.argv[2]):
    result = runner.invoke(app, args)
    results.append({"args": args, "exit_code": result.exit_code,
                    "stdout": result.stdout, "stderr": result.stderr,
                    "exception": repr(result.exception) if result.exception else None})
print(json.dumps(results))
"""


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def _extra_only_modules() -> list[str]:
    """Top-level modules that come only with an extra, never with the base."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_name(r) for r in project["dependencies"]}
    extras = (
        {
            _name(r)
            for requirements in project["optional-dependencies"].values()
            for r in requirements
        }
        - base
        - {"atlas-media", "pytest", "ruff", "mypy", "jiwer"}
    )
    modules = {
        module
        for module, dists in packages_distributions().items()
        if any(_name(d) in extras for d in dists) and not any(_name(d) in base for d in dists)
    }
    # Not installed here, so unknown to packages_distributions: the usual spelling.
    modules |= {name.replace("-", "_") for name in extras}
    return sorted(modules)


def _run(home: Path, commands: list[list[str]]) -> list[dict[str, object]]:
    env = {
        **os.environ,
        "ATLAS_HOME": str(home),
        "ATLAS_DATABASE_URL": f"sqlite:///{home / 'atlas.db'}",
        "COLUMNS": "200",
    }
    env.pop("ATLAS_QUEUE_URL", None)
    finished = subprocess.run(
        [sys.executable, "-c", _RUNNER, json.dumps(_extra_only_modules()), json.dumps(commands)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout)  # type: ignore[no-any-return]


def test_the_blocked_modules_are_the_extras():
    blocked = _extra_only_modules()
    for module in ("torch", "chromadb", "sentence_transformers", "faster_whisper", "redis"):
        assert module in blocked
    for module in ("numpy", "scipy", "sqlalchemy", "typer", "httpx", "huey"):
        assert module not in blocked


def test_without_extras_every_command_that_needs_no_model_works(tmp_path):
    home = tmp_path / "home"
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text(
        "title,description,genres,tags,year,external_id\n"
        'Orbit of Silence,An astronaut alone on a space station.,Science Fiction,"space, '
        'astronaut",2019,x:1\n'
        'Flour Water Salt,A baker shows how bread rises.,Food,"cooking, bread",2020,x:2\n'
    )
    commands = [
        ["migrate"],
        ["config", "show", "--json"],
        ["media-ingest", "--catalog", str(catalogue), "--no-process"],
        ["media", "list"],
        ["media", "show", "1"],
        ["media", "edit", "1", "--title", "Orbit"],
        ["track-tag-edits", "--media", "1", "--tags", "space, rockets", "--confidence", "0.9"],
        ["media-tags", "remove", "2", "bread"],
        ["run-feedback-loop"],
        ["rules", "list"],
        ["analyze-task-metrics"],
        ["tasks", "list"],
    ]
    if shutil.which("ffprobe"):
        folder = tmp_path / "media"
        folder.mkdir()
        with wave.open(str(folder / "tone.wav"), "wb") as sound:
            sound.setnchannels(1)
            sound.setsampwidth(2)
            sound.setframerate(8000)
            sound.writeframes(b"\x00\x01" * 8000)
        commands.insert(3, ["media-ingest", str(folder), "--no-process"])
    for result in _run(home, commands):
        assert result["exit_code"] == 0, result
        assert result["exception"] is None, result
        output = f"{result['stdout']}{result['stderr']}"
        assert "Traceback" not in output and "ModuleNotFoundError" not in output, result


def test_without_extras_a_command_that_needs_a_model_names_the_extra(tmp_path):
    home = tmp_path / "home"
    catalogue = tmp_path / "catalogue.csv"
    catalogue.write_text("title,description\nOrbit of Silence,An astronaut in orbit.\n")
    results = _run(
        home,
        [
            ["media-ingest", "--catalog", str(catalogue), "--no-process"],
            ["embed-media", "--all"],
            ["media-tags", "retag", "1"],
            ["media-tags", "train"],
            ["--queue-url", "redis://127.0.0.1:1/0", "media-ingest", "--catalog", str(catalogue)],
        ],
    )
    assert results[0]["exit_code"] == 0
    install = re.compile(r"install Atlas with the '(ml|redis)' extra: pip install 'atlas-media\[")
    for result in results[1:]:
        assert result["exit_code"] != 0, result
        lines = str(result["stderr"]).strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("atlas: "), result
        assert install.search(lines[0]), result
