"""Hostile inputs for every ``atlas`` command, shared by the property-based test
(tests/test_hostile_inputs.py) and the benchmark (benchmarks/hostile_inputs.py).

The commands are found by walking the Typer app, so a new command is covered
without touching this file; each parameter gets values of its own kind (ids and
counts, numbers, strings, paths) drawn from pools of values users and scripts
really produce by mistake. Paths stay inside a sandbox folder (plus a few
read-only system files), so no generated input can make Atlas walk or write
outside it.
"""

from __future__ import annotations

import os
import random
import shutil
import string
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import typer
from typer.testing import CliRunner

from atlas.cli.app import app

#: Commands left out, and why. Everything else ``atlas --help`` lists is run.
EXCLUDED = {
    "demo": "makes and processes ~36 real videos (minutes per run)",
    "worker": "serves a queue until it is stopped",
    "serve": "serves HTTP until it is stopped (its bad input: tests/test_api_*.py)",
    "media-tags train": "fine-tunes the embedding model (minutes per run)",
}

#: Global options of ``atlas`` that are fed hostile values too.
GLOBAL_OPTIONS = ("--home", "--config", "--database-url", "--queue-url")

INTS = (
    "0",
    "1",
    "2",
    "-1",
    "-9223372036854775808",
    "-9223372036854775809",
    "2147483647",
    "2147483648",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "1" + "0" * 40,
    "1" * 5000,
    "٣",  # an Arabic-Indic digit: int() takes it
    "²",  # a superscript: str.isdigit() says yes, int() says no
    "1e3",
    "nan",
    "",
    " 7",
)
FLOATS = (
    "nan",
    "NaN",
    "inf",
    "-inf",
    "infinity",
    "-0",
    "0",
    "1e309",
    "-1e309",
    "1e-320",
    "0.5",
    "1" + "0" * 400,
    "",
    "½",
    "1,5",
)
STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x1b[31mred\x1b[0m",
    "line\nbreak",
    "\r",
    "\t",
    "\u202eevil",
    "\ufffd",
    "\udcff",  # a byte that is not UTF-8, as Python decodes argv
    "é",
    "😀" * 3,
    "x" * 10_000,
    "a,b,,c",
    "'; DROP TABLE media; --",
    "%s%n{}",
    "../../etc/passwd",
    "-",
    "1",
    "9223372036854775808",
    "²",
    "comedy",
)
#: ``--database-url`` values. ``--queue-url`` gets only those no queue can be made of:
#: with a working queue and no worker, a command waits for one (by design).
URLS = (
    "",
    "foo://x",
    "sqlite://",
    "sqlite:///{sandbox}/no/such/dir/db.sqlite",
    "sqlite:///{sandbox}/corrupt.db",
    "sqlite:///{sandbox}/" + "d" * 300 + "/atlas.db",
    "postgresql://127.0.0.1:1/nothing",
    "not a url",
    "redis://127.0.0.1:1/0",
    "sqlite:///{sandbox}/a-file/queue.db",
    "\x00",
)
#: Paths, relative to the sandbox unless absolute; ``{sandbox}`` is replaced.
PATHS = (
    "",
    ".",
    "no/such/thing",
    "a-file",
    "a-file/below",
    "empty-folder",
    "clip.mp4",
    "folder-with-media",
    "not-media.txt",
    "corrupt.db",
    "binary.toml",
    "catalogue.csv",
    "catalogue.jsonl",
    "bad.csv",
    "loop",
    "x" * 300,
    "/".join(["y" * 200] * 25),
    "a\x00b",
    "~nosuchuser/x",
    "/etc/passwd",
    "/dev/null",
    "/proc/self/status",
)


@dataclass(frozen=True)
class Param:
    """One parameter of a command, as the fuzzer sees it."""

    name: str
    flag: str | None  # None: a positional argument
    kind: str  # int | float | str | path | bool | choice
    many: bool  # takes several values (nargs=-1 or a repeatable option)
    required: bool
    secondary: str | None = None  # the --no-x of a --x/--no-x flag


@dataclass(frozen=True)
class CommandSpec:
    path: tuple[str, ...]
    params: tuple[Param, ...]

    @property
    def name(self) -> str:
        return " ".join(self.path)


#: Parameters typed as text that name files (text, so that "" is refused, not ".").
PATH_NAMES = {"paths", "catalog", "destination", "home", "config", "folder"}


def _kind(param: Any) -> str:
    bare = str(param.bare_type()).lower() if hasattr(param, "bare_type") else "str"
    for kind in ("bool", "int", "float", "path"):
        if kind in bare:
            return kind
    return "path" if param.name in PATH_NAMES else "str"


def commands(include_excluded: bool = False) -> list[CommandSpec]:
    """Every leaf command of ``atlas``, with its parameters."""
    found: list[CommandSpec] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in sorted(subcommands.items()):
                walk(sub, (*path, name))
            return
        if not include_excluded and " ".join(path) in EXCLUDED:
            return
        params = []
        for param in command.params:
            if param.name in ("help",):
                continue
            is_option = param.param_type_name == "option"
            params.append(
                Param(
                    name=param.name,
                    flag=param.opts[0] if is_option else None,
                    kind=_kind(param),
                    many=param.nargs == -1 or bool(getattr(param, "multiple", False)),
                    required=bool(param.required),
                    secondary=(param.secondary_opts or [None])[0] if is_option else None,
                )
            )
        found.append(CommandSpec(path, tuple(params)))

    walk(typer.main.get_command(app), ())
    return found


class Chooser(Protocol):
    """Where the choices come from: a seeded ``random.Random``, or Hypothesis."""

    def pick(self, values: Sequence[str]) -> str: ...

    def coin(self) -> bool: ...

    def free(self, kind: str) -> str:
        """A value of ``kind`` made up on the spot rather than taken from a pool."""
        ...


def pool(kind: str, sandbox: Path) -> tuple[str, ...]:
    """The hostile values for a parameter of ``kind``."""
    if kind == "int":
        return INTS
    if kind == "float":
        return FLOATS
    if kind == "path":
        return tuple(_in_sandbox(value, sandbox) for value in PATHS)
    return STRINGS + INTS[:4]


QUEUE_URLS = (
    "",
    "foo://x",
    "not a url",
    "redis://127.0.0.1:1/0",
    "sqlite:///{sandbox}/a-file/queue.db",
    "sqlite:///{sandbox}/corrupt.db",
    "sqlite:///{sandbox}/" + "q" * 300 + "/queue.db",
    "\x00",
)


def url_pool(sandbox: Path, option: str = "--database-url") -> tuple[str, ...]:
    values = QUEUE_URLS if option == "--queue-url" else URLS
    return tuple(value.replace("{sandbox}", str(sandbox)) for value in values)


def _in_sandbox(value: str, sandbox: Path) -> str:
    if value == "" or value.startswith(("/", "~")):
        return value
    return str(sandbox / value)


def safe_relative(text: str) -> str:
    """Made-up path text that stays inside the sandbox: no "..", no leading "/" or "~"."""
    parts = [part for part in text.split("/") if part not in ("", ".", "..")]
    return "/".join(parts).lstrip("~") or "x"


def build_args(spec: CommandSpec, chooser: Chooser, sandbox: Path) -> list[str]:
    """Arguments for one run of ``spec``: each parameter present or not, with hostile values."""
    args: list[str] = []
    positional: list[str] = []
    for param in spec.params:
        if not param.required and not chooser.coin():
            continue
        if param.kind == "bool":
            if param.flag is not None:
                args.append(param.secondary if param.secondary and chooser.coin() else param.flag)
            continue
        count = (1 + int(chooser.coin()) + int(chooser.coin())) if param.many else 1
        for _ in range(count):
            if chooser.coin():
                value = chooser.pick(pool(param.kind, sandbox))
            elif param.kind == "path":
                value = str(sandbox / safe_relative(chooser.free("str")))
            else:
                value = chooser.free(param.kind)
            if param.flag is None:
                positional.append(value)
            else:
                args += [param.flag, value]
    if positional:
        args += ["--", *positional]  # a value may start with "-": never an option
    if chooser.coin() and chooser.coin():
        option = chooser.pick(GLOBAL_OPTIONS)
        values = url_pool(sandbox, option) if option.endswith("-url") else pool("path", sandbox)
        return [option, chooser.pick(values), *spec.path, *args]
    return [*spec.path, *args]


class RandomChooser:
    """Choices from a seeded ``random.Random`` (the benchmark)."""

    #: Characters made-up text is drawn from: controls, NUL, a lone surrogate, accents,
    #: right-to-left marks, emoji, and plain letters.
    ALPHABET = (
        [chr(c) for c in range(0, 32)]
        + ["\x7f", "\udcff", "\u202e", "\ufeff", "é", "ß", "漢", "😀", "/", ",", "'", '"', " "]
        + list(string.ascii_letters + string.digits)
    )

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, values: Sequence[str]) -> str:
        return self.rng.choice(values)

    def coin(self) -> bool:
        return self.rng.random() < 0.5

    def free(self, kind: str) -> str:
        rng = self.rng
        if kind == "int":
            return str(rng.choice([rng.randint(-5, 5), rng.randint(-(2**70), 2**70)]))
        if kind == "float":
            return repr(rng.choice([rng.uniform(-1e6, 1e6), rng.uniform(-1, 2), 10.0**300]))
        length = rng.choice([0, 1, 5, 40, 300])
        return "".join(rng.choice(self.ALPHABET) for _ in range(length))


