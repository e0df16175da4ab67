"""Render playbook templates in a jinja2 sandbox, and keep secrets out of everything we show.

Templates see ``params``, ``incident``, ``saved`` (values saved by earlier steps), ``target``
(the playbook's base URL) and ``secrets`` (``{{ secrets.NAME }}`` reads ``WARROOM_SECRET_NAME``).
Two renderings exist on purpose: the real one that is sent, and a masked one for previews,
dry runs and logs, where every secret shows as ``••••``. ``scrub`` is the last line of defence
for text that came back from a server (an echoed token must not reach the channel).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from bot.errors import ConfigError
from bot.redact import KnownSecrets

MASK = "••••"
SECRET_ENV_PREFIX = "WARROOM_SECRET_"
CONTEXT_NAMES = frozenset({"params", "incident", "saved", "target", "secrets"})


class RenderError(ConfigError, ValueError):
    """A template could not be rendered (bad syntax, unknown name, or a sandbox violation)."""


@functools.cache
def sandbox() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


def secrets_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {key[len(SECRET_ENV_PREFIX):]: value for key, value in environ.items()
            if key.startswith(SECRET_ENV_PREFIX) and value}


class _Secrets:
    """``secrets.NAME`` in templates; a missing one fails with the variable to set."""

    def __init__(self, values: Mapping[str, str], masked: bool) -> None:
        self._values = values
        self._masked = masked

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> str:
        if name not in self._values:
            raise RenderError(f"secret {name!r} is not set (set {SECRET_ENV_PREFIX}{name})")
        return MASK if self._masked else self._values[name]


class _Placeholders(dict[str, Any]):
    """Stands in for ``saved`` in dry runs, where earlier steps never ran."""

    def __missing__(self, key: str) -> str:
        return f"<saved.{key}>"


class Renderer:
    def __init__(
        self, *, params: Mapping[str, Any], incident: Mapping[str, Any], saved: Mapping[str, Any],
        target: str, secrets: Mapping[str, str], masked: bool = False, dry_run: bool = False,
    ) -> None:
        self.secret_values = [v for v in secrets.values() if v]
        self.context = {
            "params": dict(params),
            "incident": dict(incident),
            "saved": _Placeholders(saved) if dry_run else dict(saved),
            "target": target.rstrip("/"),
            "secrets": _Secrets(secrets, masked),
        }

    def render(self, value: Any) -> Any:
        """Render every string inside ``value`` (dict keys too), leaving other types alone."""
        if isinstance(value, str):
            return self._render_text(value)
        if isinstance(value, dict):
            return {self.render(k): self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(item) for item in value]
        return value

    def _render_text(self, text: str) -> str:
        if "{" not in text:
            return text
        try:
            return sandbox().from_string(text).render(self.context)
        except RenderError:
            raise
        except jinja2.exceptions.SecurityError as exc:
            raise RenderError(f"template refused by the sandbox: {scrub(str(exc), self.secret_values)}") from None
        except jinja2.TemplateError as exc:
            raise RenderError(f"template error in {text!r}: {scrub(str(exc), self.secret_values)}") from None
        except Exception as exc:  # user templates can raise anything (e.g. 1/0)
            raise RenderError(f"template error in {text!r}: {type(exc).__name__}") from None


def scrub(text: str, secret_values: list[str] | tuple[str, ...]) -> str:
    """Mask every secret value in ``text``, and any part of one long enough to matter (an echoed half)."""
    return KnownSecrets(secret_values).mask(text, MASK)


def scrub_value(value: Any, secret_values: list[str] | KnownSecrets) -> Any:
    known = secret_values if isinstance(secret_values, KnownSecrets) else KnownSecrets(secret_values)
    if isinstance(value, str):
        return known.mask(value, MASK)
    if isinstance(value, dict):
        return {scrub_value(k, known): scrub_value(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(item, known) for item in value]
    return value
