"""The composition root: settings + database + dispatcher, with every task registered.

Interfaces (CLI, API, worker) build one ``Atlas`` per process and hand its parts
to the services.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from sqlalchemy import Engine

from atlas.autolearn.actions import learned_retries
from atlas.config import Settings, TaskPolicy
from atlas.db import describe_url, make_engine, migration_status, upgrade
from atlas.errors import InvalidInput, Unavailable
from atlas.paths import os_errors
from atlas.tasks import Dispatcher, registered_task_types
from atlas.tasks.registry import is_registered

__all__ = ["TASK_MODULES", "Atlas", "check_task_policies", "load_task_modules", "open_atlas"]

#: Modules whose import registers task types. Heavy libraries are imported
#: inside the tasks, so loading these stays cheap.
TASK_MODULES = (
    "atlas.media.ingest",
    "atlas.media.catalog",
    "atlas.transcription.service",
    "atlas.tagging.batch",
    "atlas.feedback.loop",
    "atlas.analytics.cleanup",
    "atlas.embeddings.embed",
    "atlas.embeddings.clusters",
    "atlas.autolearn.apply",
    "atlas.autolearn.cycle",
)


@dataclass
class Atlas:
    settings: Settings
    engine: Engine
    dispatcher: Dispatcher

    def close(self) -> None:
        self.dispatcher.close()
        self.engine.dispose()


def load_task_modules() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)


def check_task_policies(settings: Settings) -> None:
    """Refuse a ``[tasks.NAME]`` section for a task type no module registered."""
    known = sorted(task.name for task in registered_task_types())
    unknown = sorted(set(settings.tasks) - set(known))
    if unknown:
        raise InvalidInput(
            f"unknown task type {unknown[0]!r} in the settings (tasks.{unknown[0]}); "
            f"the task types are: {', '.join(known)}"
        )


def open_atlas(settings: Settings, *, migrate: bool = True) -> Atlas:
    """Connect to the database, bring its schema up to date, register the tasks.

    With ``migrate=False`` a database behind the code raises ``Unavailable``
    telling the user to run ``atlas migrate``. A data dir that cannot be created
    and a retry policy for a task type Atlas does not have raise ``InvalidInput``.
    """
    load_task_modules()
    check_task_policies(settings)
    with os_errors(settings.home, "cannot be created as the data dir"):
        settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(
        settings.database,
        busy_timeout_s=settings.busy_timeout_s,
        database_timeout_s=settings.database_timeout_s,
    )
    if migrate:
        upgrade(engine)
    elif not migration_status(engine).up_to_date:
        raise Unavailable(
            f"the database {describe_url(settings.database)} needs migrating; run: atlas migrate"
        )
    settings = with_learned_retries(settings, learned_retries(engine))
    return Atlas(settings=settings, engine=engine, dispatcher=Dispatcher(settings, engine))


def with_learned_retries(settings: Settings, learned: dict[str, int]) -> Settings:
    """Settings with the retries autolearn learned for task types the settings leave unset."""
    if not learned:
        return settings
    policies = dict(settings.tasks)
    for name, retries in learned.items():
        policy = policies.get(name, TaskPolicy())
        if policy.retries is None and is_registered(name):
            policies[name] = policy.model_copy(update={"retries": retries})
    return settings.model_copy(update={"tasks": policies})
