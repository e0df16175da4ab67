"""A service's regression suite: failing traces of every incident, clustered into stored cases.

A case is a cluster of near-identical failures: same service, same failure type, and a question
with the same *content words* (lower-cased, punctuation and the words in ``ClusterRules.stopwords``
dropped, order ignored). So "What is the refund policy?", "what's the refund policy??" and
"Refund policy — what is it" are one case. The case id is a hash of that key, so the same failure
seen in three incidents is one case listing all three, and ids never change between exports.

A case keeps its earliest trace as the representative input (its question and the bad output),
how many traces it stands for and their request ids, and the human label merged from all of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Text, cast, or_, select
from sqlmodel import Session

from bot.clock import as_utc
from bot.evals import Label, case_kinds
from bot.models import EvalCase, EvalCaseIncident, Incident, Trace
from bot.redact import Redactor
from bot.trace_rules import FAILURE_TYPES, question_text

log = logging.getLogger(__name__)

FETCH_BATCH = 2_000

# Words that change how a question reads, not what it asks.
DEFAULT_STOPWORDS = frozenset("""
a an the is are was were be been am do does did of to in on for at by with about from as and or
please can could would will you your i me my we our us it its it's s what's whats what is
hi hello hey thanks thank pls kindly just tell
""".split())


@dataclass(frozen=True)
class ClusterRules:
    """How near two failing questions must be to count as one case.

    ``stopwords`` are ignored; ``keep_order=True`` makes word order matter (stricter);
    ``min_word_length`` drops shorter tokens (except digits, which often name the thing asked about)."""

    stopwords: frozenset[str] = DEFAULT_STOPWORDS
    keep_order: bool = False
    min_word_length: int = 1


_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def signature(question: str, rules: ClusterRules = ClusterRules()) -> str:
    """The content words of ``question``, normalised: equal signatures cluster together."""
    text = unicodedata.normalize("NFKC", question).casefold().replace("'", "").replace("’", "")
    words = [w for w in _WORD.findall(text)
             if w not in rules.stopwords and (len(w) >= rules.min_word_length or w.isdigit())]
    if not rules.keep_order:
        words = sorted(set(words))
    return " ".join(words) or text.strip()


def case_id_of(service: str, failure_type: str, sig: str) -> str:
    return "ec-" + hashlib.sha256(f"{service}\0{failure_type}\0{sig}".encode()).hexdigest()[:12]


@dataclass(slots=True)
class TraceRow:
    """What the suite needs of one failing (or labelled) trace."""

    request_id: str
    timestamp: datetime
    question: str
    output: str | None
    expected: str | None
    bundle_version: str | None
    kinds: tuple[str, ...]
    label: Label | None
    retrieval_ids: list[str] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Cluster:
    failure_type: str
    signature: str
    first: TraceRow
    request_ids: list[str]
    label: Label | None
    first_seen: datetime
    last_seen: datetime


class Clusterer:
    """Groups traces (fed in time order) into clusters; memory holds one row per cluster plus ids."""

    def __init__(self, rules: ClusterRules = ClusterRules()) -> None:
        self.rules = rules
        self.clusters: dict[tuple[str, str], Cluster] = {}
        self._signatures: dict[str, str] = {}  # question → signature: repeated questions are common

    def add(self, row: TraceRow) -> None:
        sig = self._signatures.get(row.question)
        if sig is None:
            sig = self._signatures[row.question] = signature(row.question, self.rules)
        for kind in case_kinds(list(row.kinds), row.label):
            cluster = self.clusters.get((kind, sig))
            if cluster is None:
                self.clusters[(kind, sig)] = Cluster(kind, sig, row, [row.request_id], row.label,
                                                     row.timestamp, row.timestamp)
                continue
            cluster.request_ids.append(row.request_id)
            cluster.last_seen = max(cluster.last_seen, row.timestamp)
            if row.label is not None:
                cluster.label = cluster.label.merged_with(row.label) if cluster.label else row.label


# --- what a stored case carries ---------------------------------------------------------------

_NUMBER_FACT = re.compile(r"\b\d[\d.,:/-]*(?:\s*%|\s+[A-Za-z]+)?")


def key_facts(expected: str) -> list[str]:
    """The facts of an expected answer a paraphrase must still state: its figures with their unit
    ("30 days", "2026-03-16"); with no figures, the whole answer."""
    facts = [m.group(0).strip().rstrip(".,") for m in _NUMBER_FACT.finditer(expected)]
    unique = list(dict.fromkeys(f for f in facts if f))
    return unique or [expected.strip().rstrip(".")]


def split_claims(claim: str) -> list[str]:
    """A label's unsupported claim; several may be given separated by ``;`` or new lines."""
    return [c.strip() for c in re.split(r"[;\n]", claim) if c.strip()]


