"""Render the postmortem draft (Markdown) from a ``PostmortemContext`` with jinja2.

Autoescape is off because the output is Markdown, not HTML; instead every piece of user
text goes through the ``md`` filter, which keeps a title with a pipe from splitting a table
row and a note starting with ``#`` from becoming a heading. The environment is sandboxed and
strict: a user's override template may be wrong, but it can neither reach into Python nor
silently print nothing for a misspelt variable.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bot import redact
from bot.incidents.budget import percent as budget_percent
from bot.postmortem.context import PostmortemContext, TraceExample
from bot.postmortem.timeline import summarise_timeline
from bot.redact import Redactor

TEMPLATE_NAME = "postmortem.md.j2"
BUILTIN_TEMPLATES = Path(__file__).parent / "templates"

# Markdown that only means something at the start of a line: headings, quotes, lists, rules.
_LINE_START_MARKUP = re.compile(r"^(\s*)([#>+*=-]|\d+[.)])")


def md(value: Any, limit: int | None = None, *, redactor: Redactor = redact.DEFAULT) -> str:
    """User text made safe to drop into one Markdown line or table cell (credentials out before any cut)."""
    # Newlines would end the list item / table row.
    text = " ".join(redactor.redact_credentials(str(value)).split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    # Raw HTML passes straight through most Markdown renderers; show it as text instead.
    text = text.replace("<", "&lt;").replace(">", "&gt;")
    return _LINE_START_MARKUP.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def md_paragraphs(value: Any, *, redactor: Redactor = redact.DEFAULT) -> str:
    """Multi-paragraph user text (a written summary): blank lines survive, everything else as ``md``."""
    paragraphs = [p for p in re.split(r"\n\s*\n", str(value)) if p.strip()]
    return "\n\n".join(md(p, redactor=redactor) for p in paragraphs)


def code(value: Any, *, redactor: Redactor = redact.DEFAULT) -> str:
    """An identifier (bundle, request id, playbook) as inline code that cannot break a table."""
    text = " ".join(redactor.redact_credentials(str(value)).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def utc(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    return value.strftime(fmt) if value is not None else "—"


def clock(value: datetime | None, day: datetime) -> str:
    """Time of day, with the date only when it is not the incident's first day."""
    if value is None:
        return "—"
    return value.strftime("%H:%M:%S" if value.date() == day.date() else "%m-%d %H:%M:%S")


def duration(value: timedelta | float | None) -> str:
    if value is None:
        return "unknown"
    exact = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if exact < 10:
        return f"{exact:.1f} s"  # playbooks finish in seconds; "1 s" would hide a 1.4 s vs 1.9 s difference
    seconds = round(exact)
    if seconds < 60:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} m"
    return f"{minutes} m" if secs == 0 else f"{minutes} m {secs:02d} s"


def percent(fraction: float | None) -> str:
    return "unknown" if fraction is None else f"{fraction * 100:.1f} %"


def number(value: int | None) -> str:
    return "unknown" if value is None else f"{value:,}"


@lru_cache(maxsize=16)
def _environment(templates_dir: str | None, redactor: Redactor) -> ImmutableSandboxedEnvironment:
    """The template environment for one folder, its filters and output redacted with ``redactor``."""

    def without_credentials(value: Any) -> Any:
        return redactor.redact_credentials(value) if isinstance(value, str) else value

    # The user's folder first, so a team can override the whole draft without forking the bot.
    loaders = [FileSystemLoader(templates_dir)] if templates_dir else []
    loaders.append(FileSystemLoader(str(BUILTIN_TEMPLATES)))
    env = ImmutableSandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # A team's own template may print user text without ``md``: credentials go all the same.
        finalize=without_credentials,
    )
    env.filters.update(md=partial(md, redactor=redactor), md_paragraphs=partial(md_paragraphs, redactor=redactor),
                       code=partial(code, redactor=redactor), utc=utc, clock=clock, duration=duration,
                       percent=percent, number=number, budget_percent=budget_percent)
    return env


def _redacted(examples: list[TraceExample], redactor: Redactor) -> list[TraceExample]:
    # Redact again here: the draft is pasted into docs and tickets whatever the caller did before.
    return [
        example.model_copy(update={
            "input": redactor.redact(example.input),
            "output": redactor.redact(example.output) if example.output is not None else None,
        })
        for example in examples
    ]


def render_postmortem(
    ctx: PostmortemContext, templates_dir: Path | None = None, *, redactor: Redactor | None = None
) -> str:
    """``redactor``: the process's (`Runtime.redactor`); without one, the default rules."""
    redactor = redactor or redact.DEFAULT
    env = _environment(str(Path(templates_dir).resolve()) if templates_dir else None, redactor)
    template = env.get_template(TEMPLATE_NAME)
    return template.render(
        incident=ctx.incident,
        impact=ctx.impact,
        timeline=summarise_timeline(ctx.timeline),
        timeline_total=len(ctx.timeline),
        actions=ctx.actions,
        bundles=ctx.bundles,
        traces=ctx.traces,
        trace_examples=_redacted(ctx.traces.examples, redactor),
        followups=ctx.followups,
        eval_cases_added=ctx.eval_cases_added,
        eval_cases_updated=ctx.eval_cases_updated,
        gate_passed=ctx.gate_passed,
        summary=ctx.summary,
        response=ctx.response,
    )
