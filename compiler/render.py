"""Stage 4, render: a JobGraph -> the text of every script, and where each line came from.

Templates hold layout; the graph holds every decision. Values reach bash only
through the `q` filter (`shell_quote`), which turns text, numbers and `Word`s into
exactly one shell word each (or a space-separated sequence of them).

Each rendered line is traced to the template line that produced it: templates are
loaded with an invisible marker at the start of each text line, and the markers
are stripped after rendering into a `SourceMap` that the verify stage uses to
point a shellcheck finding at its template.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from . import __version__
from .kinds import template_directories
from .plan import CONTROL_SCRIPTS, JobGraph
from .words import (Environment, EveryObject, ObjectField, PositionDigest, RequestField, RequestStem, Text, Variable,
                    Word)

_MARK = "\x1e"
_MARKER = re.compile(_MARK + r"([^\x1e:]+):(\d+)" + _MARK)
_SAFE_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Provenance:
    """Where a build came from, for the scripts' headers (no timestamp: output is reproducible)."""

    spec_path: str
    spec_sha256: str
    version: str = __version__


@dataclass(frozen=True)
class Origin:
    template: str
    line: int


@dataclass(frozen=True)
class RenderedScript:
    name: str
    text: str
    origins: tuple[Origin | None, ...]
    """The template line behind each line of `text` (index 0 is line 1)."""


def find_templates() -> Path:
    """The templates directory: inside the installed package, or the source tree's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"ltsflow templates not found beside {here}")


# ----------------------------------------------------------------- quoting


def shell_quote(value: Any) -> str:
    """The one quoting filter: a value as shell word(s) that bash reads back exactly."""
    if isinstance(value, Word):
        return _quote_word(value)
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises here, naming what is missing
    if isinstance(value, bool) or value is None:
        raise TypeError(f"refusing to quote {value!r}: say what it means as text")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quote_text(value)
    if isinstance(value, (tuple, list)):
        return " ".join(shell_quote(item) for item in value)
    raise TypeError(f"cannot quote {type(value).__name__} for the shell")


def _quote_text(text: str) -> str:
    if _SAFE_WORD.fullmatch(text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"


def _quote_word(word: Word) -> str:
    if all(isinstance(part, Text) for part in word.parts):
        return _quote_text("".join(part.text for part in word.parts))  # type: ignore[union-attr]
    inside = []
    for part in word.parts:
        if isinstance(part, Text):
            # a control character (a tab) as bash's $'\t' between the double-quoted parts: the word stays one
            inside.append(re.sub(r"[\x00-\x1f\x7f]", _ansi_c, re.sub(r'([\\"$`])', r"\\\1", part.text)))
        elif isinstance(part, Variable):
            inside.append("${" + _checked_name(part.name) + "}")
        elif isinstance(part, Environment):
            inside.append("${" + _checked_name(part.name) + ":?}")
        elif isinstance(part, ObjectField):
            inside.append("${OBJECT_" + _checked_name(part.field).upper() + "[index]}")
        elif isinstance(part, RequestField):
            inside.append("${REQUEST_" + _checked_name(part.field).upper() + "[index]}")
        elif isinstance(part, RequestStem):
            inside.append("${REQUEST_" + _checked_name(part.field).upper() + "[index]%.*}")
        elif isinstance(part, PositionDigest):
            inside.append("${DIGESTS[index]}")
        elif isinstance(part, EveryObject):
            inside.append("${OBJECT_" + _checked_name(part.field).upper() + "[@]}")
    return '"' + "".join(inside) + '"'


def _ansi_c(control: re.Match[str]) -> str:
    char = control.group(0)
    if char == "\x00":
        raise ValueError("a shell word holds no NUL byte")
    return '"' + "$'" + {"\t": "\\t", "\n": "\\n"}.get(char, f"\\x{ord(char):02x}") + "'" + '"'


def _checked_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a shell variable name: {name!r}")
    return name


def identifier(name: str) -> str:
    """A name used as a shell identifier (a function or variable name): checked, never quoted."""
    return _checked_name(name)


def element(array: str, index: str) -> str:
    """`"${ARRAY[INDEX]}"`: an element of a bash array, both names checked (INDEX: a variable or a number)."""
    if not (index.isdigit() or _NAME.fullmatch(index)):
        raise ValueError(f"not an array index: {index!r}")
    return '"${' + _checked_name(array) + "[" + index + ']}"'


def comment_text(text: str) -> str:
    """Free text for a `#` comment: one line, so it can never escape the comment. Line breaks
    and other control characters become one space; the spaces that align text are kept."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).rstrip()


