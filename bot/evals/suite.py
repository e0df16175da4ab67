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

import functools
import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import JSON, Text, bindparam, cast, insert, or_, select, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlmodel import Session, col

from bot import redact
from bot.clock import as_utc
from bot.evals.cases import INPUT_MISSING_ATTRIBUTE, Label, case_kinds, no_input_reason
from bot.redact import Redactor
from bot.store.models import EvalCase, EvalCaseIncident, Trace
from bot.traces.rules import FAILURE_TYPES, question_text

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
    """What the suite needs of one failing (or labelled) trace. The JSON lists stay text until a
    case is built from the row: most rows only add their request id to a cluster."""

    request_id: str
    timestamp: datetime
    question: str
    output: str | None
    expected: str | None
    bundle_version: str | None
    kinds: tuple[str, ...]
    label: Label | None
    retrieval_text: str | None = None
    tools_text: str | None = None
    input_missing: str | None = None  # the reason stored with a trace that has no input, if any

    @property
    def retrieval_ids(self) -> list[str]:
        return _strings(self.retrieval_text)

    @property
    def tools(self) -> list[str]:
        return [t["name"] for t in _list(self.tools_text) if isinstance(t, dict) and isinstance(t.get("name"), str)]


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
        self._cache_limit = 20_000  # bounded: an incident of mostly distinct questions must not keep them all

    def add(self, row: TraceRow) -> None:
        sig = self._signatures.get(row.question)
        if sig is None:
            sig = signature(row.question, self.rules)
            if len(self._signatures) < self._cache_limit:
                self._signatures[row.question] = sig
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

_NUMBER_FACT = re.compile(r"(?<![\w.])\d[\d.,:/-]*\d|(?<![\w.])\d")
# Words that belong to a figure: "30 days" is the fact, "30" alone would also match "130".
_UNITS = frozenset("""
second seconds minute minutes hour hours day days week weeks month months year years
percent % countries items pieces euros eur dollars usd gb mb kg km
""".split())


def key_facts(expected: str) -> list[str]:
    """The facts of an expected answer a paraphrase must still state: its figures, with their unit
    when one follows ("30 days", "2026-03-16"); with no figures, the whole answer."""
    facts = []
    for match in _NUMBER_FACT.finditer(expected):
        figure = match.group(0)
        after = expected[match.end():]
        unit = re.match(r"\s*(%|[A-Za-z]+)", after)
        if unit and unit.group(1).lower() in _UNITS:
            figure += after[: unit.end()]  # as written: "5 %" stays "5 %"
        facts.append(figure)
    unique = list(dict.fromkeys(facts))
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
    missing = no_input_reason(first.question, first.input_missing, redactor)
    if missing:
        data["input_missing"] = missing  # shown instead of an empty question (`suite_files`)
    return data, labelled


# --- reading traces ---------------------------------------------------------------------------

_LABEL = cast(Trace.label, Text).label("label_text")
_KINDS = cast(Trace.failure_types, Text).label("kinds_text")
_COLUMNS = (col(Trace.request_id), col(Trace.timestamp), col(Trace.bundle_version),
            col(Trace.data)["input"].label("input"), col(Trace.data)["output"].as_string().label("output"),
            col(Trace.data)["expected"].as_string().label("expected"),
            cast(col(Trace.data)["retrieval_ids"], Text).label("retrieval_text"),
            cast(col(Trace.data)["tool_calls"], Text).label("tools_text"), _KINDS, _LABEL,
            col(Trace.data)[("attributes", INPUT_MISSING_ATTRIBUTE)].as_string().label("input_missing"))


