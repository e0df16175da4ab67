"""Release bundles: which prompt, model route, retriever, tools and guardrails were live, and when.

A bundle is identified by (service, version). Registering a version again is a re-deploy (a
rollback to it, or a sender's retry): its components and ``deployed_at`` are replaced, so the
live bundle at any moment is simply the latest ``deployed_at`` at or before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlmodel import Session, col

from bot.clock import iso, utcnow
from bot.errors import NotFound
from bot.store.db import insert_or_ignore
from bot.store.models import Bundle

# The components people reason about, in the order a change is told; other keys follow, sorted.
COMPONENTS: dict[str, str] = {
    "prompt_version": "prompt",
    "model_route": "model route",
    "retriever_snapshot": "retriever snapshot",
    "tool_contracts": "tool contracts",
    "guardrail_policy": "guardrail policy",
    "eval_suite": "eval suite",
    "rollout_policy": "rollout policy",
}


@dataclass(frozen=True)
class ComponentChange:
    name: str
    old: Any
    new: Any

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old, "new": self.new}


def register_bundle(session: Session, *, service: str, version: str, components: Mapping[str, Any],
                    deployed_at: datetime | None = None, known_good: bool | None = None,
                    reason: str | None = None) -> Bundle:
    """Insert or re-deploy (service, version); ``known_good=None`` leaves an earlier verdict alone."""
    deployed_at = deployed_at or utcnow()
    values = {"service": service, "version": version, "components": dict(components), "deployed_at": deployed_at}
    if insert_or_ignore(session, Bundle, values, ["service", "version"]) is None:
        bundle = _get(session, service, version, for_update=True)
        bundle.components, bundle.deployed_at = dict(components), deployed_at
    else:
        bundle = _get(session, service, version)
    if known_good is not None:
        bundle.known_good = known_good
        bundle.known_good_reason = (reason or "registered as known good") if known_good else None
        if not known_good:  # a gate's verdict does not survive a registration that says otherwise
            bundle.known_good_run_id = bundle.known_good_at = None
    session.flush()
    return bundle


def mark_known_good(session: Session, service: str, version: str, reason: str | None = None, *,
                    run_id: int | None = None) -> Bundle:
    """Mark a bundle known-good: by a passing gate run (``run_id``) or by hand (``run_id=None``)."""
    bundle = _get(session, service, version, for_update=True)
    bundle.known_good, bundle.known_good_reason = True, reason or bundle.known_good_reason
    bundle.known_good_run_id, bundle.known_good_at = run_id, utcnow()
    session.flush()
    return bundle


def newest_gated(session: Session, service: str, *, excluding: str | None = None) -> Bundle | None:
    """The bundle whose gate passed most recently (a hand-marked bundle never counts)."""
    stmt = select(Bundle).where(col(Bundle.service) == service, col(Bundle.known_good).is_(True),
                                col(Bundle.known_good_run_id).is_not(None))
    if excluding is not None:
        stmt = stmt.where(col(Bundle.version) != excluding)
    return session.execute(stmt.order_by(col(Bundle.known_good_at).desc(),
                                         col(Bundle.id).desc()).limit(1)).scalar_one_or_none()


def get_bundle(session: Session, service: str, version: str) -> Bundle:
    return _get(session, service, version)


def _get(session: Session, service: str, version: str, *, for_update: bool = False) -> Bundle:
    stmt = select(Bundle).where(col(Bundle.service) == service, col(Bundle.version) == version)
    bundle = session.execute(stmt.with_for_update() if for_update else stmt).scalar_one_or_none()
    if bundle is None:
        raise NotFound(f"There is no bundle {version!r} of {service!r}.")
    return bundle


def list_bundles(session: Session, *, service: str | None = None, limit: int = 100) -> list[Bundle]:
    """Newest deployment first."""
    stmt = select(Bundle).order_by(col(Bundle.deployed_at).desc(), col(Bundle.id).desc()).limit(limit)
    if service is not None:
        stmt = stmt.where(col(Bundle.service) == service)
    return list(session.execute(stmt).scalars())


def live_bundle(session: Session, service: str, at: datetime | None = None) -> Bundle | None:
    """The bundle serving ``service`` at ``at`` (default now): the latest deployed at or before it."""
    stmt = (select(Bundle).where(col(Bundle.service) == service, col(Bundle.deployed_at) <= (at or utcnow()))
            .order_by(col(Bundle.deployed_at).desc(), col(Bundle.id).desc()).limit(1))
    return session.execute(stmt).scalar_one_or_none()


def previous_bundle(session: Session, bundle: Bundle) -> Bundle | None:
    """The one deployed just before ``bundle`` (same deployed_at: the earlier registration)."""
    return session.execute(
        select(Bundle).where(col(Bundle.service) == bundle.service, _deployed_before(bundle))
        .order_by(col(Bundle.deployed_at).desc(), col(Bundle.id).desc()).limit(1)
    ).scalar_one_or_none()


def last_known_good(session: Session, service: str, before_version: str | None = None) -> Bundle | None:
    """The newest known-good bundle, or the newest one deployed before ``before_version``."""
    stmt = select(Bundle).where(col(Bundle.service) == service, col(Bundle.known_good).is_(True))
    if before_version is not None:
        stmt = stmt.where(_deployed_before(_get(session, service, before_version)))
    return session.execute(stmt.order_by(col(Bundle.deployed_at).desc(),
                                         col(Bundle.id).desc()).limit(1)).scalar_one_or_none()


def _deployed_before(bundle: Bundle) -> Any:
    return or_(col(Bundle.deployed_at) < bundle.deployed_at,
               and_(col(Bundle.deployed_at) == bundle.deployed_at, col(Bundle.id) < bundle.id))


def diff(old: Bundle | Mapping[str, Any] | None, new: Bundle | Mapping[str, Any] | None) -> list[ComponentChange]:
    """What changed from ``old`` to ``new``; a component only one side has is added or removed (None)."""
    before, after = _components(old), _components(new)
    keys = [k for k in COMPONENTS if k in before or k in after]
    keys += sorted((before.keys() | after.keys()) - COMPONENTS.keys())
    return [ComponentChange(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


def _components(side: Bundle | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if side is None:
        return {}
    return side.components if isinstance(side, Bundle) else side


def describe_change(changes: Iterable[ComponentChange]) -> str:
    """``prompt answer-v41→answer-v42, retriever snapshot policy-2026-02-01→policy-2026-03-14``."""
    parts = [f"{COMPONENTS.get(c.name, c.name.replace('_', ' '))} {_show(c.old)}→{_show(c.new)}" for c in changes]
    return ", ".join(parts) or "no component changed"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def as_dict(bundle: Bundle) -> dict[str, Any]:
    return {"id": bundle.id, "service": bundle.service, "version": bundle.version, "components": bundle.components,
            "deployed_at": iso(bundle.deployed_at), "known_good": bundle.known_good,
            "known_good_reason": bundle.known_good_reason, "known_good_run_id": bundle.known_good_run_id,
            "known_good_at": iso(bundle.known_good_at) if bundle.known_good_at else None,
            "known_good_by": (("gate" if bundle.known_good_run_id is not None else "hand")
                              if bundle.known_good else None)}
