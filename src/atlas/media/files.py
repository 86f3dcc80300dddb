"""Moving a media file (and its sidecars) within the library, keeping disk and database in step.

A move is planned first (every check, nothing touched), then done on disk inside
:func:`moving`, whose block records it in the database; if that block fails, the
files are moved back. Atlas never overwrites a file, and moves a file only from
and to the folders where ingest found media (``library_roots``): a recorded path
outside them (a catalogue row may name any path) is never moved.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, select, update

from atlas.db import check_id, utcnow
from atlas.db.tables import library_roots, media, media_sidecars
from atlas.errors import Conflict, InvalidInput, NotFound
from atlas.media.sidecars import find_sidecars
from atlas.paths import user_path

__all__ = ["MovePlan", "moving", "plan_move", "store_move"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MovePlan:
    media_id: int
    source: Path
    target: Path
    #: (old path, new path) of each sidecar file that travels along.
    sidecars: tuple[tuple[Path, Path], ...] = ()

    @property
    def pairs(self) -> list[tuple[Path, Path]]:
        return [(self.source, self.target), *self.sidecars]


def plan_move(connection: Connection, media_id: int, destination: Path | str) -> MovePlan:
    """Check a move of the item's file to ``destination`` (a folder, or a new file path).

    Raises ``NotFound`` (no such item, no such folder), ``InvalidInput`` (no file,
    the file or the destination outside the library, symlinks followed; another
    extension, already there) or ``Conflict`` (the file is missing, or the target
    or a sidecar's target exists).
    """
    check_id(media_id)
    row = connection.execute(
        select(media.c.id, media.c.path, media.c.missing).where(media.c.id == media_id)
    ).first()
    if row is None:
        raise NotFound(f"no media with id {media_id}")
    if row.path is None:
        raise InvalidInput(
            f"media {media_id} is a catalogue record without a file; nothing to move"
        )
    source = user_path(row.path, what=f"recorded path of media {media_id}")
    if not source.is_file():
        raise Conflict(
            f"the file of media {media_id} is missing ({source}); ingest its folder again first"
        )
    roots = [
        user_path(path, resolve=True)
        for path in connection.execute(select(library_roots.c.path)).scalars()
    ]
    where = ", ".join(str(root) for root in sorted(roots)) or "none yet"
    # Both the recorded path and the file it leads to (symlinks followed) must be inside.
    for seen in (source.parent.resolve() / source.name, source.resolve()):
        if not any(seen.is_relative_to(root) for root in roots):
            raise InvalidInput(
                f"the file of media {media_id} ({seen}) is outside the library; Atlas moves "
                f"only files inside the folders given to media-ingest ({where})"
            )
    wanted = user_path(destination, what="destination")
    target = wanted / source.name if wanted.is_dir() else wanted
    if target.suffix.lower() != source.suffix.lower():
        raise InvalidInput(
            f"{target.name}: a move keeps the file's extension ({source.suffix or 'none'})"
        )
    if not target.parent.is_dir():
        raise NotFound(f"folder {target.parent} does not exist")
    target = user_path(target.parent, what="destination", resolve=True) / target.name
    if not any(target.parent.is_relative_to(root) for root in roots):
        raise InvalidInput(
            f"{target.parent} is outside the library; files move only within the folders "
            f"given to media-ingest ({where})"
        )
    if target == source.resolve():
        raise InvalidInput(f"media {media_id} is already at {target}")
    if target.exists() or target.is_symlink():
        raise Conflict(f"{target} already exists; Atlas never overwrites a file")
    holder = connection.scalar(select(media.c.id).where(media.c.path == str(target)))
    if holder is not None:
        raise Conflict(f"{target} is the recorded path of media {holder} (its file is missing)")
    sidecars = []
    for sidecar in find_sidecars(source):
        new = target.parent / (target.stem + sidecar.path.name[len(source.stem) :])
        if new.exists() or new.is_symlink():
            raise Conflict(f"{new} already exists; Atlas never overwrites a file")
        sidecars.append((sidecar.path, new))
    return MovePlan(media_id, source, target, tuple(sidecars))


@contextlib.contextmanager
def moving(plan: MovePlan) -> Iterator[None]:
    """Move the files on disk; if the block raises, move them back and re-raise."""
    done: list[tuple[Path, Path]] = []
    try:
        for old, new in plan.pairs:
            _move_file(old, new)
            done.append((old, new))
        yield
    except BaseException:
        for old, new in reversed(done):
            try:
                _move_file(new, old)
            except Exception:  # the original error matters more; say what is left over
                log.error("could not move %s back to %s", new, old, exc_info=True)
        raise


def store_move(connection: Connection, plan: MovePlan) -> None:
    """Record a done move: the item's path and its sidecars' paths."""
    changed = connection.execute(
        update(media)
        .where(media.c.id == plan.media_id, media.c.path == str(plan.source))
        .values(path=str(plan.target), missing=False, updated_at=utcnow())
    ).rowcount
    if changed != 1:
        raise Conflict(f"media {plan.media_id} changed while it was being moved; try again")
    for old, new in plan.sidecars:
        connection.execute(
            update(media_sidecars).where(media_sidecars.c.path == str(old)).values(path=str(new))
        )


def _move_file(old: Path, new: Path) -> None:
    """Move one file without ever replacing an existing one."""
    try:
        os.link(old, new)  # fails if ``new`` exists: no check-then-replace race
    except FileExistsError:
        raise Conflict(f"{new} already exists; Atlas never overwrites a file") from None
    except OSError:
        # Another file system, or no hard links here: copy exclusively, then delete.
        try:
            with old.open("rb") as reader, new.open("xb") as writer:
                shutil.copyfileobj(reader, writer)
        except FileExistsError:
            raise Conflict(f"{new} already exists; Atlas never overwrites a file") from None
        except OSError as exc:
            new.unlink(missing_ok=True)
            raise InvalidInput(f"{old}: cannot be moved to {new} ({exc.strerror})") from None
        shutil.copystat(old, new)
    try:
        old.unlink()
    except OSError as exc:
        new.unlink(missing_ok=True)
        raise InvalidInput(f"{old}: cannot be moved ({exc.strerror})") from None
