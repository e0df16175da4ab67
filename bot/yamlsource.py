"""Load YAML while remembering the line every key and list item came from.

Checks of runbooks, playbooks and SLO files must point at the offending line, and plain
``yaml.safe_load`` forgets positions. We compose the node tree once, build the Python value from it
and keep a map from each value's path (``("steps", 0, "url")``) to its 1-based line in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.errors import ConfigError

Path_ = tuple[str | int, ...]


class YamlSyntaxError(ConfigError, ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass
class LineMap:
    lines: dict[Path_, int] = field(default_factory=dict)
    default: int = 1

    def line_of(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), self.default)


def load_yaml(text: str, line_offset: int = 0) -> tuple[Any, LineMap]:
    """Parse ``text``; lines reported are shifted by ``line_offset`` (front matter starts below ``---``)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 1 if mark else 1) + line_offset
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlSyntaxError(f"invalid YAML: {problem}", line) from exc
    linemap = LineMap(default=1 + line_offset)
    if node is None:
        return None, linemap
    return _build(node, (), linemap, line_offset), linemap


def _build(node: yaml.Node, path: Path_, linemap: LineMap, offset: int) -> Any:
    linemap.lines[path] = node.start_mark.line + 1 + offset
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader("").construct_object(key_node)
            result[key] = _build(value_node, (*path, key), linemap, offset)
            linemap.lines[(*path, key)] = key_node.start_mark.line + 1 + offset
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), linemap, offset) for i, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node)
