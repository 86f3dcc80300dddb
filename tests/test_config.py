"""Settings: precedence flag > env > file > default, provenance, and bad files."""

from __future__ import annotations

import pytest

from atlas.config import load_settings
from atlas.errors import InvalidInput


def test_defaults_put_everything_in_the_data_dir(tmp_path):
    loaded = load_settings(home=tmp_path, environ={})
    settings = loaded.settings
    assert settings.database == f"sqlite:///{tmp_path / 'atlas.db'}"
    assert settings.chroma.host is None and settings.chroma_path == tmp_path / "chroma"
    assert settings.queue_backend == "inline"
    assert settings.analytics.retention_days == 30
    assert settings.embedding.model == "all-MiniLM-L6-v2"


def test_flag_beats_env_beats_file_beats_default(tmp_path):
    (tmp_path / "atlas.toml").write_text(
        'queue_url = "sqlite"\n[chroma]\nhost = "file-host"\nport = 9000\n'
        "[analytics]\nretention_days = 7\n"
    )
    env = {"ATLAS_CHROMA__HOST": "env-host", "ATLAS_ANALYTICS__RETENTION_DAYS": "14"}
    loaded = load_settings(home=tmp_path, environ=env, overrides={"chroma.host": "flag-host"})
    settings = loaded.settings
    assert settings.chroma.host == "flag-host"
    assert settings.chroma.port == 9000
    assert settings.analytics.retention_days == 14
    assert settings.queue_url == "sqlite"
    sources = {key: source for key, _value, source in loaded.rows()}
    assert sources["chroma.host"] == "flag"
    assert sources["analytics.retention_days"] == "env ATLAS_ANALYTICS__RETENTION_DAYS"
    assert sources["chroma.port"] == "file atlas.toml"
    assert sources["embedding.model"] == "default"


def test_home_comes_from_atlas_home(tmp_path):
    loaded = load_settings(environ={"ATLAS_HOME": str(tmp_path)})
    assert loaded.settings.home == tmp_path.resolve()
    assert dict((k, s) for k, _v, s in loaded.rows())["home"] == "env ATLAS_HOME"


def test_explicit_config_file_is_used(tmp_path):
    other = tmp_path / "elsewhere.toml"
    other.write_text('database_url = "sqlite:///x.db"\n')
    loaded = load_settings(home=tmp_path, config_file=other, environ={})
    assert loaded.settings.database == "sqlite:///x.db"
    assert loaded.config_file == other


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[chroma\nhost=1", "is not valid TOML"),
        ("[chroma]\nport = 99999\n", "invalid setting chroma.port (from file atlas.toml)"),
        ("colour = 'blue'\n", "unknown setting 'colour' (from file atlas.toml)"),
    ],
)
def test_a_bad_config_file_is_one_clear_error(tmp_path, content, message):
    (tmp_path / "atlas.toml").write_text(content)
    with pytest.raises(InvalidInput) as error:
        load_settings(home=tmp_path, environ={})
    assert message in error.value.message
    assert "\n" not in error.value.message


def test_missing_config_file_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        load_settings(home=tmp_path, config_file=tmp_path / "nope.toml", environ={})


def test_config_show_cli_prints_values_and_sources(cli, home):
    (home / "atlas.toml").write_text("[embedding]\nbatch_size = 16\n")
    result = cli("config", "show", "--json")
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)["settings"]
    assert data["embedding.batch_size"] == {"value": 16, "source": "file atlas.toml"}
    assert data["database_url"]["source"].startswith("env ATLAS_DATABASE_URL")


def test_malformed_config_file_gives_one_line_and_exit_2(cli, home):
    (home / "atlas.toml").write_text("not = [valid")
    result = cli("media", "list")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"atlas: config file {home / 'atlas.toml'} is not valid TOML")
    assert result.stderr.count("\n") == 1
