"""ffprobe's JSON reduced to the facts Atlas keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas.errors import InvalidInput
from atlas.media.probe import parse_probe


def test_stream_comments_count_as_container_tags_for_ogg_and_opus():
    data = {
        "format": {"format_name": "ogg", "duration": "12.5", "tags": {"COMMENT": "night"}},
        "streams": [
            {
                "codec_type": "audio",
                "codec_name": "opus",
                "tags": {"TITLE": "Signal", "ARTIST": "Marla"},
            }
        ],
    }
    result = parse_probe(Path("signal.opus"), data)
    assert result.media_type == "audio"
    assert result.tags == {"title": "Signal", "artist": "Marla", "comment": "night"}
    assert result.container == "ogg"


def test_container_name_follows_the_extension_among_ffprobes_aliases():
    data = {
        "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2"},
        "streams": [{"codec_type": "audio", "codec_name": "aac"}],
    }
    assert parse_probe(Path("a.m4a"), data).container == "m4a"
    assert parse_probe(Path("a.mov"), data).container == "mov"
    assert parse_probe(Path("a.bin"), data).container == "mov"


def test_cover_art_does_not_make_audio_a_video():
    data = {
        "format": {"format_name": "mp3", "duration": "3"},
        "streams": [
            {"codec_type": "audio", "codec_name": "mp3"},
            {"codec_type": "video", "codec_name": "mjpeg", "disposition": {"attached_pic": 1}},
        ],
    }
    result = parse_probe(Path("song.mp3"), data)
    assert (result.media_type, result.has_video, result.video_codec) == ("audio", False, None)


def test_no_streams_is_not_media():
    with pytest.raises(InvalidInput, match="ffprobe found no streams"):
        parse_probe(Path("x.mp4"), {})
