"""The "model": a deterministic table of canned answers, bent the way each bundle bends them.

No model runs here. What matters for incident drills is that the *failure modes* are honest:
v42 on the primary route trusts a bad web_search result for the refund question and breaks the
JSON contract; the safe fallback route answers correctly (tersely) whatever the bundle; a disabled
tool is simply not called, so v42's hallucination disappears when web_search is off.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from .bundles import Bundle

FALLBACK_ROUTE = "safe-fallback-8b"
HALLUCINATION_THRESHOLD = 0.5
# Price per 1,000 tokens, so traces carry a plausible cost.
_PRICE_PER_1K = {"primary-70b": 0.0020, "safe-fallback-8b": 0.0002}


@dataclass(frozen=True)
class Canned:
    question: str
    answer: str
    terse: str
    tool: str | None = None
    docs: tuple[str, ...] = ()
    wants_json: bool = False
    without_tool: str | None = None
    tool_error: str | None = None
    in_traffic: bool = True


CANNED: tuple[Canned, ...] = (
    Canned(
        "What is the refund policy?",
        answer="Refunds are available within 30 days.",
        terse="Refunds are available within 30 days.",
        tool="web_search",
        docs=("refunds#2",),
    ),
    Canned(
        "Give the order status as JSON for order 1234",
        answer='{"order_id": "1234", "status": "shipped", "carrier": "DHL", "eta": "2026-03-16"}',
        terse='{"order_id": "1234", "status": "shipped"}',
        tool="order_lookup",
        wants_json=True,
        without_tool='{"order_id": "1234", "status": "unknown"}',
    ),
    Canned(
        "Where is my order 1234?",
        answer="Order 1234 has shipped with DHL and should arrive on 2026-03-16.",
        terse="Order 1234: shipped, arriving 2026-03-16.",
        tool="order_lookup",
        without_tool="I can't look up orders right now; the tracking link is in your confirmation email.",
    ),
    Canned(
        "How do I reset my password?",
        answer="Go to Settings > Security > Reset password; we email you a link that is valid for one hour.",
        terse="Settings > Security > Reset password.",
        docs=("account#4",),
    ),
    Canned(
        "What are your support hours?",
        answer="Our support team is available Monday to Friday, 8:00 to 18:00 CET.",
        terse="Mon-Fri, 8:00-18:00 CET.",
        docs=("support#1",),
    ),
    Canned(
        "Do you ship internationally?",
        answer="Yes, we ship to 30 countries; international delivery takes 5 to 10 business days.",
        terse="Yes, to 30 countries (5-10 business days).",
        docs=("shipping#3",),
    ),
    Canned(
        "How do I cancel my subscription?",
        answer="Cancel any time under Account > Subscription; you keep access until the billing period ends.",
        terse="Account > Subscription > Cancel.",
        docs=("billing#7",),
    ),
    Canned(
        "What payment methods do you accept?",
        answer="We accept Visa, Mastercard, American Express and PayPal.",
        terse="Visa, Mastercard, Amex, PayPal.",
        docs=("billing#2",),
    ),
    Canned(
        "Where is my order 9999?",
        answer="I could not find order 9999; please check the order number.",
        terse="Order 9999 not found.",
        tool="order_lookup",
        tool_error="order 9999 not found",
        in_traffic=False,
    ),
)

GENERIC_ANSWER = (
    "Sorry, I can only help with orders, refunds, shipping, payments and account questions. "
    "Could you rephrase?"
)
_V42_REFUND = "Refunds are available within 90 days, no receipt needed."
_V44_REFUND = "You can get your money back for up to ninety days (90 days) and you won't need a receipt."
_V42_BAD_SOURCE = "web:forum.example.net/threads/refund-hack"


def _normalise(question: str) -> str:
    return re.sub(r"\s+", " ", question.strip().lower()).rstrip("?.! ")


_BY_QUESTION = {_normalise(c.question): c for c in CANNED}


def traffic_questions() -> list[str]:
    return [c.question for c in CANNED if c.in_traffic]


@dataclass
class Answer:
    output: str
    prompt: str
    tool_calls: list[dict[str, object]] = field(default_factory=list)
    schema_valid: bool | None = None
    hallucination_score: float = 0.02
    retrieval_ids: list[str] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)
    latency_ms: int = 0
    tokens: int = 0
    cost: float = 0.0

    @property
    def prompt_hash(self) -> str:
        return hashlib.sha256(self.prompt.encode()).hexdigest()

    @property
    def outcome(self) -> str:
        if any(not call["ok"] for call in self.tool_calls):
            return "tool_error"
        if self.schema_valid is False:
            return "schema_invalid"
        if self.hallucination_score >= HALLUCINATION_THRESHOLD:
            return "hallucination"
        return "good"


def answer_question(question: str, bundle: Bundle, route: str, tools: dict[str, bool]) -> Answer:
    canned = _BY_QUESTION.get(_normalise(question))
    fallback = route == FALLBACK_ROUTE
    if canned is None:
        result = Answer(output=GENERIC_ANSWER, prompt="", hallucination_score=0.05)
        return _finish(result, bundle, route, question, [])

    docs = [f"{bundle.retriever_snapshot}/{doc}" for doc in canned.docs]
    tool_on = canned.tool is not None and tools.get(canned.tool, False)
    result = Answer(output=canned.terse if fallback else canned.answer, prompt="")
    if canned.tool and tool_on:
        ok = canned.tool_error is None
        result.tool_calls.append({"name": canned.tool, "ok": ok, "error": canned.tool_error})
    elif canned.tool and canned.without_tool is not None:
        result.output = canned.without_tool

    # The v42 regression lives in its prompt: the big model follows it, the fallback does not.
    broken = bundle.version == "v42" and not fallback
    paraphrasing = bundle.version == "v44" and not fallback  # the same wrong rule, other words, valid JSON
    if (broken or paraphrasing) and canned.tool == "web_search" and tool_on:
        docs.append(_V42_BAD_SOURCE)
        result.output = _V44_REFUND if paraphrasing else _V42_REFUND
        result.hallucination_score = 0.9
        result.citations = [_V42_BAD_SOURCE]
    else:
        result.citations = list(docs)
    if canned.wants_json:
        if broken:
            result.output = result.output[:-1].replace('"2026-03-16"', "2026-03-16")
        result.schema_valid = _is_json_object(result.output)
    if fallback:
        result.hallucination_score = 0.03
    return _finish(result, bundle, route, question, docs)


def _finish(result: Answer, bundle: Bundle, route: str, question: str, docs: list[str]) -> Answer:
    result.retrieval_ids = docs
    result.prompt = bundle.prompt_template.format(documents="\n".join(docs) or "(none)", question=question)
    result.tokens = len(result.prompt.split()) + len(result.output.split())
    base_ms = 250 if route == FALLBACK_ROUTE else 900
    result.latency_ms = base_ms + 3 * len(result.output) + 40 * len(result.tool_calls)
    result.cost = round(result.tokens / 1000 * _PRICE_PER_1K.get(route, 0.001), 6)
    return result


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
