"""``media-tags train``: the tagger's text model fine-tuned on the confirmed tags, and its use."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from atlas.app import open_atlas
from atlas.db.tables import tagger_models, task_logs
from atlas.media.catalog import CatalogEntry, store_entries
from atlas.tagging import load_inputs, predict_tags, retag_media, train_media_tagger
from conftest import STATION

pytestmark = pytest.mark.slow

#: Enough passes over the twelve themed items (one step each) to learn their genres.
EPOCHS = 40


def _models(atlas) -> list[Any]:
    with atlas.engine.connect() as connection:
        return list(connection.execute(select(tagger_models).order_by(tagger_models.c.id)))


def _logs(atlas) -> list[tuple[str, str | None]]:
    with atlas.engine.connect() as connection:
        rows = connection.execute(
            select(task_logs.c.status, task_logs.c.error_reason).where(
                task_logs.c.task_type == "train-tagger"
            )
        )
        return [(row.status, row.error_reason) for row in rows]


def test_training_stores_the_top_layers_and_the_tagger_uses_them(tagger):
    steps: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        steps.append((done, total))

    outcome = train_media_tagger(tagger.dispatcher, epochs=EPOCHS, on_progress=progress)
    assert outcome.ok, outcome.error
    result = outcome.result
    assert result["items"] == 12 and result["epochs"] == EPOCHS and result["layers"] == 2
    assert steps[0] == (1, EPOCHS) and steps[-1] == (EPOCHS, EPOCHS)
    assert _logs(tagger) == [("completed", None)]

    (row,) = _models(tagger)
    assert row.model == "sentence-transformers:all-MiniLM-L6-v2"
    norms = {tag["norm"] for tag in row.tags}
    assert {"science fiction", "space"} <= norms
    # Two of MiniLM's six layers and a head: a few MB, not the whole model (90 MB).
    assert 1_000_000 < len(row.weights) < 20_000_000

    (station,), _ = store_entries(tagger.engine, [CatalogEntry.model_validate(STATION)])
    with tagger.engine.connect() as connection:
        inputs = load_inputs(connection, [station])
    prediction = predict_tags(tagger.settings, tagger.engine, list(inputs.values()))[station]
    evidence = prediction.sources["tuned"].evidence
    assert evidence["science fiction"].detail.startswith("fine-tuned model 0.")
    assert evidence["science fiction"].detail.endswith("(trained on 12 items)")
    others = [evidence[n].score for n in norms - {"science fiction", "space"} if n in evidence]
    assert evidence["science fiction"].score > 0.5 > max(others, default=0.0)
    assert prediction.sources["tuned"].judged == norms

    report = retag_media(tagger.dispatcher, targets=[str(station)])
    assert report.failed_tasks == []
    (item,) = report.items
    scifi = next(tag for tag in item.tags if tag.tag == "Science Fiction")
    assert "fine-tuned model" in (scifi.explanation or "")


def test_training_again_gives_the_same_model_and_keeps_only_the_newest(tagger):
    first = train_media_tagger(tagger.dispatcher, epochs=3)
    second = train_media_tagger(tagger.dispatcher, epochs=3)
    assert first.ok and second.ok
    (row,) = _models(tagger)
    assert row.id == second.result["model_id"] != first.result["model_id"]
    assert first.result["loss"] == second.result["loss"]


def test_without_a_model_the_tagger_has_no_tuned_evidence(tagger):
    (station,), _ = store_entries(tagger.engine, [CatalogEntry.model_validate(STATION)])
    with tagger.engine.connect() as connection:
        inputs = load_inputs(connection, [station])
    prediction = predict_tags(tagger.settings, tagger.engine, list(inputs.values()))[station]
    assert not prediction.sources["tuned"].evidence and not prediction.sources["tuned"].judged
    assert not any("fine-tuned" in p.explanation for p in prediction.candidates)


def test_a_library_without_confirmed_tags_gets_one_clear_line(atlas, cli):
    store_entries(atlas.engine, [CatalogEntry.model_validate(STATION)])
    result = cli("media-tags", "train")
    assert result.exit_code == 1
    assert result.stderr.startswith("atlas: nothing to learn yet: a tag needs 8 items")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert _logs(atlas)[0][0] == "error" and "nothing to learn yet" in _logs(atlas)[0][1]
    assert _models(atlas) == []


def test_a_remote_embedding_model_cannot_be_fine_tuned(make_settings, embedded_library):
    settings = make_settings(
        auto_process=False,
        **{
            "tagging.profile_min_examples": 3,
            "embedding.provider": "ollama",
            "embedding.model": "nomic-embed-text",
        },
    )
    opened = open_atlas(settings)
    try:
        outcome = train_media_tagger(opened.dispatcher, epochs=1)
    finally:
        opened.close()
    assert outcome.status == "error"
    assert "fine-tuning needs a local sentence-transformers embedding model" in outcome.error


def test_cli_trains_and_reports_as_json(cli, embedded_library):
    env = {"ATLAS_TAGGING__PROFILE_MIN_EXAMPLES": "3"}
    result = cli("media-tags", "train", "--epochs", "2", "--json", env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["items"] == 12 and data["epochs"] == 2 and data["tags"] >= 3

    plain = cli("media-tags", "train", "--epochs", "1", env=env)
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.startswith("Fine-tuned the tagger on 12 items and ")
    assert "media-tags retag --all --force" in plain.stdout

    bad = cli("media-tags", "train", "--epochs", "0", env=env)
    assert bad.exit_code != 0 and bad.stderr.startswith("atlas: --epochs must be at least 1")
    assert len(bad.stderr.splitlines()) == 1
