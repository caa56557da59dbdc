"""The rooms of the house keep to themselves (DESIGN.md): checked on the source, so a
stray import fails here rather than in a host app that lacks the library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flask_zoho_sync"


def imports_of(folder: str) -> dict[str, set[str]]:
    """Top-level module names imported by each file of a subpackage (absolute form)."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ["flask_zoho_sync", folder][: 3 - node.level]
                    names.add(".".join([*base, node.module or ""]).rstrip("."))
                elif node.module:
                    names.add(node.module)
        found[path.name] = names
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden", "allowed_inside"),
    [
        (
            "zoho",
            ("flask", "sqlalchemy", "flask_sqlalchemy", "rq"),
            ("flask_zoho_sync.zoho",),
        ),
        (
            "sync",
            (
                "flask",
                "sqlalchemy",
                "flask_sqlalchemy",
                "requests",
                "httpx",
                "urllib3",
                "redis",
                "rq",
            ),
            (
                "flask_zoho_sync.sync",
                "flask_zoho_sync.zoho.errors",
                "flask_zoho_sync.zoho.results",
                "flask_zoho_sync.zoho.timefmt",
            ),
        ),
    ],
)
def test_a_room_imports_only_what_it_may(
    folder: str, forbidden: tuple[str, ...], allowed_inside: tuple[str, ...]
) -> None:
    for filename, names in imports_of(folder).items():
        for name in names:
            top = name.split(".")[0]
            assert top not in forbidden, f"{folder}/{filename} imports {name}"
            if top == "flask_zoho_sync":
                assert name.startswith(allowed_inside), f"{folder}/{filename} imports {name}"
