"""The import contracts in pyproject.toml name every room they must keep out.

`lint-imports` (run by bin/test) checks the contracts themselves. What it cannot see is a
room added later: a forbidden contract lists modules by name, so a new top-level module
would be free for the sandbox, the client or the engine to import until someone added it to
the lists. These tests close that gap by comparing the lists with what is on disk.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project's venv runs 3.11+
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flask_zoho_sync"

#: What the engine may take from the client: value types, no transport.
ENGINE_MAY_USE_OF_CLIENT = {"coql", "errors", "results", "timefmt"}


def contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def rooms(folder: Path, prefix: str) -> set[str]:
    """The modules and subpackages directly inside ``folder``, as dotted names."""
    found = {f"{prefix}.{path.stem}" for path in folder.glob("*.py") if path.stem != "__init__"}
    found |= {
        f"{prefix}.{path.name}" for path in folder.iterdir() if (path / "__init__.py").is_file()
    }
    return found


@pytest.mark.parametrize(
    ("contract_id", "source"),
    [
        ("sandbox-stands-alone", "flask_zoho_sync.sandbox"),
        ("zoho-client-is-the-bottom", "flask_zoho_sync.zoho"),
        ("engine-knows-no-framework", "flask_zoho_sync.sync"),
    ],
)
def test_every_other_room_is_forbidden_to_the_lower_rooms(contract_id: str, source: str) -> None:
    contract = contracts()[contract_id]
    assert contract["source_modules"] == [source]
    forbidden = set(contract["forbidden_modules"])
    expected = rooms(PACKAGE, "flask_zoho_sync") - {source}
    if source == "flask_zoho_sync.sync":
        expected.discard("flask_zoho_sync.zoho")
        client = rooms(PACKAGE / "zoho", "flask_zoho_sync.zoho")
        expected |= {n for n in client if n.rsplit(".", 1)[1] not in ENGINE_MAY_USE_OF_CLIENT}
    missing = sorted(expected - forbidden)
    assert not missing, f"{contract_id} does not forbid {missing}: add them to pyproject.toml"


def test_only_the_pytest_plugin_may_reach_from_the_sandbox_into_the_client() -> None:
    """The plugin's ``zoho_sandbox_client`` fixture builds the real client; nothing else of
    the emulator may, or a mistake shared with the client could pass both sides."""
    ignored = contracts()["sandbox-stands-alone"].get("ignore_imports", [])
    importers = {line.split("->")[0].strip() for line in ignored}
    assert importers <= {"flask_zoho_sync.sandbox.pytest_plugin"}
    assert all(line.split("->")[1].strip().startswith("flask_zoho_sync.zoho.") for line in ignored)


def layer_members(layer: str) -> set[str]:
    """The modules of one layer of a layers contract (``a | b`` or ``a : b``)."""
    return {name.strip() for name in re.split(r"[|:]", layer)}


def test_the_layers_place_every_room_with_the_faces_on_top() -> None:
    """A room in no layer could import a face, or be imported from anywhere: ``exhaustive``
    makes lint-imports refuse one, and this keeps that switch (and the faces' place) on."""
    contract = contracts()["house-layers"]
    assert contract["type"] == "layers"
    assert contract["containers"] == ["flask_zoho_sync"]
    assert contract.get("exhaustive") is True
    layers = [layer_members(layer) for layer in contract["layers"]]
    placed = {f"flask_zoho_sync.{name}" for layer in layers for name in layer}
    assert placed == rooms(PACKAGE, "flask_zoho_sync")
    # The faces: imported by nothing but the extension, which wires them to an app.
    assert layers[0] == {"extension"}
    assert layers[1] == {"web", "cli"}
    assert layers[-1] == {"zoho"}


def test_no_circle_is_allowed_between_rooms_or_inside_the_admin_pages() -> None:
    acyclic = {
        ancestor
        for contract in contracts().values()
        if contract["type"] == "acyclic_siblings"
        for ancestor in contract["ancestors"]
    }
    assert {"flask_zoho_sync", "flask_zoho_sync.web"} <= acyclic
