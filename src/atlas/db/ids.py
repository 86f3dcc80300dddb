"""Row ids given by users, checked before they reach SQL.

Every id column is an ``Integer``: 64 bits in SQLite, 32 bits in PostgreSQL,
and the drivers refuse (SQLite: ``OverflowError``; PostgreSQL: ``integer out of
range``) a number that does not fit instead of finding no row. No row can have
such an id, so a service asks :func:`check_id` first and answers as for any
other unknown id.
"""

from __future__ import annotations

from collections.abc import Iterable

from atlas.errors import NotFound

__all__ = ["MAX_ID", "check_id", "check_ids", "fits_id"]

#: The largest id a row can have on every supported database (PostgreSQL ``integer``).
MAX_ID = 2**31 - 1


def fits_id(value: object) -> bool:
    """Whether a row could have ``value`` as its id (a whole number from 1 to ``MAX_ID``)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def check_id(value: int, what: str = "media", *, hint: str | None = None) -> int:
    """``value``, if a row could have it as its id; else ``NotFound`` ("no media with id 0").

    ``hint`` is added to the message after a semicolon ("see: atlas rules list").
    """
    if not fits_id(value):
        raise NotFound(f"no {what} with id {value}" + (f"; {hint}" if hint else ""))
    return value


def check_ids(values: Iterable[int], what: str = "media") -> list[int]:
    """Each of ``values`` checked as by :func:`check_id`, in order."""
    return [check_id(value, what) for value in values]
