"""What every command shares: the lazily opened Atlas, output helpers, the error edge."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from typer.core import TyperCommand, TyperGroup

from atlas.app import Atlas, open_atlas
from atlas.config import LoadedSettings, Settings, load_settings
from atlas.db import MAX_ID, explain_database_error
from atlas.errors import (
    CHECK_VECTOR_STORE,
    EMBED_MISSING,
    REBUILD_VECTOR_STORE,
    AtlasError,
    InvalidInput,
)
from atlas.library import Library
from atlas.tasks.dispatcher import RecoveryReport

__all__ = [
    "JSON_OPTION",
    "AtlasCommand",
    "AtlasGroup",
    "CliState",
    "ErrorEdge",
    "ProgressBar",
    "console",
    "emit_json",
    "err_console",
    "fail",
    "progress_bar",
    "state",
]

console = Console(highlight=False, soft_wrap=False)
err_console = Console(stderr=True, highlight=False)

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


class CliState:
    """Global flags, and the Atlas they describe, opened on first use."""

    def __init__(
        self,
        *,
        home: Path | str | None,
        config: Path | str | None,
        overrides: Mapping[str, Any],
    ) -> None:
        self.home = home
        self.config = config
        self.overrides = dict(overrides)
        self._atlas: Atlas | None = None
        self._library: Library | None = None

    def override(self, **values: Any) -> None:
        """Command flags that map onto settings (dotted keys); call before ``settings``."""
        self.overrides.update({k.replace("__", "."): v for k, v in values.items()})
        self.__dict__.pop("loaded", None)

    @cached_property
    def loaded(self) -> LoadedSettings:
        return load_settings(home=self.home, config_file=self.config, overrides=self.overrides)

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    def atlas(self) -> Atlas:
        """Open Atlas (applying pending migrations) once per command."""
        if self._atlas is None:
            self._atlas = open_atlas(self.settings)
            self._atlas.dispatcher.on_recovered = _say_recovered
        return self._atlas

    def library(self) -> Library:
        """The library entry object every face uses, over this command's Atlas."""
        if self._library is None:
            self._library = Library(self.atlas())
        return self._library

    def close(self) -> None:
        if self._atlas is not None:
            self._atlas.close()
            self._atlas = None
        self._library = None


def _say_recovered(report: RecoveryReport) -> None:
    if report.resumed:
        types = ", ".join(f"{kind} {count}" for kind, count in sorted(report.types.items()))
        typer.echo(f"atlas: resuming {len(report.resumed)} interrupted task(s) ({types})", err=True)


def state(ctx: typer.Context) -> CliState:
    """The command's ``CliState``; first checks every value the command line gave.

    Every command asks for its state before it does anything, so this is the one
    place where the values of all commands pass: see :func:`check_values`.
    """
    check_values(ctx)
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):  # a command invoked without the root callback
        root.obj = CliState(home=None, config=None, overrides={})
        root.call_on_close(root.obj.close)
    return root.obj


def check_values(ctx: typer.Context) -> None:
    """Refuse values no command can use, whatever the command: ``InvalidInput``.

    An integer beyond what the database stores (ids, limits and years are SQL
    integers, 32 bits in PostgreSQL), a float that is nan or infinite, and text
    with a NUL character or bytes that are not UTF-8 (neither can be stored or
    printed). Services check their own ranges; this is the floor under them.
    """
    contexts = []
    current: Any = ctx
    while current is not None:
        contexts.append(current)
        current = current.parent
    for context in reversed(contexts):
        labels = {param.name: _label(param) for param in context.command.params}
        for name, value in context.params.items():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                problem = _problem(item)
                if problem is not None:
                    raise InvalidInput(f"{labels.get(name, name)}: {problem}")


def _label(param: Any) -> str:
    if param.param_type_name == "option":
        return str(max(param.opts, key=len))
    return str(param.metavar or param.name).upper()