def case_data(cluster: Cluster, redactor: Redactor) -> tuple[dict[str, Any], bool]:
    """The stored facts of a case (all redacted) and whether a human labelled it."""
    first, label = cluster.first, cluster.label or Label()
    labelled = cluster.label is not None and cluster.label != Label()
    expected = label.expected or first.expected
    data: dict[str, Any] = {
        "output": redactor.redact(first.output or ""),
        "bundle": first.bundle_version,
        "retrieval_ids": list(first.retrieval_ids),
        "tools": list(first.tools),
    }
    if expected:
        data["expected"] = redactor.redact(expected)
        data["facts"] = [redactor.redact(f) for f in key_facts(expected)]
    if label.unsupported_claim:
        data["claims"] = [redactor.redact(c) for c in split_claims(label.unsupported_claim)]
    if label.notes:
        data["notes"] = redactor.redact(label.notes)
    return data, labelled


# --- reading traces ---------------------------------------------------------------------------

_LABEL = cast(Trace.label, Text).label("label_text")
_KINDS = cast(Trace.failure_types, Text).label("kinds_text")
_COLUMNS = (Trace.request_id, Trace.timestamp, Trace.bundle_version, Trace.data["input"].label("input"),
            Trace.data["output"].as_string().label("output"), Trace.data["expected"].as_string().label("expected"),
            cast(Trace.data["retrieval_ids"], Text).label("retrieval_text"),
            cast(Trace.data["citations"], Text).label("citations_text"),
            cast(Trace.data["tool_calls"], Text).label("tools_text"), _KINDS, _LABEL)


