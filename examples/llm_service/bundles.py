"""Release bundles: everything that decides how an answer comes out, versioned together.

A bundle pins the prompt template, the model route, the retriever snapshot, the tool contracts,
the guardrail policy, the eval suite it passed and how it is rolled out. The story in
SCENARIO.md needs three: v41 (known-good), v42 (the bad release) and v43 (the fix); v44 is a
later bad release that says v42's wrong refund rule in other words (an eval that only looks for
v42's exact sentence lets it through).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

ROUTES = ("primary-70b", "safe-fallback-8b")
TOOLS = ("web_search", "order_lookup")


@dataclass(frozen=True)
class Bundle:
    version: str
    prompt_version: str
    model_route: str
    retriever_snapshot: str
    tool_contracts: str
    guardrail_policy: str
    eval_suite: str
    rollout_policy: str
    released_at: str
    known_good: bool
    prompt_template: str

    def components(self) -> dict[str, str]:
        data = asdict(self)
        for private in ("version", "released_at", "known_good", "prompt_template"):
            data.pop(private)
        return data

    def describe(self) -> dict[str, object]:
        return {
            "version": self.version,
            "released_at": self.released_at,
            "known_good": self.known_good,
            "components": self.components(),
        }


_CAREFUL_PROMPT = (
    "You are the support assistant. Answer only from the policy documents below; "
    "if they do not say, say you do not know.\n\nDocuments:\n{documents}\n\nQuestion: {question}"
)
# v42's prompt tells the model to trust web results first; that is how the refund answer went wrong.
_EAGER_PROMPT = (
    "You are the support assistant. Prefer the freshest information from web search over the "
    "policy documents.\n\nDocuments:\n{documents}\n\nQuestion: {question}"
)

BUNDLES: dict[str, Bundle] = {
    "v41": Bundle(
        version="v41",
        prompt_version="answer-v41",
        model_route="primary-70b",
        retriever_snapshot="policy-2026-02-01",
        tool_contracts="incident-tools-v7",
        guardrail_policy="v3",
        eval_suite="support-evals-v41 (passed)",
        rollout_policy="canary-10pct-then-all",
        released_at="2026-02-02T10:00:00Z",
        known_good=True,
        prompt_template=_CAREFUL_PROMPT,
    ),
    "v42": Bundle(
        version="v42",
        prompt_version="answer-v42",
        model_route="primary-70b",
        retriever_snapshot="policy-2026-03-14",
        tool_contracts="incident-tools-v7",
        guardrail_policy="v3",
        eval_suite="support-evals-v41 (skipped)",
        rollout_policy="all-at-once",
        released_at="2026-03-14T01:50:00Z",
        known_good=False,
        prompt_template=_EAGER_PROMPT,
    ),
    "v43": Bundle(
        version="v43",
        prompt_version="answer-v43",
        model_route="primary-70b",
        retriever_snapshot="policy-2026-03-14",
        tool_contracts="incident-tools-v7",
        guardrail_policy="v3",
        eval_suite="support-evals-v43 (passed)",
        rollout_policy="canary-10pct-then-all",
        released_at="2026-03-15T09:00:00Z",
        known_good=False,
        prompt_template=_CAREFUL_PROMPT,
    ),
    "v44": Bundle(
        version="v44",
        prompt_version="answer-v44",
        model_route="primary-70b",
        retriever_snapshot="policy-2026-03-14",
        tool_contracts="incident-tools-v7",
        guardrail_policy="v3",
        eval_suite="support-evals-v41 (skipped)",
        rollout_policy="all-at-once",
        released_at="2026-03-16T09:00:00Z",
        known_good=False,
        prompt_template=_EAGER_PROMPT,
    ),
}

DEFAULT_BUNDLE = "v41"
