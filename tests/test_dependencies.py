"""What Atlas imports is what pyproject.toml declares.

Every third-party module imported anywhere in ``src/atlas`` comes from a declared
distribution: an import at the top of a module (run as soon as the module is
imported, so by every command) from the base dependencies, an import inside a
function (run only by the feature that needs it) from the base or an extra. No
module reaches into another package's private parts (``typer._click``).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "atlas"
#: Packages that are a feature of one extra as a whole: nothing outside them
#: imports them at module level (``atlas serve`` imports ``atlas.api`` when it
#: runs), so their modules may import that extra's distributions at the top.
EXTRA_PACKAGES = {"src/atlas/api/": "api"}


@dataclass(frozen=True)
class Import:
    module: str
    where: str
    #: Run when its module is imported (not inside a function or TYPE_CHECKING).
    eager: bool

    @property
    def top(self) -> str:
        return self.module.split(".")[0]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return _normalise(match.group())


@cache
def _declared() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = frozenset(_requirement_name(r) for r in project["dependencies"])
    extras = {
        extra: frozenset(_requirement_name(r) for r in requirements)
        for extra, requirements in project.get("optional-dependencies", {}).items()
    }
    return base, extras


@cache
def _installed() -> dict[str, list[str]]:
    return dict(packages_distributions())


def _distributions(top: str) -> set[str]:
    """The distributions that provide the top-level module ``top``."""
    installed = _installed().get(top)
    # Not installed here: assume the usual spelling (faster_whisper -> faster-whisper).
    return {_normalise(name) for name in installed} if installed else {_normalise(top)}


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def imports_in(source: str, where: str) -> Iterator[Import]:
    """The absolute imports of third-party modules in ``source``."""

    def walk(node: ast.AST, eager: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, eager=False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.body:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), eager=False)
                for statement in child.orelse:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), eager)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(alias.name, f"{where}:{child.lineno}", eager)
            elif isinstance(child, ast.ImportFrom):
                if child.level == 0 and child.module:
                    yield Import(child.module, f"{where}:{child.lineno}", eager)
            else:
                yield from walk(child, eager)

    for found in walk(ast.parse(source), eager=True):
        if found.top not in sys.stdlib_module_names and found.top not in {"atlas", "__future__"}:
            yield found


def _atlas_imports() -> list[Import]:
    found: list[Import] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found.extend(imports_in(path.read_text(), str(path.relative_to(ROOT))))
    assert found, "no imports found: the scan is broken"
    return found


def undeclared(imports: list[Import]) -> list[str]:
    """One line per import whose distribution is not declared where it must be."""
    base, extras = _declared()
    anywhere = base.union(*extras.values())
    problems = []
    for found in imports:
        provided_by = _distributions(found.top)
        extra = next(
            (name for prefix, name in EXTRA_PACKAGES.items() if found.where.startswith(prefix)),
            None,
        )
        allowed = base | extras.get(extra, frozenset()) if extra else base
        if found.eager and not provided_by & allowed:
            in_extras = sorted(name for name, members in extras.items() if provided_by & members)
            hint = f" (only in the extra {', '.join(in_extras)})" if in_extras else ""
            problems.append(
                f"{found.where}: import {found.module} at module level needs "
                f"{' or '.join(sorted(provided_by))} in the base dependencies{hint}; "
                "declare it there or import it inside the function that needs it"
            )
        elif not provided_by & anywhere:
            problems.append(
                f"{found.where}: import {found.module} needs "
                f"{' or '.join(sorted(provided_by))} declared in pyproject.toml"
            )
    return problems


def test_extra_packages_are_imported_lazily_from_outside():
    """Only inside a function may the rest of Atlas import a package of an extra."""
    for prefix in EXTRA_PACKAGES:
        module = prefix.removeprefix("src/").rstrip("/").replace("/", ".")
        for path in sorted(PACKAGE.rglob("*.py")):
            where = str(path.relative_to(ROOT))
            if where.startswith(prefix):
                continue
            tree = ast.parse(path.read_text())
            for node in tree.body:
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(module):
                    raise AssertionError(f"{where}:{node.lineno} imports {module} at module level")


def private(imports: list[Import]) -> list[str]:
    return [
        f"{found.where}: import {found.module} reaches into a private module"
        for found in imports
        if any(part.startswith("_") for part in found.module.split("."))
    ]


def test_every_imported_distribution_is_declared_where_its_import_runs():
    assert undeclared(_atlas_imports()) == []


def test_no_module_imports_private_parts_of_another_package():
    assert private(_atlas_imports()) == []


def test_the_check_catches_an_undeclared_or_misplaced_import():
    source = (
        "import typer\n"
        "import chromadb\n"
        "from no_such_package.sub import thing\n"
        "from typer._click.core import Command\n"
        "def later():\n"
        "    import chromadb\n"
        "    import another_missing_package\n"
        "if TYPE_CHECKING:\n"
        "    import numpy\n"
        "else:\n"
        "    import scipy\n"
    )
    imports = list(imports_in(source, "example.py"))
    assert [(i.module, i.eager) for i in imports] == [
        ("typer", True),
        ("chromadb", True),
        ("no_such_package.sub", True),
        ("typer._click.core", True),
        ("chromadb", False),
        ("another_missing_package", False),
        ("numpy", False),
        ("scipy", True),
    ]
    problems = undeclared(imports)
    assert [line.split(": ")[0] for line in problems] == [
        "example.py:2",
        "example.py:3",
        "example.py:7",
    ]
    assert "(only in the extra ml)" in problems[0]
    assert private(imports) == [
        "example.py:4: import typer._click.core reaches into a private module"
    ]