def incident_rows(session: Session, incident_id: int) -> Iterator[TraceRow]:
    """The incident's failing traces and the ones a human labelled, in time order."""
    stmt = (select(*_COLUMNS).where(Trace.incident_id == incident_id, or_(Trace.failed, _LABEL != "{}"))
            .order_by(Trace.timestamp, Trace.request_id).execution_options(yield_per=FETCH_BATCH))
    for row in session.connection().execute(stmt):
        yield TraceRow(
            request_id=row.request_id, timestamp=as_utc(row.timestamp) or row.timestamp,
            question=question_text(row.input), output=_text(row.output), expected=_text(row.expected),
            bundle_version=row.bundle_version, kinds=_kinds(row.kinds_text), label=_label(row.label_text),
            retrieval_ids=_strings(row.retrieval_text), citations=_strings(row.citations_text),
            tools=[t.get("name") for t in _list(row.tools_text) if isinstance(t, dict) and isinstance(t.get("name"), str)],
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list(text: str | None) -> list[Any]:
    if not text or text == "null":
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _strings(text: str | None) -> list[str]:
    return [v for v in _list(text) if isinstance(v, str)]


def _kinds(text: str | None) -> tuple[str, ...]:
    return tuple(k for k in _list(text) if isinstance(k, str))


def _label(text: str | None) -> Label | None:
    if not text or text in ("{}", "null"):
        return None
    try:
        label = Label.model_validate_json(text)
    except ValidationError as exc:
        log.warning("a trace label was ignored: %s", exc)
        return None
    return label if label != Label() else None


# --- storing ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SuiteChange:
    service: str
    new: int
    updated: int
    case_ids: list[str]

    @property
    def total(self) -> int:
        return self.new + self.updated


def collect_incident(session: Session, incident_id: int, *, redactor: Redactor | None = None,
                     rules: ClusterRules = ClusterRules()) -> SuiteChange:
    """Add the incident's failures to its service's suite; running it again changes nothing."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        from bot.errors import NotFound
        raise NotFound(f"There is no incident #{incident_id}.")
    service = incident.service or "unknown"
    clusterer = Clusterer(rules)
    for row in incident_rows(session, incident_id):
        clusterer.add(row)
    return store_clusters(session, service, incident_id, clusterer.clusters.values(), redactor=redactor or Redactor())


def store_clusters(session: Session, service: str, incident_id: int | None, clusters: Iterable[Cluster], *,
                   redactor: Redactor) -> SuiteChange:
    by_id = {case_id_of(service, c.failure_type, c.signature): c for c in clusters}
    existing: dict[str, EvalCase] = {}
    ids = sorted(by_id)
    for start in range(0, len(ids), 500):
        stmt = select(EvalCase).where(EvalCase.service == service, EvalCase.case_id.in_(ids[start:start + 500]))
        existing.update({case.case_id: case for case in session.execute(stmt).scalars()})
    links: dict[int, EvalCaseIncident] = {}
    if incident_id is not None and existing:
        stmt = select(EvalCaseIncident).where(EvalCaseIncident.incident_id == incident_id)
        links = {link.eval_case_id: link for link in session.execute(stmt).scalars()}
    new = updated = 0
    for case_id in ids:
        cluster = by_id[case_id]
        data, labelled = case_data(cluster, redactor)
        case = existing.get(case_id)
        if case is None:
            case = EvalCase(service=service, case_id=case_id, failure_type=cluster.failure_type,
                            signature=cluster.signature, question=redactor.redact(cluster.first.question),
                            labelled=labelled, trace_count=len(cluster.request_ids),
                            request_ids=list(cluster.request_ids), data=data,
                            first_seen=cluster.first_seen, last_seen=cluster.last_seen)
            session.add(case)
            session.flush()
            added = "new"
            new += 1
        else:
            seen = set(case.request_ids)
            fresh = [r for r in cluster.request_ids if r not in seen]
            link = links.get(case.id or 0)
            added = link.added if link is not None else "updated"
            if added == "new":
                new += 1
            else:
                updated += 1
            if fresh:
                case.request_ids = [*case.request_ids, *fresh]
                case.trace_count = len(case.request_ids)
            case.last_seen = max(as_utc(case.last_seen) or cluster.last_seen, cluster.last_seen)
            if labelled and (not case.labelled or data != case.data):
                # A human's label upgrades the case; an unlabelled sighting never downgrades one.
                case.labelled, case.data = True, {**case.data, **data}
            elif not case.labelled and data.get("expected") and not case.data.get("expected"):
                case.data = {**case.data, **data}
        if incident_id is not None:
            link = links.get(case.id or 0)
            if link is None:
                session.add(EvalCaseIncident(eval_case_id=case.id, incident_id=incident_id, added=added,
                                             trace_count=len(cluster.request_ids)))
            else:
                link.trace_count = len(cluster.request_ids)
    session.flush()
    return SuiteChange(service, new, updated, ids)


# --- reading the suite ------------------------------------------------------------------------

_RANK = {kind: rank for rank, kind in enumerate(FAILURE_TYPES)}


@dataclass(frozen=True)
class SuiteCase:
    """A stored case with the incidents it came from, as the export and the gate read it."""

    case_id: str
    service: str
    failure_type: str
    question: str
    labelled: bool
    trace_count: int
    request_ids: list[str]
    incidents: list[int]
    data: Mapping[str, Any]


def suite_cases(session: Session, service: str, *, incident_id: int | None = None) -> list[SuiteCase]:
    """The service's cases in a stable order (failure type, then case id); only one incident's when given."""
    incidents: dict[int, list[int]] = {}
    link_rows = session.execute(
        select(EvalCaseIncident.eval_case_id, EvalCaseIncident.incident_id)
        .join(EvalCase, EvalCase.id == EvalCaseIncident.eval_case_id).where(EvalCase.service == service)
        .order_by(EvalCaseIncident.incident_id))
    for case_pk, incident in link_rows:
        incidents.setdefault(case_pk, []).append(incident)
    cases = session.execute(select(EvalCase).where(EvalCase.service == service)).scalars()
    found = [SuiteCase(c.case_id, c.service, c.failure_type, c.question, c.labelled, c.trace_count,
                       list(c.request_ids), incidents.get(c.id or 0, []), dict(c.data))
             for c in cases if incident_id is None or incident_id in incidents.get(c.id or 0, [])]
    return sorted(found, key=lambda c: (_RANK.get(c.failure_type, len(_RANK)), c.case_id))


def incident_case_counts(session: Session, incident_id: int) -> dict[str, int]:
    """How many cases this incident added (``new``) and fed (``updated``)."""
    rows = session.execute(select(EvalCaseIncident.added).where(EvalCaseIncident.incident_id == incident_id))
    counts = {"new": 0, "updated": 0}
    for (added,) in rows:
        counts[added] = counts.get(added, 0) + 1
    return counts
