"""Where a service's eval traffic goes: a URL template per service, rendered per bundle.

``{{bundle}}`` may appear in the URL (path or query) and in header values; warroom substitutes
it before promptfoo sees the config. Every eval request also carries ``X-Warroom-Eval: <run>``
so the service can answer with that bundle and keep the request out of its production traces
and SLIs (the example service does both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.errors import ConfigError

EVAL_HEADER = "X-Warroom-Eval"
_BUNDLE = re.compile(r"\{\{\s*bundle\s*\}\}")
_SAFE_VERSION = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class EvalTargetError(ConfigError, ValueError):
    """No target for the service, or a bundle version that cannot go into a URL."""


@dataclass(frozen=True)
class EvalTarget:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def render(self, bundle: str) -> tuple[str, dict[str, str]]:
        if not _SAFE_VERSION.match(bundle):
            raise EvalTargetError(f"bundle version {bundle!r} may only use letters, digits, '.', '_' and '-'")
        headers = {k: _BUNDLE.sub(bundle, v) for k, v in self.headers.items()}
        return _BUNDLE.sub(bundle, self.url), headers


def parse_targets(raw: str | None) -> dict[str, EvalTarget]:
    """``WARROOM_EVAL_TARGETS``: JSON ``{"service": "url template"}`` or ``{"service": {"url": …, "headers": {…}}}``."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise EvalTargetError(f"WARROOM_EVAL_TARGETS is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EvalTargetError("WARROOM_EVAL_TARGETS must be a JSON object of service → URL template")
    targets = {}
    for service, value in data.items():
        if isinstance(value, str):
            targets[service] = EvalTarget(value)
        elif isinstance(value, dict) and isinstance(value.get("url"), str):
            headers = value.get("headers") or {}
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                raise EvalTargetError(f"WARROOM_EVAL_TARGETS[{service!r}].headers must map names to strings")
            targets[service] = EvalTarget(value["url"], dict(headers))
        else:
            raise EvalTargetError(f"WARROOM_EVAL_TARGETS[{service!r}] must be a URL template or {{\"url\": …}}")
    return targets


def provider(target: EvalTarget, service: str, bundle: str, *, run_tag: str) -> dict[str, Any]:
    """A promptfoo http provider for ``service:bundle``. The body is a template string into which
    the case's question goes as an inert JSON literal (see `bot.evals.asserts`)."""
    url, headers = target.render(bundle)
    return {
        "id": url,
        "label": f"{service}:{bundle}",
        "config": {
            "method": "POST",
            "headers": {"Content-Type": "application/json", **headers, EVAL_HEADER: run_tag},
            "body": '{"question": {{question_json}}}',
            "transformResponse": "({output: json.output, cost: json.cost, metadata: json})",
        },
    }
