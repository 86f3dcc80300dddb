"""The command line as a whole: help everywhere, README coverage, a light start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from atlas.cli.app import app

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands(group: typer.Typer, prefix: str = "") -> list[tuple[str, object]]:
    command = typer.main.get_command(group)
    found = []

    def walk(node, path):
        children = getattr(node, "commands", None)
        if children is None:
            found.append((path, node))
            return
        for name, child in children.items():
            walk(child, f"{path} {name}".strip())

    walk(command, prefix)
    return found


def test_every_command_has_help_text_and_a_readme_entry():
    readme = README.read_text()
    commands = _commands(app)
    assert len(commands) >= 8
    for name, command in commands:
        assert (command.help or "").strip(), f"atlas {name} has no help text"
        assert f"atlas {name}" in readme, f"README does not mention `atlas {name}`"


def test_help_lists_commands_without_importing_heavy_libraries():
    probe = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from atlas.cli.app import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = [m for m in ('torch', 'chromadb', 'ctranslate2', 'faster_whisper',\n"
        "         'sentence_transformers', 'sklearn') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
        "print(result.stdout)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    heavy, _, help_text = output.partition("\n")
    assert heavy == ""
    for name in ("media-ingest", "migrate", "worker", "demo", "tasks", "media", "config"):
        assert name in help_text


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("atlas 0.")


def test_usage_errors_are_one_line(cli):
    result = cli("media", "show", "abc")
    assert result.exit_code == 2
    assert result.stderr.startswith("atlas: Invalid value for 'media_id'")
    assert result.stderr.count("\n") == 1


def test_migrate_and_status(cli):
    status = cli("migrate", "--status", "--json")
    assert status.exit_code == 0
    assert '"current": null' in status.stdout
    applied = cli("migrate")
    assert applied.exit_code == 0 and "applied" in applied.stdout
    again = cli("migrate")
    assert "already up to date" in again.stdout
