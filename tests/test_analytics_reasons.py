"""Failure reasons are grouped by what they say, not by the ids, paths and numbers in them."""

from __future__ import annotations

import pytest

from atlas.analytics import reason_template


@pytest.mark.parametrize(
    ("messages", "template"),
    [
        (
            [
                "ffprobe failed on '/media/a/clip 1.mkv' (exit 1)",
                "ffprobe failed on '/srv/b.mp4' (exit 183)",
            ],
            "ffprobe failed on '<path>' (exit <n>)",
        ),
        (
            [
                "/media/library/007/episode-12.mp4: cannot be read (Permission denied)",
                "/mnt/x/y.avi: cannot be read (Permission denied)",
            ],
            "<path>: cannot be read (Permission denied)",
        ),
        (
            ["media 48213 not found", "media 7 not found"],
            "media <n> not found",
        ),
        (
            [
                "Ollama at http://127.0.0.1:11434/api/generate returned 503",
                "Ollama at https://gpu-box:8080/v1 returned 502",
            ],
            "Ollama at <url> returned <n>",
        ),
        (
            [
                "batch 3fa4b2c1d9e8 failed for request 123e4567-e89b-12d3-a456-426614174000",
                "batch 0000aaaa1111 failed for request 00000000-0000-0000-0000-000000000000",
            ],
            "batch <hex> failed for request <uuid>",
        ),
        (
            ["unknown task type 'foo'", 'unknown task type "bar baz"'],
            None,  # quoted values group, whichever quote was used, by quote kind
        ),
        (
            [
                "CUDA out of memory. Tried to allocate 2.00 GiB",
                "CUDA out of memory. Tried to allocate 512.50 GiB",
            ],
            "CUDA out of memory. Tried to allocate <n> GiB",
        ),
    ],
)
def test_messages_differing_only_in_variable_parts_share_one_template(messages, template):
    templates = {reason_template(message) for message in messages}
    if template is None:
        assert templates == {"unknown task type '<text>'", 'unknown task type "<text>"'}
    else:
        assert templates == {template}


def test_words_with_digits_and_different_messages_stay_apart():
    assert reason_template("cannot decode h264 in mp4") == "cannot decode h264 in mp4"
    assert reason_template("database is locked") != reason_template("database is missing")
    assert reason_template("can't open file") == "can't open file"


def test_an_empty_reason_gets_a_placeholder_and_long_ones_are_cut():
    assert reason_template(None) == "(no reason given)"
    assert reason_template("") == "(no reason given)"
    assert len(reason_template("x" * 5000)) == 300
