"""Paths users give (arguments, settings, catalogue rows), checked once.

``Path`` and ``os`` raise a zoo of errors for paths that cannot name a file: a
NUL character (``ValueError``), an unknown ``~user`` or a symlink loop
(``RuntimeError``), a name longer than the file system allows (``OSError``
ENAMETOOLONG, even from ``exists()``). :func:`user_path` turns each into one
``InvalidInput`` that says what is wrong, so the code behind it only meets
paths the operating system can look up.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from atlas.errors import InvalidInput, NotFound

__all__ = ["MAX_NAME_BYTES", "MAX_PATH_BYTES", "os_errors", "user_path"]

#: Linux's PATH_MAX (less the final NUL) and NAME_MAX; other systems allow less, not more.
MAX_PATH_BYTES = 4095
MAX_NAME_BYTES = 255


def user_path(raw: str | os.PathLike[str], *, what: str = "path", resolve: bool = False) -> Path:
    """``raw`` with ``~`` expanded, made absolute; with ``resolve``, symlinks followed too.

    Raises ``InvalidInput`` for an empty path, a NUL character, text that is not
    UTF-8, an unknown ``~user``, a symlink loop, or a path (or one name in it)
    too long for the file system. The file need not exist.
    """
    text = os.fspath(raw)
    if not text.strip():
        raise InvalidInput(f"the {what} is empty")
    shown = _shown(text)
    if "\x00" in text:
        raise InvalidInput(f"the {what} {shown} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"the {what} {shown} is not valid UTF-8 text") from None
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # "Could not determine home directory."
        user = text.split("/", 1)[0]
        raise InvalidInput(f"the {what} {shown} starts with {user}, an unknown user") from None
    path = Path(os.path.abspath(path))
    _check_length(path, what, shown)
    if resolve:
        try:
            path = path.resolve()
        except RuntimeError:  # Python 3.11: "Symlink loop from ..."
            raise InvalidInput(f"the {what} {shown} is a symlink loop") from None
        except OSError as exc:
            raise InvalidInput(f"the {what} {shown} cannot be used ({exc.strerror})") from None
        _check_length(path, what, shown)
    return path


@contextlib.contextmanager
def os_errors(path: Path | str, action: str = "cannot be used") -> Iterator[None]:
    """Turn an ``OSError`` about ``path`` into one line: ``NotFound`` or ``InvalidInput``.

    For the few places where Atlas touches a path the user chose (the data dir,
    a settings file): "<path>: cannot be created (Not a directory)".
    """
    try:
        yield
    except FileNotFoundError as exc:
        raise NotFound(f"{path}: {action} ({exc.strerror})") from None
    except OSError as exc:
        reason = exc.strerror or os.strerror(exc.errno or errno.EIO)
        raise InvalidInput(f"{path}: {action} ({reason})") from None


def _check_length(path: Path, what: str, shown: str) -> None:
    encoded = os.fsencode(path)
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidInput(
            f"the {what} {shown} is {len(encoded):,} bytes long; "
            f"the file system allows {MAX_PATH_BYTES:,}"
        )
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > MAX_NAME_BYTES:
        raise InvalidInput(
            f"the {what} {shown} has a name {longest:,} bytes long; "
            f"the file system allows {MAX_NAME_BYTES}"
        )


def _shown(text: str, limit: int = 80) -> str:
    """The path as a message shows it: quoted, escaped, and cut when long."""
    if len(text) > limit:
        text = text[: limit // 2] + "…" + text[-limit // 4 :]
    return repr(text)
