"""The edges stay thin: Slack listeners and HTTP routes parse, call a service and render.

Persistence and business rules live in the domain services; an edge module that imports the
database layer, the models or the outbox (or SQLAlchemy/SQLModel, to write its own queries) is
growing a second copy of them. Read statically, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EDGES = ("bot/slack/listeners", "bot/routes")
# The store (bot/store/) but for its health check, which /healthz and the 503s are about.
FORBIDDEN = ("bot.store.db", "bot.store.models", "bot.store.outbox", "bot.store.changeset", "bot.store.statements",
             "sqlalchemy", "sqlmodel")


def imported_modules(source: str, package: str) -> set[str]:
    """Every module ``source`` (a module of ``package``) imports, absolute, anywhere in the file
    (``from bot.store import outbox`` counts as ``bot.store.outbox``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the module's package
                parts = package.split(".")
                parent = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def forbidden_imports(source: str, package: str) -> list[str]:
    return sorted(name for name in imported_modules(source, package)
                  if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN))


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).parent.parts)


@pytest.mark.parametrize("edge", EDGES)
def test_no_edge_module_imports_the_database_layer_models_or_outbox(edge: str) -> None:
    modules = sorted((ROOT / edge).rglob("*.py"))
    assert modules, f"no modules under {edge}"
    offenders = {str(path.relative_to(ROOT)): bad for path in modules
                 if (bad := forbidden_imports(path.read_text(), package_of(path)))}
    assert offenders == {}, f"{edge} must call services, not the store: {offenders}"


def test_the_walk_sees_every_way_of_importing() -> None:
    """The checker itself: plain, from-, aliased, lazy and relative imports are all found."""
    source = ("import sqlalchemy.orm as orm\nfrom bot.store import outbox\n\n\ndef later():\n"
              "    from ...store.models import Incident\n    from bot.store.db import transaction\n"
              "    from bot.incidents import operations\n    from bot.store.health import check_database\n")
    assert forbidden_imports(source, "bot.slack.listeners") == [
        "bot.store.db", "bot.store.db.transaction", "bot.store.models", "bot.store.models.Incident",
        "bot.store.outbox", "sqlalchemy.orm"]


def test_the_edges_are_all_walked() -> None:
    routes = {p.name for p in (ROOT / "bot/routes").glob("*.py")}
    listeners = {p.name for p in (ROOT / "bot/slack/listeners").glob("*.py")}
    assert {"pages.py", "api.py", "telemetry.py", "otlp.py", "access.py", "sessions.py", "changes.py"} <= routes
    assert {"commands.py", "actions.py", "buttons.py", "events.py", "labels.py"} <= listeners
