"""Where playbooks send their requests: ``targets.yaml`` maps names to base URLs.

Each entry can be overridden per deployment with ``WARROOM_TARGET_<NAME>`` (upper case, ``-``
becomes ``_``), so the same playbooks point at a team's own control plane without edits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bot.errors import ConfigError
from bot.problems import Problem
from bot.yamlsource import YamlSyntaxError, load_yaml

TARGET_ENV_PREFIX = "WARROOM_TARGET_"


class TargetsError(ConfigError, ValueError):
    """targets.yaml is broken."""


def env_name(target: str) -> str:
    return TARGET_ENV_PREFIX + target.upper().replace("-", "_")


def load_targets(path: str | Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Target name → base URL (no trailing slash); a missing file means no targets."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    targets: dict[str, str] = {}
    if path.exists():
        problems = check_targets(path)
        if problems:
            raise TargetsError("\n".join(str(p) for p in problems))
        data, _ = load_yaml(path.read_text(encoding="utf-8"))
        targets = {str(k): str(v) for k, v in (data or {}).items()}
    for name in list(targets):
        override = environ.get(env_name(name))
        if override:
            targets[name] = override
    return {name: url.rstrip("/") for name, url in targets.items()}


def check_targets(path: Path) -> list[Problem]:
    try:
        data, lines = load_yaml(path.read_text(encoding="utf-8"))
    except YamlSyntaxError as exc:
        return [Problem(str(path), exc.line, str(exc))]
    if data is None:
        return []
    if not isinstance(data, dict):
        return [Problem(str(path), 1, "targets.yaml maps target names to base URLs")]
    return [
        Problem(str(path), lines.line_of((name,)), f"{name}: base URL must start with http:// or https://")
        for name, url in data.items()
        if not (isinstance(url, str) and url.startswith(("http://", "https://")))
    ]
