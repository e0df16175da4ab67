"""One line per event, with the request or incident id; JSON when WARROOM_LOG_FORMAT=json.

Secrets never reach a log line: tokens and signing secrets are masked by the formatter whatever
the caller passed in.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
incident_id: ContextVar[int | None] = ContextVar("incident_id", default=None)

_SECRET = re.compile(r"(xox[abposr]-[A-Za-z0-9-]+|Bearer\s+[A-Za-z0-9._~+/=-]+|xapp-[A-Za-z0-9-]+)")


def mask(text: str) -> str:
    return _SECRET.sub(lambda m: m.group(0)[:5] + "••••", text)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.incident_id = incident_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for key in ("request_id", "incident_id", "error_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={getattr(record, k)}" for k in ("request_id", "incident_id", "error_id")
                       if getattr(record, k, None) is not None)
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if ids:
            line += f" [{ids}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return mask(line)


def configure(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
