"""The HTTP routes are a thin edge: they parse, authorise, call a service and render.

No module under ``bot/routes/`` imports the database layer, the models, the outbox or an ORM;
reads and writes live in domain services and read models that open their own transactions.
Every import counts, also one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROUTES = Path(__file__).resolve().parents[2] / "bot" / "routes"
FORBIDDEN = ("bot.db", "bot.models", "bot.outbox", "sqlalchemy", "sqlmodel")


def imported_modules(source: str, package: str) -> set[str]:
    """Every module an ``import`` or ``from … import`` names, with names imported from a package
    counted as modules too (``from bot import db`` imports ``bot.db``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the package the module is in
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def forbidden_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))


def test_the_walker_sees_every_way_of_importing_the_database() -> None:
    source = """
import sqlalchemy.orm
from bot import db
from bot.models import Incident
def later():
    from sqlmodel import Session
from .. import outbox
"""
    assert forbidden_in(imported_modules(source, "bot.routes")) == [
        "bot.db", "bot.models", "bot.models.Incident", "bot.outbox", "sqlalchemy.orm", "sqlmodel", "sqlmodel.Session"]
    assert forbidden_in(imported_modules("from bot import redact\nimport bot.dbx", "bot.routes")) == []


@pytest.mark.parametrize("path", sorted(ROUTES.glob("*.py")), ids=lambda p: p.name)
def test_no_route_module_imports_the_database_the_models_or_the_outbox(path: Path) -> None:
    assert forbidden_in(imported_modules(path.read_text(), "bot.routes")) == []


def test_the_walk_covers_the_route_modules() -> None:
    names = {p.name for p in ROUTES.glob("*.py")}
    assert {"pages.py", "api.py", "telemetry.py", "otlp.py", "access.py", "sessions.py", "changes.py"} <= names
