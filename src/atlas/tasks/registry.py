"""The task registry: every unit of work Atlas does is a named task type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from atlas.errors import NotFound

__all__ = ["TaskType", "get_task_type", "is_registered", "registered_task_types", "task_type"]

TaskFunc = Callable[..., Any]
F = TypeVar("F", bound=TaskFunc)


@dataclass(frozen=True)
class TaskType:
    """A registered kind of work and its default retry policy.

    ``func(ctx, **params)`` does the work; ``params`` and the return value are
    JSON-serialisable so a task can cross a queue to another machine.
    """

    name: str
    func: TaskFunc
    retries: int = 0
    retry_delay_s: float = 1.0
    backoff: float = 2.0
    description: str = ""


_REGISTRY: dict[str, TaskType] = {}


def task_type(
    name: str, *, retries: int = 0, retry_delay_s: float = 1.0, backoff: float = 2.0
) -> Callable[[F], F]:
    """Register the decorated function as the task type ``name``.

    Registering the same name twice with another function is a programming error.
    """

    def register(func: F) -> F:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"task type {name!r} is already registered by {existing.func!r}")
        doc = (func.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = TaskType(
            name=name,
            func=func,
            retries=retries,
            retry_delay_s=retry_delay_s,
            backoff=backoff,
            description=doc[0] if doc else "",
        )
        return func

    return register


def get_task_type(name: str) -> TaskType:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise NotFound(f"unknown task type {name!r} (known: {known})") from None


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def registered_task_types() -> list[TaskType]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
