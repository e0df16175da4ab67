"""One line per event, with the request or incident id; JSON when WARROOM_LOG_FORMAT=json.

Secrets never reach a log line: a filter on warroom's handler redacts every record (message and
traceback) with the redactor `configure` was given, whatever the caller passed in.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar

from bot.redact import DEFAULT, Redactor

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
incident_id: ContextVar[int | None] = ContextVar("incident_id", default=None)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.incident_id = incident_id.get()
        return True


class RedactingFilter(logging.Filter):
    """Credentials out of the message and the traceback before any formatter sees the record."""

    def __init__(self, redactor: Redactor = DEFAULT) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # a bad format call must not raise into the caller
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = redactor.redact_credentials(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact_credentials(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact_credentials(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "incident_id", "error_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={getattr(record, k)}" for k in ("request_id", "incident_id", "error_id")
                       if getattr(record, k, None) is not None)
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if ids:
            line += f" [{ids}]"
        if record.exc_text:
            line += "\n" + record.exc_text
        elif record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(fmt: str = "text", level: str = "INFO", redactor: Redactor = DEFAULT) -> None:
    """Warroom's one log handler; ``redactor``: the process's (`bot.runtime.redactor_for`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    handler.addFilter(RedactingFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
