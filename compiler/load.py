"""Stage 1, load: YAML text -> plain data plus the position of every node.

The data is plain Python (dict, tuple, str, int, float, bool, None): sequences
become tuples so nothing downstream can mutate it. Beside it, a position tree
maps every path (a tuple of keys and indexes) to where its key and its value
start, so later stages can point at the exact line and column of a problem.

Duplicate keys are reported (pointing back to the first definition) but do not
stop loading, so they are shown together with every other problem. A YAML
syntax error stops it: there is no data to check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .diagnostics import UNKNOWN_POSITION, Diagnostic, Position, SpecError, quoted

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class NodePosition:
    """Where a node's key (None for the root and list items) and value start."""

    key: Position | None
    value: Position


@dataclass(frozen=True)
class Document:
    """A loaded spec: its data, the position of every node, and load-time problems."""

    file: str
    data: Any
    positions: Mapping[Path, NodePosition]
    diagnostics: tuple[Diagnostic, ...] = ()

    def position_of(self, path: Path, *, key: bool = False) -> Position:
        """The position of `path`, or of its nearest ancestor that exists.

        With `key=True` the key's position is preferred (an unknown key is
        reported where the key is written, not where its value starts).
        """
        for depth in range(len(path), -1, -1):
            node = self.positions.get(tuple(path[:depth]))
            if node is None:
                continue
            if key and node.key is not None:
                return node.key
            return node.value
        return UNKNOWN_POSITION


def load_spec(text: str, file: str) -> Document:
    """Parse YAML `text` (read from `file`) into a Document."""
    try:
        root = YAML(typ="rt").compose(text)
    except MarkedYAMLError as error:
        raise SpecError([_syntax_diagnostic(file, error)]) from None
    except YAMLError as error:  # pragma: no cover - ruamel marks nearly everything
        raise SpecError([Diagnostic(file, 1, 1, f"invalid YAML: {error}")]) from None
    builder = _Builder(file)
    if root is None:
        return Document(file, None, {(): NodePosition(None, UNKNOWN_POSITION)})
    data = builder.build(root, (), None)
    return Document(file, data, builder.positions, tuple(builder.diagnostics))


def _syntax_diagnostic(file: str, error: MarkedYAMLError) -> Diagnostic:
    mark = error.problem_mark or error.context_mark
    position = _position(mark) if mark is not None else UNKNOWN_POSITION
    problem = (error.problem or error.context or "invalid YAML").strip()
    # The problem is often found a line after the mistake (an unclosed "[" or quote): name where it began.
    if error.problem and error.context and error.context_mark is not None:
        start = _position(error.context_mark)
        if start != position:
            problem += f" ({error.context.strip()} at line:{start.line},col:{start.column})"
    return Diagnostic.at(file, position, f"invalid YAML: {problem}")


def _position(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


class _Builder:
    """Turns a composed node tree into plain data, recording positions."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path, NodePosition] = {}
        self.diagnostics: list[Diagnostic] = []

    def build(self, node: Node, path: Path, key_position: Position | None) -> Any:
        self.positions[path] = NodePosition(key_position, _position(node.start_mark))
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return tuple(
                self.build(item, (*path, index), None) for index, item in enumerate(node.value)
            )
        if isinstance(node, ScalarNode):
            return _scalar(node)
        raise AssertionError(f"unexpected YAML node {node!r}")  # pragma: no cover

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            key_position = _position(key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                self.diagnostics.append(
                    Diagnostic.at(self.file, key_position, "a key must be a plain string")
                )
                continue
            key = str(key_node.value)
            if key in first_seen:
                first = first_seen[key]
                self.diagnostics.append(
                    Diagnostic.at(
                        self.file,
                        key_position,
                        f"key {quoted(key)} is duplicated. previously defined at "
                        f"line:{first.line},col:{first.column}",
                    )
                )
                continue
            first_seen[key] = key_position
            result[key] = self.build(value_node, (*path, key), key_position)
        return result


def _scalar(node: ScalarNode) -> Any:
    """Resolve a scalar by the tag the YAML 1.2 resolver gave it."""
    tag = str(node.tag)
    text = str(node.value)
    if tag.endswith(":null"):
        return None
    if tag.endswith(":bool"):
        return text.lower() in {"true", "yes", "on", "y"}
    if tag.endswith(":int"):
        try:
            return int(text.replace("_", ""), 0)
        except ValueError:
            return int(text.replace("_", ""))
    if tag.endswith(":float"):
        lowered = text.lower().replace("_", "")
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        if lowered.endswith(".nan"):
            return math.nan
        return float(lowered)
    return text