def _problem(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if abs(value) > MAX_ID:
            return f"{value} is out of range; Atlas takes whole numbers up to ±{MAX_ID}"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a finite number"
    if isinstance(value, (str, Path)):
        text = str(value)
        if "\x00" in text:
            return "contains a NUL character"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid UTF-8 text"
    return None


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    typer.echo(f"atlas: {one_line(message)}", err=True)
    raise typer.Exit(code)


def one_line(message: str) -> str:
    """``message`` with every unprintable character escaped (``\\n``, ``\\x1b``, ...).

    Error messages quote what the user gave: a path with a newline or a terminal
    escape must neither break the one line nor reach the terminal raw.
    """
    if message.isprintable():
        return message
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape", "backslashreplace").decode()
        for char in message
    )


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def emit_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout."""
    sys.stdout.write(json.dumps(data, default=_plain, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class ProgressBar:
    """A rich progress bar on stderr (count, percent, rate, ETA), shown from ``start()``.

    Nothing is drawn before the work is known, so a command that fails while
    checking its input prints only its error line.
    """

    def __init__(self, description: str, *, unit: str, disable: bool) -> None:
        self.description = description
        self.unit = unit
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            # Only a terminal gets a bar; logs and pipes get the summary alone.
            disable=disable or not err_console.is_terminal,
        )
        self._task: Any = None

    def start(self, total: int | None, description: str | None = None) -> None:
        """Show the bar (or restart it for the next stage) with ``total`` steps."""
        if description is not None:
            self.description = description
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=total, rate="")
        else:
            self._progress.reset(self._task, total=total, description=self.description, rate="")

    def advance(self, amount: int = 1) -> None:
        if self._task is None:
            self.start(None)
        self._progress.advance(self._task, amount)
        current = self._progress.tasks[self._task]
        if current.elapsed:
            self._progress.update(
                self._task, rate=f"{current.completed / current.elapsed:,.1f} {self.unit}/s"
            )

    def close(self, *, failed: bool = False) -> None:
        if self._task is not None:
            if failed:  # leave the error line alone on the screen
                self._progress.live.transient = True
            self._progress.stop()


@contextlib.contextmanager
def progress_bar(
    description: str, *, unit: str = "items", disable: bool = False
) -> Iterator[ProgressBar]:
    bar = ProgressBar(description, unit=unit, disable=disable)
    try:
        yield bar
    except BaseException:
        bar.close(failed=True)
        raise
    bar.close()


#: The command that does each repair a service may point to (``AtlasError.repair``).
REPAIR_COMMANDS = {
    REBUILD_VECTOR_STORE: "atlas embed-media --all --force",
    CHECK_VECTOR_STORE: "atlas embed-media --all --verify",
    EMBED_MISSING: "atlas embed-media --all",
}


#: The flag of each input a service may name, where it is not ``--`` + its name.
PARAMETER_FLAGS = {"media_ids": "--media ID", "targets": "TARGET...", "paths": "PATH..."}
_PARAMETER = re.compile(r"`([a-z][a-z_]*)`")


def flag_for(parameter: str) -> str:
    """The command-line flag that gives the input a service calls ``parameter``."""
    return PARAMETER_FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def in_flags(text: str) -> str:
    """A service's text as the CLI says it: each input named in backticks (`force`) by its
    flag (``--force``)."""
    return _PARAMETER.sub(lambda match: flag_for(match.group(1)), text)


def describe_error(exc: AtlasError) -> str:
    """An Atlas error as the CLI says it: inputs by their flags, and the command that repairs it."""
    message = in_flags(exc.message)
    if exc.repair is None:
        return message
    command = REPAIR_COMMANDS.get(exc.repair)
    return f"{message}; {exc.repair}" + (f": {command}" if command else "")


def _internal_error(exc: Exception) -> NoReturn:
    """A bug: one line (exit 70), or the traceback with ``ATLAS_DEBUG`` set."""
    if os.environ.get("ATLAS_DEBUG"):
        raise exc
    fail(
        f"internal error: {type(exc).__name__}: {_first_line(exc)} "
        "(set ATLAS_DEBUG=1 to see the traceback)",
        70,
    )


def _first_line(exc: BaseException) -> str:
    """An error's message cut to its first line (SQLAlchemy's run on with the SQL)."""
    return (str(exc).strip().splitlines() or [""])[0]


if TYPE_CHECKING:
    _Command = TyperCommand
else:  # a mixin: the command class it is mixed into comes next in the MRO
    _Command = object


class ErrorEdge(_Command):
    """The error edge: Atlas errors and usage errors become one line and an exit code.

    Mixed into the ``atlas`` group and into the single-command console scripts
    (``atlas-embed-media``, ...), so every entry point fails the same way. Typer
    vendors Click and keeps it private; its public ``TyperException`` is the base of
    every Click error (usage errors carry the context of their command).
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AtlasError as exc:
            fail(describe_error(exc), exc.exit_code)
        except OperationalError as exc:
            detail = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
            fail(f"database error: {detail}", 5)
        except DBAPIError as exc:
            error = explain_database_error(exc)
            if error is None:
                _internal_error(exc)
            fail(error.message, error.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as exc:
            _internal_error(exc)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            with _terminate_as_interrupt():
                result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except typer.TyperException as exc:
            command = getattr(exc, "ctx", None)
            hint = f" (see '{command.command_path} --help')" if command is not None else ""
            typer.echo(f"atlas: {exc.format_message()}{hint}", err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("atlas: aborted", err=True)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a command as Ctrl-C does: the running task is handed back, not dropped.

    (``atlas worker`` sets its own handlers: it lets running tasks finish first.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class AtlasGroup(ErrorEdge, TyperGroup):  # type: ignore[misc]
    """The ``atlas`` command group, behind the error edge."""


class AtlasCommand(ErrorEdge, TyperCommand):
    """A single-command console script, behind the same error edge."""
