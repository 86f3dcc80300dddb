"""Services speak the domain: no text a service returns or raises names a CLI flag."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from atlas.cli._common import in_flags

SRC = Path(__file__).resolve().parents[1] / "src" / "atlas"
#: The faces, which name their own flags, and the settings' record of where a value
#: came from ("flag --home": the flag itself is the source).
FACES = ("cli", "api", "config.py")
_FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _texts(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants of a module, docstrings left out."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_service_text_names_a_command_line_flag():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative.startswith(FACES):
            continue
        for line, text in _texts(ast.parse(path.read_text(encoding="utf-8"))):
            if _FLAG.search(text):
                found.append(f"{relative}:{line}: {text!r}")
    assert found == []


def test_the_cli_shows_the_inputs_a_service_names_as_its_flags():
    assert in_flags("already transcribed (from whisper); use `force` to redo") == (
        "already transcribed (from whisper); use --force to redo"
    )
    assert in_flags("`quality` high, 10 min on 2 CPUs") == "--quality high, 10 min on 2 CPUs"
    assert in_flags("`keep_days` and `media_ids`") == "--keep-days and --media ID"