def incident_rows(session: Session, incident_id: int) -> Iterator[TraceRow]:
    """The incident's failing traces and the ones a human labelled, in time order."""
    stmt = (select(*_COLUMNS).where(col(Trace.incident_id) == incident_id, or_(col(Trace.failed), _LABEL != "{}"))
            .order_by(col(Trace.timestamp), col(Trace.request_id)).execution_options(yield_per=FETCH_BATCH))
    for row in session.connection().execute(stmt):
        yield TraceRow(
            request_id=row.request_id, timestamp=as_utc(row.timestamp) or row.timestamp,
            question=question_text(row.input), output=_text(row.output), expected=_text(row.expected),
            bundle_version=row.bundle_version, kinds=_kinds(row.kinds_text), label=_label(row.label_text),
            retrieval_text=row.retrieval_text, tools_text=row.tools_text, input_missing=_text(row.input_missing),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list(text: str | None) -> list[Any]:
    if not text or text == "null":
        return []
    try:
        value = orjson.loads(text)  # faster than json.loads: an incident's worth of rows goes through here
    except orjson.JSONDecodeError:
        return []
    return value if isinstance(value, list) else []


def _strings(text: str | None) -> list[str]:
    return [v for v in _list(text) if isinstance(v, str)]


@functools.lru_cache(maxsize=256)
def _kinds(text: str | None) -> tuple[str, ...]:  # a handful of distinct lists over many rows: parse each once
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
    from bot.incidents import service as incidents
    incident = incidents.get(session, incident_id)  # NotFound, worded as everywhere else
    service = incident.service or "unknown"
    clusterer = Clusterer(rules)
    for row in incident_rows(session, incident_id):
        clusterer.add(row)
    return store_clusters(session, service, incident_id, clusterer.clusters.values(),
                          redactor=redactor or redact.DEFAULT)


_CHUNK = 2_000
# The eval_case table with its JSON columns as text: new cases are serialised once with orjson
# instead of per row by SQLAlchemy's JSON type (a third of the time of a 70,000-case insert).
_CASE_TABLE = sa_table("eval_case", *(sa_column(c.name, Text if c.name in ("request_ids", "data") else c.type)
                                      for c in EvalCase.__table__.c if c.name != "id"))  # type: ignore[attr-defined]


def _insert_cases(dialect: str) -> Any:
    if dialect != "postgresql":
        return insert(_CASE_TABLE)  # SQLite stores JSON as text
    # PostgreSQL will not take text for a json column without a cast (SQLite's CAST AS JSON would
    # turn it into a number, hence only here).
    return insert(_CASE_TABLE).values(request_ids=cast(bindparam("request_ids", type_=Text), JSON),
                                      data=cast(bindparam("data", type_=Text), JSON))


def store_clusters(session: Session, service: str, incident_id: int | None, clusters: Iterable[Cluster], *,
                   redactor: Redactor) -> SuiteChange:
    """Insert the new cases and update the known ones, in bulk and in chunks: an incident can bring
    tens of thousands, and collecting it again must not load every stored case as an object."""
    by_id = {case_id_of(service, c.failure_type, c.signature): c for c in clusters}
    ids = sorted(by_id)
    links: dict[int, tuple[str, int]] = {}
    if incident_id is not None:
        link_stmt = select(col(EvalCaseIncident.eval_case_id), col(EvalCaseIncident.added),
                           col(EvalCaseIncident.trace_count)).where(col(EvalCaseIncident.incident_id) == incident_id)
        links = {pk: (added, count) for pk, added, count in session.execute(link_stmt)}
    change = _Change()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        known_stmt = select(col(EvalCase.id), col(EvalCase.case_id), col(EvalCase.labelled),
                            cast(col(EvalCase.request_ids), Text), cast(col(EvalCase.data), Text),
                            col(EvalCase.last_seen)).where(col(EvalCase.service) == service,
                                                           col(EvalCase.case_id).in_(chunk))
        known = {row[1]: row for row in session.execute(known_stmt)}
        fresh_rows = []
        for case_id in chunk:
            cluster = by_id[case_id]
            row = known.get(case_id)
            if row is None:
                data, labelled = case_data(cluster, redactor)
                fresh_rows.append({"service": service, "case_id": case_id, "failure_type": cluster.failure_type,
                                   "signature": cluster.signature, "question": redactor.redact(cluster.first.question),
                                   "labelled": labelled, "trace_count": len(cluster.request_ids),
                                   "request_ids": orjson.dumps(cluster.request_ids).decode(),
                                   "data": orjson.dumps(data).decode(),
                                   "first_seen": cluster.first_seen, "last_seen": cluster.last_seen})
            else:
                change.existing(row, cluster, links.get(row[0]), incident_id, redactor)
        change.new += len(fresh_rows)
        if fresh_rows:
            connection = session.connection()
            connection.execute(_insert_cases(connection.dialect.name), fresh_rows)
            if incident_id is not None:
                pk_stmt = select(col(EvalCase.id), col(EvalCase.case_id)).where(
                    col(EvalCase.service) == service, col(EvalCase.case_id).in_([r["case_id"] for r in fresh_rows]))
                pks = {case_id: pk for pk, case_id in session.execute(pk_stmt)}
                change.links += [{"eval_case_id": pks[r["case_id"]], "incident_id": incident_id, "added": "new",
                                  "trace_count": r["trace_count"]} for r in fresh_rows]
        change.flush(session)
    return SuiteChange(service, change.new, change.updated, ids)


_UPDATE_CASE = (update(EvalCase.__table__)  # type: ignore[attr-defined]
                .where(EvalCase.__table__.c.id == bindparam("pk"))  # type: ignore[attr-defined]
                .values(request_ids=bindparam("ids"), trace_count=bindparam("count"), labelled=bindparam("lab"),
                        data=bindparam("dat"), last_seen=bindparam("seen")))
_UPDATE_LINK = (update(EvalCaseIncident.__table__)  # type: ignore[attr-defined]
                .where(EvalCaseIncident.__table__.c.eval_case_id == bindparam("pk"),  # type: ignore[attr-defined]
                       EvalCaseIncident.__table__.c.incident_id == bindparam("inc"))  # type: ignore[attr-defined]
                .values(trace_count=bindparam("count")))


@dataclass
class _Change:
    """What `store_clusters` writes for cases already in the suite, batched per chunk."""

    new: int = 0
    updated: int = 0
    cases: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    link_counts: list[dict[str, Any]] = field(default_factory=list)

    def existing(self, row: Any, cluster: Cluster, link: tuple[str, int] | None, incident_id: int | None,
                 redactor: Redactor) -> None:
        pk, _, labelled_before, ids_text, data_text, last_seen = row
        if link is not None and link[0] == "new":
            self.new += 1  # this incident created it on an earlier collection
        else:
            self.updated += 1
        request_ids = _list(ids_text)
        seen = set(request_ids)
        fresh = [r for r in cluster.request_ids if r not in seen]
        before = orjson.loads(data_text) if data_text else {}
        data, labelled = before, bool(labelled_before)
        if cluster.label is not None:
            found, human = case_data(cluster, redactor)
            if human and (not labelled or any(before.get(k) != v for k, v in found.items())):
                # A human's label upgrades the case; an unlabelled sighting never downgrades one.
                data, labelled = {**before, **found}, True
        newest = max(as_utc(last_seen) or cluster.last_seen, cluster.last_seen)
        if fresh or data is not before or newest != as_utc(last_seen):
            ids = request_ids + fresh
            self.cases.append({"pk": pk, "ids": ids, "count": len(ids), "lab": labelled, "dat": data, "seen": newest})
        if incident_id is None:
            return
        if link is None:
            self.links.append({"eval_case_id": pk, "incident_id": incident_id, "added": "updated",
                               "trace_count": len(cluster.request_ids)})
        elif link[1] != len(cluster.request_ids):
            self.link_counts.append({"pk": pk, "inc": incident_id, "count": len(cluster.request_ids)})

    def flush(self, session: Session) -> None:
        connection = session.connection()
        if self.cases:
            connection.execute(_UPDATE_CASE, self.cases)
        if self.links:
            connection.execute(insert(EvalCaseIncident), self.links)
        if self.link_counts:
            connection.execute(_UPDATE_LINK, self.link_counts)
        self.cases, self.links, self.link_counts = [], [], []


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
        select(col(EvalCaseIncident.eval_case_id), col(EvalCaseIncident.incident_id))
        .join(EvalCase, col(EvalCase.id) == col(EvalCaseIncident.eval_case_id)).where(col(EvalCase.service) == service)
        .order_by(col(EvalCaseIncident.incident_id)))
    for case_pk, incident in link_rows:
        incidents.setdefault(case_pk, []).append(incident)
    cases = session.execute(select(EvalCase).where(col(EvalCase.service) == service)).scalars()
    found = [SuiteCase(c.case_id, c.service, c.failure_type, c.question, c.labelled, c.trace_count,
                       list(c.request_ids), incidents.get(c.id or 0, []), dict(c.data))
             for c in cases if incident_id is None or incident_id in incidents.get(c.id or 0, [])]
    return sorted(found, key=lambda c: (_RANK.get(c.failure_type, len(_RANK)), c.case_id))


def incident_case_counts(session: Session, incident_id: int) -> dict[str, int]:
    """How many cases this incident added (``new``) and fed (``updated``)."""
    rows = session.execute(select(col(EvalCaseIncident.added)).where(col(EvalCaseIncident.incident_id) == incident_id))
    counts = {"new": 0, "updated": 0}
    for (added,) in rows:
        counts[added] = counts.get(added, 0) + 1
    return counts
