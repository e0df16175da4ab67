"""Which hosts playbooks may call: an explicit allow-list, checked on the URL *after* rendering.

Entries (``WARROOM_ACTION_HOSTS``, comma or space separated): ``host`` (any port), ``host:port``
and ``*.suffix`` (any subdomain of suffix). Only http and https; userinfo (``user@host``) is
refused outright because it is the classic way to make a URL look like it goes somewhere else.
Matching is on the literal host name, so ``169.254.169.254`` or ``127.1`` never match unless listed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from bot.errors import ConfigError

HOSTS_ENV = "WARROOM_ACTION_HOSTS"
_SAFE_HOST = re.compile(r"^[a-z0-9.\-]+$|^\[[0-9a-f:.]+\]$")


class HostRefused(ConfigError, ValueError):
    """The URL may not be called by a playbook."""


class HostAllowList:
    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = [e.strip().lower() for e in entries if e.strip()]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 targets: Mapping[str, str] | None = None) -> HostAllowList:
        """The env allow-list; when unset, the hosts of the configured targets."""
        environ = os.environ if environ is None else environ
        raw = environ.get(HOSTS_ENV, "")
        if raw.strip():
            return cls(re.split(r"[,\s]+", raw))
        return cls(urlsplit(url).netloc.lower() for url in (targets or {}).values())

    def check(self, url: str) -> None:
        """Raise HostRefused (naming the host) unless ``url`` may be called."""
        if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
            raise HostRefused(f"refused URL {url!r}: it contains whitespace, control characters or backslashes")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise HostRefused(f"refused URL {url!r}: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise HostRefused(f"refused URL {url!r}: only http and https are allowed")
        if "@" in parts.netloc:
            raise HostRefused(f"refused URL {url!r}: user info in URLs (user@host) is not allowed")
        host = (parts.hostname or "").lower()
        if not host or not _SAFE_HOST.match(host if ":" not in host else f"[{host}]"):
            raise HostRefused(f"refused URL {url!r}: missing or malformed host")
        port = port or (443 if parts.scheme == "https" else 80)
        if not self.allows(host, port):
            shown = f"[{host}]" if ":" in host else host
            raise HostRefused(f"host {shown}:{port} is not in the action allow-list ({HOSTS_ENV})")

    def allows(self, host: str, port: int) -> bool:
        for entry in self.entries:
            if entry.startswith("*."):
                if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                    return True
                continue
            entry_host, _, entry_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
            if entry_host.strip("[]") == host and (not entry_port or entry_port == str(port)):
                return True
        return False


def _has_port(entry: str) -> bool:
    if entry.startswith("["):
        return "]:" in entry
    return entry.count(":") == 1
