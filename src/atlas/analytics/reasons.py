"""Failure reasons grouped by what they say, not by the ids and paths in them.

``"ffprobe failed on '/lib/a.mkv' (exit 1)"`` and ``"ffprobe failed on
'/lib/b.mkv' (exit 183)"`` are one reason: :func:`reason_template` turns both into
``"ffprobe failed on '<path>' (exit <n>)"``. Replaced, in this order: quoted
values (named by what they hold: ``'<path>'``, ``'<url>'``, ``'<n>'`` or
``'<text>'``), URLs, UUIDs, file paths, hex ids of 8+ digits, and numbers that
are not part of a word (``mp4`` and ``h264`` stay; ``media_1234`` becomes
``media_<n>``).
"""

from __future__ import annotations

import re

__all__ = ["reason_template"]

_MAX_LENGTH = 300

_QUOTED = re.compile(r"""(?<![\w])(['"])([^'"\n]*)\1(?!\w)""")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
# A path starts with /, ~/, ./, ../ or a drive letter, and runs to a space, a
# quote or a colon followed by a space (as in "/a/b.mkv: cannot read").
_PATH = re.compile(
    r"""(?<![\w./~<>-])(?:~|\.{1,2})?/(?:[^\s'",;:()\[\]<>]|:(?!\s|$))+"""
    r"""|\b[A-Za-z]:\\(?:[^\s'",;:()\[\]<>]|:(?!\s|$))+"""
)
_PATH_START = re.compile(r"(?:~|\.{1,2})?/|[A-Za-z]:\\")
# Hex ids (8+ hex digits with at least one digit and one letter) and numbers
# that are not part of a word, in one pass.
_HEX_OR_NUMBER = re.compile(
    r"\b(?:0x)?[0-9a-fA-F]{8,}\b|(?<![A-Za-z0-9.])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?"
)
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")
_DIGITS = frozenset("0123456789")


def _quoted(match: re.Match[str]) -> str:
    quote, inner = match.group(1), match.group(2)
    if _URL.fullmatch(inner):
        kind = "url"
    elif _PATH_START.match(inner) or ("/" in inner and " " not in inner):
        kind = "path"
    elif _NUMBER.fullmatch(inner):
        kind = "n"
    else:
        kind = "text"
    return f"{quote}<{kind}>{quote}"


def _hex_or_number(match: re.Match[str]) -> str:
    token = match.group(0)
    if _NUMBER.fullmatch(token):
        return "<n>"
    if not _DIGITS.intersection(token):
        return token  # a word such as "deadbeef" or "acceded"
    return "<hex>"


def reason_template(message: str | None) -> str:
    """The message with its variable parts replaced by placeholders (see module doc)."""
    if not message:
        return "(no reason given)"
    text = " ".join(message.split())
    # Each pattern runs only when the text has the character it needs (speed).
    if "'" in text or '"' in text:
        text = _QUOTED.sub(_quoted, text)
    if "://" in text:
        text = _URL.sub("<url>", text)
    if "-" in text:
        text = _UUID.sub("<uuid>", text)
    if "/" in text or "\\" in text:
        text = _PATH.sub("<path>", text)
    if not _DIGITS.isdisjoint(text):
        text = _HEX_OR_NUMBER.sub(_hex_or_number, text)
    if len(text) > _MAX_LENGTH:
        text = text[: _MAX_LENGTH - 1] + "…"
    return text
