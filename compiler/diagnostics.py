"""Diagnostics: every problem the compiler reports is a `Diagnostic` with a position.

Errors are data (file, line, column, message) plus one formatted string, in the
actionlint style: `file:line:col: message`. Stages collect all of them and raise
one `SpecError`, so a user sees every problem in one run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Position:
    """A 1-based line and column in a source file."""

    line: int
    column: int


UNKNOWN_POSITION = Position(1, 1)


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem, sortable by file and position."""

    file: str
    line: int
    column: int
    message: str

    @classmethod
    def at(cls, file: str, position: Position, message: str) -> Diagnostic:
        return cls(file, position.line, position.column, message)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class SpecError(Exception):
    """The spec is wrong: carries every diagnostic found, sorted and de-duplicated."""

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
        self.diagnostics = tuple(sorted(set(diagnostics)))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class BuildError(Exception):
    """The build failed for a reason that is not the spec's fault (exit 1)."""


def quoted(value: object) -> str:
    """Quote a value for a message the way actionlint does: "value"."""
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def one_of(choices: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> str:
    """`expected one of "a", "b"` with the choices sorted."""
    return ", ".join(quoted(c) for c in sorted(choices))


def listed(items: list[str] | tuple[str, ...], last: str = "or") -> str:
    """`a`, `a or b`, `a, b or c` (`last` joins the last two: "or", "and")."""
    items = list(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}" if len(items) > 1 else "".join(items)
