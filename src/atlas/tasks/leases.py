"""Leases: which process holds a task, and proof that it is still alive.

A process that takes a task (to run it, or in-process to run it later) writes
its owner name and an expiry into the task's row. A heartbeat thread renews the
expiry of every task the process holds, every third of the lease, with one
``UPDATE``. When the process dies the renewals stop, the lease runs out, and any
other process may take the task again (see :mod:`atlas.tasks.recovery`). On the
same machine a dead owner is recognised at once: its process id is gone.

The owner name is ``host:pid:namespace:token``. The token is new in every
process (and after every fork), so a recycled process id never passes for the
old owner; the pid namespace keeps two containers that share a host name from
judging each other's process ids.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, update
from sqlalchemy.exc import SQLAlchemyError

from atlas.db import utcnow
from atlas.db.tables import tasks

__all__ = ["LeaseKeeper", "describe_owner", "owner_is_dead"]

log = logging.getLogger(__name__)

#: Statuses whose rows a live process may hold.
HELD = ("queued", "running")


def _namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return "-"


def _new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_namespace()}:{secrets.token_hex(4)}"


def describe_owner(owner: str | None) -> str:
    """``host:pid`` of an owner name, for messages."""
    if not owner:
        return "an unknown process"
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    return f"{host}:{pid}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` is a process of this machine (and pid namespace) that has exited.

    An owner on another machine, or one this process cannot judge, is not
    called dead: its lease has to run out instead.
    """
    if not owner:
        return False
    parts = owner.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname() or parts[2] != _namespace():
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return owner != _current_owner()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, owned by another user
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    # A killed child that its parent has not reaped yet still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return bool(fields) and fields[0] in (b"Z", b"X")


_owner_lock = threading.Lock()
_owner: tuple[int, str] | None = None


def _current_owner() -> str:
    """This process's owner name; a forked child gets a new one."""
    global _owner
    with _owner_lock:
        if _owner is None or _owner[0] != os.getpid():
            _owner = (os.getpid(), _new_owner())
        return _owner[1]


class LeaseKeeper:
    """Names this process as an owner and keeps its leases alive with a heartbeat."""

    def __init__(self, engine: Engine, lease_s: float) -> None:
        self.engine = engine
        self.lease_s = lease_s
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_pid: int | None = None
        self._stop = threading.Event()

    @property
    def owner(self) -> str:
        return _current_owner()

    def expiry(self, now: datetime | None = None) -> datetime:
        """When a lease taken or renewed now runs out."""
        return (now or utcnow()) + timedelta(seconds=self.lease_s)

    def hold(self) -> None:
        """Make sure the heartbeat runs in this process (call when taking a lease)."""
        with self._lock:
            if self._thread is not None and self._thread_pid == os.getpid():
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._beat, args=(self._stop,), name="atlas-lease-heartbeat", daemon=True
            )
            self._thread_pid = os.getpid()
            self._thread.start()

    def renew(self) -> int:
        """Push back the expiry of every lease this process holds; returns how many."""
        with self.engine.begin() as connection:
            return int(
                connection.execute(
                    update(tasks)
                    .where(and_(tasks.c.lease_owner == self.owner, tasks.c.status.in_(HELD)))
                    .values(lease_expires_at=self.expiry())
                ).rowcount
            )

    def stop(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread_pid == os.getpid():
                self._stop.set()
            self._thread = None
            self._thread_pid = None

    def _beat(self, stop: threading.Event) -> None:
        missed = 0
        while not stop.wait(self.lease_s / 3):
            try:
                self.renew()
                missed = 0
            except SQLAlchemyError as exc:
                # The next beat tries again; a lease survives two missed beats, so one
                # miss (a database busy with a long write) is not worth a warning.
                missed += 1
                level = logging.WARNING if missed >= 2 else logging.DEBUG
                log.log(
                    level,
                    "could not renew task leases (%d beat(s) in a row): %s",
                    missed,
                    str(exc).splitlines()[0],
                )
