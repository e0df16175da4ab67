"""Changes and release bundles as the HTTP API records and shows them, each call one transaction.

A change names its service and shows on that service's open incidents (`bot.releases.changes.announce`);
a registered bundle is a deploy, so it is announced as a change too. Bundles are shown with
their lineage: the previous version and what changed since.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.clock import utcnow
from bot.releases import bundles, changes
from bot.store.db import transaction
from bot.store.models import Bundle


def record_change(engine: Engine, **fields: Any) -> tuple[int | None, list[int]]:
    """``(change id, or None for a repeat; ids of the incidents told)``; see `bot.releases.changes.announce`."""
    with transaction(engine) as session:
        return changes.announce(session, **fields)


def register_bundle(engine: Engine, *, service: str, version: str, components: Mapping[str, Any],
                    deployed_at: datetime | None, known_good: bool | None, reason: str | None,
                    deployed_by: str | None) -> dict[str, Any]:
    with transaction(engine) as session:
        deployed_at = deployed_at or utcnow()
        bundle = bundles.register_bundle(session, service=service, version=version, components=components,
                                         deployed_at=deployed_at, known_good=known_good, reason=reason)
        # A deploy is a change: on the service's open incidents now, before its next ones later.
        changes.announce(session, service=service, kind="deploy", summary=changes.bundle_summary(version),
                         at=deployed_at, actor=deployed_by, source="bundles",
                         dedupe_key=f"{service}:{version}:{deployed_at.isoformat()}")
        return _with_lineage(session, bundle)


def list_bundles(engine: Engine, *, service: str | None, limit: int) -> list[dict[str, Any]]:
    with transaction(engine) as session:
        return [_with_lineage(session, b) for b in bundles.list_bundles(session, service=service, limit=limit)]


def mark_known_good(engine: Engine, service: str, version: str, reason: str | None) -> dict[str, Any]:
    """Raises `NotFound` for a bundle never registered."""
    with transaction(engine) as session:
        return _with_lineage(session, bundles.mark_known_good(session, service, version, reason))


def _with_lineage(session: Session, bundle: Bundle) -> dict[str, Any]:
    previous = bundles.previous_bundle(session, bundle)
    diff = bundles.diff(previous, bundle)
    return {**bundles.as_dict(bundle), "previous_version": previous.version if previous else None,
            "changes": [c.as_json() for c in diff], "change_summary": bundles.describe_change(diff)}
