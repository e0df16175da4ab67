"""Server-rendered HTML: the jinja2 environment (autoescape on) and the headers every page carries.

Alert labels, annotations and timeline text come from outside and are shown as text, never markup;
a Content-Security-Policy without scripts backs that up.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from bot.clock import as_utc, iso
from bot.incidents import metrics
from bot.postmortem.assemble import plain_slack_text
from bot.redact import Redactor

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages behind sign-in stay out of shared caches
}


def _when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    value = as_utc(value)
    return value.strftime(fmt) if value else "–"


def _web_url(url: Any) -> str | None:
    # Autoescape stops markup, not a javascript: link; only plain web addresses become hrefs.
    return url if isinstance(url, str) and urlsplit(url).scheme in ("http", "https") else None


@lru_cache(maxsize=8)
def templates(redactor: Redactor) -> Environment:
    """The pages' environment for one app: every value a page prints (timeline, alert text, run
    errors, the postmortem) passes through that app's ``redactor`` on its way out."""

    def without_credentials(value: Any) -> Any:
        return redactor.redact_credentials(value) if isinstance(value, str) else value

    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, finalize=without_credentials)
    env.filters.update(when=_when, iso=iso, took=metrics.human, plain=plain_slack_text, web_url=_web_url)
    return env


def render(request: Request, name: str, status_code: int = 200, *, headers: dict[str, str] | None = None,
           **ctx: Any) -> HTMLResponse:
    """A page; ``person`` (who is signed in, if anyone) is there for the header's sign-out form."""
    ctx.setdefault("person", getattr(request.state, "person", None))
    env = templates(request.app.state.runtime.redactor)
    return HTMLResponse(env.get_template(name).render(**ctx), status_code=status_code,
                        headers={**SECURITY_HEADERS, **(headers or {})})
