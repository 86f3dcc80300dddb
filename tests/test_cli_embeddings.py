"""The commands embed-media, search-similar, clusters and their console scripts."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atlas.cli.scripts import embed_media_app, search_similar_app
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_embed_media_all_reports_json_and_is_idempotent(cli, themed_library, embedding_model):
    first = cli("embed-media", "--all", "--batch", "5", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["embedded"] == 12 and report["batches"] == 3 and report["model_calls"] == 3
    assert report["model"] == "sentence-transformers:all-MiniLM-L6-v2"
    assert report["dimension"] == 384 and report["items_per_s"] > 0
    second = json.loads(cli("embed-media", "--all", "--json").stdout)
    assert second["embedded"] == 0 and second["unchanged"] == 12 and second["model_calls"] == 0


@pytest.mark.slow
def test_embed_media_prints_a_summary(cli, themed_library, embedding_model):
    result = cli("embed-media", "--media", str(themed_library["Glass Alibi"]))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "embedded 1 item(s) with sentence-transformers:all-MiniLM-L6-v2 (384-d) in "
    )


@pytest.mark.slow
def test_search_similar_shows_a_table_with_why_it_matched(cli, embedded_library):
    result = cli(
        "search-similar", "--media", str(embedded_library["Orbit of Silence"]), "--top", "3"
    )
    assert result.exit_code == 0, result.output
    assert "Like Orbit of Silence" in result.stdout
    for column in ("id", "title", "similarity", "tags", "why it matched"):
        assert column in result.stdout
    assert "same genre: Science Fiction" in result.stdout
    query = cli("search-similar", "--query", "bread", "--mode", "lexical")
    assert "Flour, Water, Salt" in query.stdout and "bread (tags, description)" in query.stdout
    hybrid = cli(
        "search-similar", "--query", "a baker shows how bread rises in the kitchen", "--top", "3"
    )
    assert hybrid.exit_code == 0, hybrid.output
    assert "Fused: meaning, words (weight 0.10: a descriptive query of" in hybrid.stdout
    assert "the tags of the best matches: " in hybrid.stdout


@pytest.mark.slow
def test_search_similar_json_with_clusters(cli, embedded_library):
    result = cli(
        "search-similar",
        "--query",
        "stories",
        "--top",
        "12",
        "--cluster",
        "--mode",
        "vector",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mode"] == "vector" and len(data["results"]) == 12
    assert set(data["results"][0]) == {
        "id",
        "title",
        "media_type",
        "year",
        "similarity",
        "score",
        "tags",
        "why",
    }
    assert sum(len(group["ids"]) for group in data["clusters"]) == 12


@pytest.mark.slow
def test_search_similar_filters_by_type_and_genre(cli, embedded_library):
    result = cli(
        "search-similar",
        "--query",
        "investigation",
        "--type",
        "audio",
        "--genre",
        "Crime",
        "--json",
    )
    titles = [row["title"] for row in json.loads(result.stdout)["results"]]
    assert titles == ["Cold Case Conversations"]


@pytest.mark.slow
def test_clusters_command_shows_and_stores_clusters(cli, embedded_library):
    result = cli("clusters", "--k", "3")
    assert result.exit_code == 0, result.output
    assert "3 clusters of 12 media" in result.stdout
    data = json.loads(cli("clusters", "--auto", "--json").stdout)
    assert data["k"] in (2, 3) and sum(c["size"] for c in data["clusters"]) == 12


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["embed-media"], 2, "atlas: give --media ID (one or more) or --all"),
        (["embed-media", "--media", "999"], 3, "atlas: no media with id 999"),
        (["embed-media", "--all", "--batch", "0"], 2, "atlas: --batch must be between 1 and 4096"),
        (
            ["search-similar", "--query", "   "],
            2,
            "atlas: the query is empty; give some words to search for",
        ),
        (
            ["search-similar", "--query", ""],
            2,
            "atlas: the query is empty; give some words to search for",
        ),
        (["search-similar", "--media", "1", "--top", "0"], 2, "atlas: --top must be at least 1"),
        (["search-similar", "--query", "x", "--top", "-2"], 2, "atlas: --top must be at least 1"),
        (
            ["search-similar", "--query", "x", "--threshold", "1.5"],
            2,
            "atlas: --threshold must be between 0 and 1",
        ),
        (
            ["search-similar", "--query", "x", "--threshold", "-0.5"],
            2,
            "atlas: --threshold must be between 0 and 1",
        ),
        (["search-similar"], 2, "atlas: give --media ID or --query TEXT (one of them)"),
        (
            ["search-similar", "--media", "1", "--query", "x"],
            2,
            "atlas: give --media ID or --query TEXT (one of them)",
        ),
        (
            ["search-similar", "--media", "1", "--mode", "lexical"],
            2,
            "atlas: --mode applies to --query; --media always compares vectors",
        ),
        (["search-similar", "--media", "404"], 3, "atlas: no media with id 404"),
        (
            ["search-similar", "--query", "x", "--type", "hologram"],
            2,
            "atlas: unknown media type 'hologram'; use video, audio, image, other",
        ),
        (["clusters", "--k", "2", "--auto"], 2, "atlas: give --k or --auto, not both"),
        (["clusters", "--k", "1"], 2, "atlas: --k must be at least 2"),
    ],
)
def test_bad_input_gives_one_clear_line_and_a_non_zero_exit(cli, args, code, line):
    result = cli(*args)
    assert result.exit_code == code
    assert result.stderr.strip() == line
    assert result.stdout == ""


def test_media_not_embedded_yet(cli, themed_library):
    media_id = themed_library["Glass Alibi"]
    result = cli("search-similar", "--media", str(media_id))
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"atlas: media {media_id} is not embedded yet; embed what is not embedded yet: "
        "atlas embed-media --all"
    )


def test_unreachable_chroma_server_is_one_line_and_writes_nothing(cli, themed_library):
    port = free_port()
    result = cli(
        "embed-media",
        "--all",
        "--json",
        env={"ATLAS_CHROMA__HOST": "127.0.0.1", "ATLAS_CHROMA__PORT": str(port)},
    )
    assert result.exit_code == 5
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"atlas: the Chroma server at http://127.0.0.1:{port} is not reachable")
    assert line.endswith(
        "start it, fix chroma.host/chroma.port/chroma.ssl, or unset "
        "chroma.host to use the embedded store"
    )
    assert json.loads(cli("tasks", "list", "--json").stdout) == []


def test_unreachable_ollama_is_one_line_and_writes_nothing(cli, themed_library):
    port = free_port()
    result = cli(
        "embed-media",
        "--all",
        env={
            "ATLAS_EMBEDDING__PROVIDER": "ollama",
            "ATLAS_EMBEDDING__OLLAMA_HOST": f"http://127.0.0.1:{port}",
        },
    )
    assert result.exit_code == 5
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        f"atlas: ollama at http://127.0.0.1:{port} (model 'qwen3-embedding') is not reachable"
    )
    assert line.endswith("start it or set embedding.ollama_host")
    assert json.loads(cli("tasks", "list", "--json").stdout) == []


# --- the console scripts ---------------------------------------------------------------


def _script(app, home, database_url, *args):
    runner = CliRunner()
    return runner.invoke(
        app,
        [*args, "--home", str(home), "--database-url", database_url],
        env={"ATLAS_AUTO_PROCESS": "false", "COLUMNS": "200"},
    )


def test_console_scripts_are_declared_and_point_at_the_standalone_apps():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["atlas-embed-media"] == "atlas.cli.scripts:embed_media_main"
    assert scripts["atlas-search-similar"] == "atlas.cli.scripts:search_similar_main"
    for target in scripts.values():
        module, name = target.split(":")
        assert callable(getattr(import_module(module), name))


@pytest.mark.slow
def test_atlas_embed_media_script_takes_the_global_flags(
    home, database_url, themed_library, embedding_model
):
    result = _script(embed_media_app, home, database_url, "--all", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["embedded"] == 12
    similar = _script(
        search_similar_app,
        home,
        database_url,
        "--media",
        str(themed_library["Glass Alibi"]),
        "--top",
        "2",
        "--json",
    )
    assert similar.exit_code == 0, similar.output
    assert len(json.loads(similar.stdout)["results"]) == 2


def test_console_scripts_fail_through_the_same_error_edge(home, database_url):
    result = _script(search_similar_app, home, database_url, "--query", " ")
    assert result.exit_code == 2
    assert result.stderr.strip() == "atlas: the query is empty; give some words to search for"
    usage = _script(embed_media_app, home, database_url, "--batch", "many")
    assert usage.exit_code == 2
    assert usage.stderr.startswith("atlas: Invalid value for '--batch'")


def test_console_scripts_have_help(home):
    for app, words in ((embed_media_app, "--all"), (search_similar_app, "--query")):
        result = CliRunner().invoke(app, ["--help"])
        assert result.exit_code == 0 and words in result.stdout and "--home" in result.stdout


def test_every_new_command_has_help_text(cli):
    for command in ("embed-media", "search-similar", "clusters"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and len(result.stdout) > 200, command


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from atlas.cli.app import app\n"
        "import atlas.cli.scripts\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'chromadb', 'ctranslate2', 'sentence_transformers',"
        " 'sklearn', 'scipy', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