def make_sandbox(root: Path, media_file: Path | None = None) -> Path:
    """The files hostile paths point at: a file, an empty folder, a corrupt database, ..."""
    sandbox = root / "sandbox"
    sandbox.mkdir(parents=True, exist_ok=True)
    (sandbox / "a-file").write_text("not a folder\n")
    (sandbox / "empty-folder").mkdir(exist_ok=True)
    (sandbox / "folder-with-media").mkdir(exist_ok=True)
    (sandbox / "not-media.txt").write_text("plain text\n")
    (sandbox / "corrupt.db").write_bytes(os.urandom(4096))
    (sandbox / "binary.toml").write_bytes(b"\x00\xff\xfe" + os.urandom(256))
    (sandbox / "catalogue.csv").write_text(
        "title,genres,path\nA film,drama,/srv/elsewhere/victim.conf\nAnother,comedy,\n"
    )
    (sandbox / "catalogue.jsonl").write_text('{"title": "Third", "tags": "x, y"}\n')
    (sandbox / "bad.csv").write_text('title,genres\n"unterminated,drama\n')
    loop = sandbox / "loop"
    if not loop.is_symlink():
        loop.symlink_to(loop)
    if media_file is not None:
        shutil.copy(media_file, sandbox / "clip.mp4")
        shutil.copy(media_file, sandbox / "folder-with-media" / "inside.mp4")
    return sandbox


@dataclass
class Outcome:
    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    traceback: str | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def internal_error(self) -> bool:
        return self.exit_code == 70 or "internal error" in self.output

    @property
    def has_traceback(self) -> bool:
        return self.traceback is not None or "Traceback (most recent call last)" in self.output


class Runner:
    """Runs ``atlas ARGS`` in-process with the given environment (ATLAS_HOME, ...)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self._runner = CliRunner()

    def __call__(self, args: list[str]) -> Outcome:
        result = self._runner.invoke(app, args, env=self.env)
        trace = None
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            trace = "".join(traceback.format_exception(result.exception))
        return Outcome(args, result.exit_code, result.stdout, result.stderr, trace)


def random_inputs(seed: int, sandbox: Path) -> Iterator[list[str]]:
    """Endless hostile argument lists over every command, round-robin, seeded."""
    chooser = RandomChooser(seed)
    specs = commands()
    while True:
        for spec in specs:
            yield build_args(spec, chooser, sandbox)