# ----------------------------------------------------------------- rendering


class _MarkingLoader(jinja2.FileSystemLoader):
    """Loads templates with a marker naming template and line at the start of each text line."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        marked = []
        inside_tag = False
        for number, line in enumerate(source.split("\n"), start=1):
            # A line that opens with a block tag is stripped by lstrip_blocks/trim_blocks, so it takes no
            # marker; text with a tag further on (`jobs:{% for ... %}`) does.
            plain = not inside_tag and not line.lstrip().startswith("{%") and "{##" not in line
            marked.append(f"{_MARK}{template}:{number}{_MARK}{line}" if plain else line)
            opened = max(line.rfind("{%"), line.rfind("{{"), line.rfind("{##"))
            closed = max(line.rfind("%}"), line.rfind("}}"), line.rfind("##}"))
            inside_tag = opened > closed if max(opened, closed) >= 0 else inside_tag
        return "\n".join(marked), filename, uptodate


def make_environment(templates: Path | None = None) -> jinja2.Environment:
    """The templates of `templates` (ltsflow's own by default), then those of the kinds that bring
    their own directory (`Kind.templates`); a kind's template may include ltsflow's."""
    search = [templates or find_templates(), *template_directories()]
    environment = jinja2.Environment(
        loader=_MarkingLoader([str(directory) for directory in search]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        # bash's ${#array[@]} would open a Jinja comment: comments are {## ... ##} instead.
        comment_start_string="{##",
        comment_end_string="##}",
    )
    environment.filters["q"] = shell_quote
    environment.filters["comment"] = comment_text
    environment.filters["identifier"] = identifier
    environment.filters["element"] = element
    return environment


def render_scripts(graph: JobGraph, provenance: Provenance, templates: Path | None = None) -> tuple[RenderedScript, ...]:
    """Render schedule.sh and every step script, sorted by name."""
    environment = make_environment(templates)
    context = {"graph": graph, "provenance": provenance}
    rendered = [_render(environment, name, f"{name}.j2", {**context, "script": None})
                for name in ("schedule.sh", *CONTROL_SCRIPTS)]
    for script in graph.scripts:
        rendered.append(_render(environment, script.name, script.template, {**context, "script": script}))
    return tuple(sorted(rendered, key=lambda r: r.name))


def _render(environment: jinja2.Environment, name: str, template: str, context: dict[str, Any]) -> RenderedScript:
    """Render one script; squeeze runs of blank lines and trailing spaces, keeping origins aligned."""
    marked = environment.get_template(template).render(context)
    lines: list[str] = []
    origins: list[Origin | None] = []
    current: Origin | None = None
    for raw in marked.split("\n"):
        # The last marker wins: an included template's trailing (empty) line leaves its marker in
        # front of the text that follows the include.
        found = _MARKER.findall(raw)
        if found:
            current = Origin(found[-1][0], int(found[-1][1]))
        line = _MARKER.sub("", raw).rstrip()
        if line == "" and (not lines or lines[-1] == ""):
            continue
        lines.append(line)
        origins.append(current)
    while lines and lines[-1] == "":
        lines.pop()
        origins.pop()
    return RenderedScript(name, "\n".join(lines) + "\n", tuple(origins))
