"""The embedding document: deterministic, weighted, hashed."""

from __future__ import annotations

from atlas.embeddings.document import (
    DocumentInput,
    build_document,
    transcript_excerpt,
)
from atlas.media.tags import Tag


def _item(**values: object) -> DocumentInput:
    base: dict[str, object] = {
        "media_type": "video",
        "title": "The Quiet Orbit",
        "year": 2019,
        "genre": "Science Fiction",
        "description": "A lone astronaut drifts above a silent Earth.",
        "tags": (
            Tag("space", kind="keyword", source="user"),
            Tag("Drama", kind="genre", source="user"),
            Tag("robots", kind="topic", source="auto", confidence=0.9),
            Tag("cooking", kind="topic", source="auto", confidence=0.2),
            Tag("isolation", kind="topic", source="rule"),
        ),
    }
    base.update(values)
    return DocumentInput(**base)  # type: ignore[arg-type]


def test_document_does_not_depend_on_the_order_tags_arrive_in():
    item = _item()
    shuffled = _item(tags=tuple(reversed(item.tags)))
    assert build_document(item) == build_document(shuffled)


def test_confirmed_tags_come_before_the_description_and_automatic_ones_after():
    text = build_document(_item()).text
    lines = text.splitlines()
    assert lines[0] == "The Quiet Orbit (2019)"
    assert lines[1] == "Genre: Science Fiction, Drama"
    assert lines[2] == "Tags: space, isolation"
    assert text.index("space") < text.index("lone astronaut") < text.index("robots")
    assert "Also tagged: robots" in text


def test_unsure_automatic_tags_are_left_out():
    assert "cooking" not in build_document(_item()).text


def test_hash_changes_with_what_atlas_knows_and_only_then():
    base = build_document(_item())
    assert build_document(_item()).hash == base.hash
    assert build_document(_item(description="Something else.")).hash != base.hash
    more_tags = _item(tags=(*_item().tags, Tag("mars", source="user")))
    assert build_document(more_tags).hash != base.hash


def test_codecs_and_resolution_stay_out_but_length_and_language_go_in():
    text = build_document(
        _item(
            duration_s=754,
            container="matroska,webm",
            video_codec="h264",
            width=1920,
            height=1080,
            container_tags={"language": "fre", "album": "Night Sessions"},
        )
    ).text
    assert "Media: video, 13 min, language fre" in text
    assert "Album: Night Sessions." in text
    assert "h264" not in text and "1920" not in text and "matroska" not in text


def test_short_transcript_is_used_whole_after_everything_else():
    text = build_document(_item(transcript="Hello   from orbit.")).text
    assert text.splitlines()[-1] == "Transcript: Hello from orbit."


def test_long_transcript_becomes_three_excerpts_from_start_middle_and_end():
    words = [f"w{i}" for i in range(2000)]
    excerpt = transcript_excerpt(" ".join(words), budget=300)
    parts = excerpt.split(" … ")
    assert len(parts) == 3
    assert parts[0].startswith("w0 ")
    assert parts[2].endswith("w1999")
    middle_first = int(parts[1].split()[0][1:])
    assert 800 < middle_first < 1200
    assert all(len(part) <= 100 for part in parts)


def test_item_with_no_words_has_nothing_to_embed():
    bare = DocumentInput(media_type="video", duration_s=12.0, container="mp4")
    assert not build_document(bare).embeddable
    assert build_document(DocumentInput(media_type="audio", transcript="hi")).embeddable


def test_genres_for_filters_are_normalised():
    document = build_document(_item(genre="SCIENCE  fiction"))
    assert document.genres == ("drama", "science fiction")
