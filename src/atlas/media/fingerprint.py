"""Content fingerprints for change and duplicate detection.

Hashing every byte of a large video costs a full read of the file. Atlas hashes
the size plus three 1 MiB windows (start, middle, end) with BLAKE2b; files up to
4 MiB are hashed whole. Any edit that changes the size or touches a window
changes the fingerprint; a re-encode always does. Two different files of the same
size that agree in all three windows would collide, which does not happen with
real media; ``--force`` re-hashes and re-probes regardless.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["FINGERPRINT_VERSION", "fingerprint"]

FINGERPRINT_VERSION = "b2w1"
_WINDOW = 1 << 20
_WHOLE_FILE_LIMIT = 4 * _WINDOW


def fingerprint(path: Path) -> str:
    """``b2w1:<hex>`` for the file's content. Raises ``OSError`` if it cannot be read."""
    digest = hashlib.blake2b(digest_size=20)
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest.update(size.to_bytes(8, "little"))
        if size <= _WHOLE_FILE_LIMIT:
            for block in iter(lambda: handle.read(_WINDOW), b""):
                digest.update(block)
        else:
            for offset in (0, size // 2 - _WINDOW // 2, size - _WINDOW):
                handle.seek(offset)
                digest.update(handle.read(_WINDOW))
    return f"{FINGERPRINT_VERSION}:{digest.hexdigest()}"
