"""What a suite case asserts in promptfoo: the failure, not the sentence.

promptfoo renders test vars and assertion values as Nunjucks templates, so a question or an
answer containing ``{{``, ``{%`` or ``{#`` would be rendered (and usually error) instead of being
sent as written. Everything a case carries therefore reaches promptfoo with ``{`` written as the
JavaScript/JSON escape ``\\u007b``: Nunjucks sees no tag, and the request body (JSON) and the
``javascript`` assertions (JS string literals) decode it back to exactly the original text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bot.evals.cases import _TOOL_ERROR_JS, _distinctive_sentence
from bot.evals.suite import SuiteCase

# Failure types whose cases hold whatever the gate compares; "unlabelled" hallucinations are
# never must-pass (see `must_pass`).
JUDGED_BY_HUMANS = ("hallucination", "negative_feedback")


def inert_literal(value: Any) -> str:
    """``value`` as a JSON (and JavaScript) literal no template engine will touch: braces inside
    strings are escaped; an object's own braces stay (``{`` is then followed by ``"`` or ``}``,
    never by ``{``, ``%`` or ``#``)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True).replace("{", "\\u007b").replace("}", "\\u007d")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{inert_literal(str(k))}: {inert_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(inert_literal(v) for v in value) + "]"
    return json.dumps(value)


@dataclass(frozen=True)
class AssertContext:
    """What the assertions need beyond the case: the SLO's thresholds and the response schema."""

    latency_ms: float | None = None
    cost_budget: float | None = None
    response_schema: dict[str, Any] | None = None
    tool_contracts: dict[str, Any] = field(default_factory=dict)


def must_pass(case: SuiteCase) -> bool:
    """A case the gate insists on whatever the last known-good bundle did: one a human labelled."""
    return case.labelled


def _js(*statements: str) -> dict[str, Any]:
    # promptfoo takes a one-line value as an expression; statements need one line each.
    return {"type": "javascript", "value": "\n".join(statements)}


def facts_and_claims(facts: list[str], claims: list[str]) -> dict[str, Any]:
    """Every key fact present and every unsupported claim absent, case-insensitive, with a reason that names them."""
    return _js(
        "const o = String(output).toLowerCase();",
        f"const facts = {inert_literal([f.lower() for f in facts])};",
        f"const claims = {inert_literal([c.lower() for c in claims])};",
        "const missing = facts.filter((f) => !o.includes(f));",
        "const present = claims.filter((c) => o.includes(c));",
        "const bad = missing.map((f) => 'missing fact: ' + f).concat(present.map((c) => 'unsupported claim: ' + c));",
        "return ({pass: bad.length === 0, score: bad.length === 0 ? 1 : 0,"
        " reason: bad.length === 0 ? 'facts present, no unsupported claim' : bad.join('; ')});")


def not_containing(text: str) -> dict[str, Any]:
    return _js(
        f"const bad = {inert_literal(text.lower())};",
        "const hit = String(output).toLowerCase().includes(bad);",
        "return ({pass: !hit, score: hit ? 0 : 1, reason: hit ? 'output repeats the failing answer: ' + bad : 'ok'});")


def cites_one_of(doc_ids: list[str]) -> dict[str, Any]:
    return _js(
        f"const ids = {inert_literal(doc_ids)};",
        "const hit = ids.some((d) => String(output).includes(d));",
        "return ({pass: hit, score: hit ? 1 : 0, reason: hit ? 'cites a retrieved document' :"
        " 'cites none of the retrieved documents: ' + ids.join(', ')});")


def well_formed_tool_calls(contracts: dict[str, Any]) -> dict[str, Any]:
    """Every tool call in the response names a tool of the contract, did not fail, and carries the
    arguments the contract requires (``{"tool": {"required": ["arg", …]}}``); with no contract, only
    "did not fail". The calls come from the response JSON (the provider keeps it as metadata)."""
    # Braces followed by a space or a new line are plain text to Nunjucks; only {{ {% {# are tags.
    return _js(
        f"const contracts = {inert_literal(contracts)};",
        "const meta = (context && context.providerResponse && context.providerResponse.metadata) || Object();",
        "const calls = Array.isArray(meta.tool_calls) ? meta.tool_calls : [];",
        "const known = Object.keys(contracts);",
        "const bad = [];",
        "for (const c of calls) { ",
        "  const name = String(c && c.name);",
        "  if (known.length && !known.includes(name)) bad.push('unknown tool ' + name);",
        "  if (c && (c.ok === false || c.error)) bad.push(name + ' failed: ' + (c.error || 'not ok'));",
        "  const args = (c && c.arguments) || Object();",
        "  for (const r of ((contracts[name] || Object()).required || []))"
        " if (!(r in args)) bad.push(name + ' lacks ' + r);",
        "}",
        "return ({pass: bad.length === 0, score: bad.length === 0 ? 1 : 0,"
        " reason: bad.length === 0 ? 'tool calls well-formed' : bad.join('; ')});")


def case_asserts(case: SuiteCase, ctx: AssertContext) -> list[dict[str, Any]]:
    """The promptfoo assertions of ``case``; never empty (a case with nothing to check asserts an answer)."""
    data, kind = case.data, case.failure_type
    asserts: list[dict[str, Any]] = []
    if kind in JUDGED_BY_HUMANS:
        facts, claims = list(data.get("facts") or []), list(data.get("claims") or [])
        if case.labelled and (facts or claims):
            asserts.append(facts_and_claims(facts, claims))
        else:
            sentence = _distinctive_sentence(str(data.get("output") or ""))
            if sentence:
                asserts.append(not_containing(sentence))
    elif kind == "schema_invalid":
        asserts.append({"type": "is-json",
                        "value": ctx.response_schema} if ctx.response_schema else {"type": "is-json"})
    elif kind == "tool_error":
        asserts.append({"type": "javascript", "value": _TOOL_ERROR_JS})
        asserts.append(well_formed_tool_calls(ctx.tool_contracts))
    elif kind == "missing_provenance":
        if data.get("retrieval_ids"):
            asserts.append(cites_one_of(list(data["retrieval_ids"])))
    elif kind == "latency" and ctx.latency_ms:
        asserts.append({"type": "latency", "threshold": _number(ctx.latency_ms)})
    elif kind == "cost" and ctx.cost_budget is not None:
        asserts.append({"type": "cost", "threshold": ctx.cost_budget})
    return asserts or [{"type": "javascript", "value": "String(output).length > 0"}]


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
