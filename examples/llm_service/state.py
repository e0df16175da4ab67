"""What the control plane can change at run time: live bundle, model route and tool switches.

Two sources can turn a tool off: the local control API and, when configured, Unleash kill
switches (``llm.tool.<tool>``). A tool is on only when both agree, so an operator flipping the
flag in Unleash wins without anyone having to touch the service.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .bundles import BUNDLES, DEFAULT_BUNDLE, ROUTES, TOOLS, Bundle


class UnknownRoute(ValueError):
    """The route is not one this service can serve."""


class UnknownBundle(KeyError):
    """No bundle with that version in the catalogue."""


class UnknownTool(KeyError):
    """No tool with that name."""


@dataclass
class ServiceState:
    bundle: str = DEFAULT_BUNDLE
    route: str | None = None
    tools: dict[str, bool] = field(default_factory=lambda: {tool: True for tool in TOOLS})
    unleash_disabled: set[str] = field(default_factory=set)
    unleash_seen: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.bundle not in BUNDLES:
            raise UnknownBundle(self.bundle)
        if self.route is None:
            self.route = BUNDLES[self.bundle].model_route

    def current(self) -> tuple[Bundle, str, dict[str, bool]]:
        with self._lock:
            return BUNDLES[self.bundle], str(self.route), self._effective_tools()

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "bundle": self.bundle,
                "route": self.route,
                "tools": self._effective_tools(),
                "source": "unleash" if self.unleash_seen else "local",
            }

    def set_route(self, route: str) -> None:
        if route not in ROUTES:
            raise UnknownRoute(route)
        with self._lock:
            self.route = route

    def set_bundle(self, version: str) -> None:
        if version not in BUNDLES:
            raise UnknownBundle(version)
        with self._lock:
            self.bundle = version

    def set_tool(self, tool: str, enabled: bool) -> None:
        if tool not in TOOLS:
            raise UnknownTool(tool)
        with self._lock:
            self.tools[tool] = enabled

    def apply_unleash(self, disabled_tools: set[str]) -> None:
        with self._lock:
            self.unleash_disabled = set(disabled_tools)
            self.unleash_seen = True

    def _effective_tools(self) -> dict[str, bool]:
        return {tool: on and tool not in self.unleash_disabled for tool, on in self.tools.items()}
