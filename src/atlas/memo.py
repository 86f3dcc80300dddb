"""A bounded, thread-safe cache whose missing values are built once (single flight).

Every cache Atlas keeps is a :class:`Memo`; :mod:`atlas.caches` lists them all.

* **Bounded:** at most ``max_entries`` values; the least recently used goes first.
* **Built outside the lock:** a slow build (a model loading, a profile training)
  holds up only the callers asking for the same key, and those wait for the one
  build rather than building again. A build that raises raises to every caller
  waiting for it and leaves nothing cached: the next call builds again.
* **Versions:** with ``family``, keys of one family are versions of one thing
  (the profiles of one library at successive states of its tags): storing a
  version drops the others, so only the latest is kept.
* **Clearing:** :meth:`Memo.clear` forgets every value; a build still running
  then is handed to its callers but not kept, since it may reflect what the
  clear meant to forget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, Literal, TypeVar

__all__ = ["Memo", "Scope"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: ``library``: state of one library (its key names the database or the data dir).
#: ``process``: good whatever library is open (loaded models, vectors of fixed texts).
Scope = Literal["library", "process"]


class _Build(Generic[V]):
    """One build in progress; the callers waiting for it wait for ``done``."""

    __slots__ = ("done", "error", "thread", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.thread = threading.get_ident()
        self.value: V | None = None
        self.error: BaseException | None = None


class Memo(Generic[K, V]):
    """Values by key, at most ``max_entries`` of them, each built once."""

    def __init__(
        self,
        name: str,
        *,
        max_entries: int,
        scope: Scope,
        holds: str,
        family: Callable[[K], Hashable] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("a memo holds at least one value")
        self.name = name
        self.max_entries = max_entries
        self.scope: Scope = scope
        #: What it holds, by which key, and when a value is replaced (for people).
        self.holds = holds
        self.family = family
        self._values: OrderedDict[K, V] = OrderedDict()
        self._building: dict[K, _Build[V]] = {}
        self._lock = threading.Lock()
        self._clears = 0

    def __repr__(self) -> str:
        return f"Memo({self.name!r}, {len(self)}/{self.max_entries})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)

    def __contains__(self, key: K) -> bool:
        with self._lock:
            return key in self._values

    def get(self, key: K, build: Callable[[], V]) -> V:
        """The value of ``key``: cached, or built now by ``build()`` (once for all callers).

        Raises what ``build`` raises, to this caller and to every caller that
        waited for that build; nothing is cached then. ``RuntimeError`` when
        ``build`` asks this memo for its own key (it would wait for itself).
        """
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            pending = self._building.get(key)
            if pending is None:
                pending = self._building[key] = _Build()
                clears = self._clears
                mine = True
            else:
                mine = False
        if not mine:
            if pending.thread == threading.get_ident():
                raise RuntimeError(f"building {key!r} in {self.name} needs {key!r} itself")
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            return pending.value  # type: ignore[return-value]  # set before done
        try:
            value = build()
        except BaseException as exc:
            pending.error = exc
            with self._lock:
                if self._building.get(key) is pending:
                    del self._building[key]
            pending.done.set()
            raise
        pending.value = value
        with self._lock:
            if self._building.get(key) is pending:
                del self._building[key]
            if clears == self._clears:
                self._store(key, value)
        pending.done.set()
        return value

    def lookup(self, key: K) -> V | None:
        """The cached value of ``key`` (``None`` when there is none); builds nothing."""
        with self._lock:
            if key not in self._values:
                return None
            self._values.move_to_end(key)
            return self._values[key]

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` for ``key``, replacing any value and older versions of it."""
        with self._lock:
            self._store(key, value)

    def clear(self) -> None:
        """Forget every value; builds running now are not kept when they finish."""
        with self._lock:
            self._values.clear()
            self._building.clear()
            self._clears += 1

    def _store(self, key: K, value: V) -> None:
        # Called with the lock held.
        if self.family is not None:
            family = self.family(key)
            for old in [k for k in self._values if k != key and self.family(k) == family]:
                del self._values[old]
        self._values[key] = value
        self._values.move_to_end(key)
        while len(self._values) > self.max_entries:
            self._values.popitem(last=False)
