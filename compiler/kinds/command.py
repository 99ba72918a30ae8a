"""The command kind: any tool, from PATH or in the step's container, run once per run, per image or per
object, its arguments made from the message's fields and the paths the plan provides.

Every value is checked when the spec is compiled: the tool is a command name, each argument is literal
text and placeholders (the message's fields and the paths the plan provides), and each becomes one quoted word: no shell text, ever. The step's
job handles every object of the run through its batch file, as the astronomy kinds do; its script is
named after the step (or `with.script`), so a spec may have several.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from ..fields import FIELD_NAME

from ..layout import OUT_DIR, PINNED, RUN_DIR, Output
from ..words import ObjectField, Part, RequestField, Word
from . import Kind, Planned

if TYPE_CHECKING:
    from ..spec import Spec, Step

PATHS = ("image", "output")
"""The paths the plan provides, as placeholders: the run's copy of the object's image, and its output."""
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/")


@dataclass(frozen=True)
class _Form:
    """What a text of the settings may hold: placeholders of `allowed`, and literal text of `literal`."""

    allowed: tuple[str, ...]
    literal: re.Pattern[str]
    rule: str
    """What its literal text may hold, for messages."""


ARGUMENT = _Form(PATHS, re.compile(r"[^{}\x00-\x1f\x7f]+"),
                 "no control character and no lone \"{\" or \"}\"")
KEY = _Form((), re.compile(r"[A-Za-z0-9._/-]+"), "only letters, digits and \"._/-\"")


def placeholders(text: str, form: _Form, what: str, fields: tuple[str, ...] | None = None) -> list[str | Part]:
    """`text` as its literal text and placeholders (each an ObjectField), or ValueError saying why not.
    Besides the form's own placeholders, `text` may name the message's `fields` (None: any field name, for
    settings already checked against the spec's message)."""
    parts: list[str | Part] = []
    position = 0
    for match in (*_PLACEHOLDER.finditer(text), None):
        literal = text[position:match.start() if match else len(text)]
        if literal and not form.literal.fullmatch(literal):
            raise ValueError(f"{what} holds {form.rule} besides its placeholders, got {literal!r}")
        parts.extend([literal] if literal else [])
        if match is None:
            break
        name = match.group(1)
        if name not in form.allowed and (name not in fields if fields is not None else not FIELD_NAME.fullmatch(name)):
            raise ValueError(f"{{{name}}} is not a placeholder: {what} may name "
                             + ", ".join(f"{{{allowed}}}" for allowed in (*form.allowed, *(fields or ())))
                             + (" (the fields of the message and what the plan provides)" if fields is not None else ""))
        parts.append(ObjectField(match.group(1)))
        position = match.end()
    return parts


def _named(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CommandOutput(_Model):
    """An object's output, which sync-out uploads to its key."""

    suffix: Annotated[str, Field(pattern=r"^\.[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")] = Field(
        description="The output file's suffix, such as `.sha256`: object N's output is `RUN_DIR/out/N` and "
        "the suffix.")
    key: str = Field(
        description="The key it is uploaded to in the sync-out step's remote: `BUCKET/...` or `{file}...`, "
        "literal letters, digits and \"._/-\" and the message's fields as placeholders (`{file}.sha256`). It "
        "names every field the arguments use (`{image}` is `{file}`'s), since the requests with one key are "
        "done once; it is not `{file}` alone, which would replace the image.")
    stdout: bool = Field(
        default=False,
        description="The tool's standard output is the output; else the tool writes the file its argument "
        "`{output}` names.")


class CommandSettings(_Model):
    """The settings of a command step."""

    tool: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")] = Field(
        description="The command that runs, by name: from `PATH`, after the step's modules are loaded, or in "
        "its container.")
    per: Literal["run", "image", "object"] = Field(
        default="object",
        description="How often the tool runs: once for the run's objects, once for each image's, or once for "
        "each object. An argument is given once for each of its values among the objects of one run of the "
        "tool, in their order: per run, `{image}` names every image of the run.")
    arguments: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        default=(),
        description="The tool's arguments, each one word whatever it holds: literal text and the placeholders "
        "`{image}` (the run's copy of the object's image), `{output}` (the file the tool writes, as a whole "
        "argument) and the message's fields by name (`{file}`). No shell reads them.")
    output: CommandOutput | None = Field(
        default=None, description="What the tool makes for each object; none if not given (the step then "
        "only checks what its tool says).")
    fails_on: tuple[Annotated[str, Field(pattern=r"^[^\x00-\x1f\x7f]+$")], ...] = Field(
        default=(),
        description="Text that means the tool failed when its output (standard output or error) holds it, "
        "whatever its exit status: its objects fail with exit 7, as they do when it exits non-zero.")
    script: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*\.sh$")] | None = Field(
        default=None, description="The step script's name. Default: the step's name and `.sh`.")

    @model_validator(mode="after")
    def _placeholders(self, info: ValidationInfo) -> CommandSettings:
        # The message's fields, {name: type}, when the spec's are known (the validate stage gives them).
        message: dict[str, Any] = (info.context or {}).get("message", {})
        fields = tuple(message) if info.context else None
        key = next((name for name, kind in message.items() if kind == "key"), "file")
        for number, argument in enumerate(self.arguments):
            placeholders(argument, ARGUMENT, f"argument {number + 1}", fields)
            if "output" in _named(argument) and argument != "{output}":
                raise ValueError(f"argument {number + 1}: {{output}} is a whole argument, got {argument!r}")
        named = set().union(*map(_named, self.arguments))
        if "output" in named and self.output is None:
            raise ValueError("an argument names {output}, but the step declares no \"output\"")
        if self.output is not None:
            placeholders(self.output.key, KEY, "output.key", fields)
            if ("output" in named) == self.output.stdout:
                raise ValueError("the tool writes its output either to standard output (\"output.stdout: true\") "
                                 "or to the argument {output}: give one of them")
            if not (self.output.key.startswith(f"{{{key}}}") or _BUCKET.match(self.output.key)):
                raise ValueError(f"output.key starts with {{{key}}} or a bucket (\"BUCKET/\"), got "
                                 f"{self.output.key!r}")
            if self.output.key == f"{{{key}}}":
                raise ValueError(f"output.key is not {{{key}}} alone: the output would replace the image")
            used = {key if name == "image" else name for name in named} - {"output"}
            missing = sorted(used - _named(self.output.key))
            if missing:
                raise ValueError("output.key names " + ", ".join(f"{{{name}}}" for name in missing)
                                 + ", which the arguments use: requests with one key are done once")
        return self


@dataclass(frozen=True)
class CommandRun:
    """What command.sh.j2 lays out for a step."""

    per: str
    arguments: tuple[str, ...]
    """The arguments as the spec writes them, for --help."""
    output: bool
    stdout: bool
    fails_on: tuple[str, ...]


_GROUPS: dict[str, tuple[str | Part, tuple[str | Part, ...]]] = {
    "object": (ObjectField("index"), (ObjectField("index"),)),
    "image": (ObjectField("image"), ("image-", ObjectField("image"))),
    "run": ("run", ("run",)),
}
"""Per object, image or run: a batch line's group (its objects share one run of the tool), and the name
of the group's output file, which the tool makes and each object of the group then gets (a hard link)."""


def _command(_spec: Spec, step: Step) -> Planned:
    settings: CommandSettings = step.with_
    group, group_name = _GROUPS[settings.per]
    fields = [Word.of(group)]
    group_output = None
    if settings.output is not None:
        suffix = settings.output.suffix
        group_output = Word.of(RUN_DIR, OUT_DIR, "/", *group_name, suffix)
        fields += [group_output, Word.of(RUN_DIR, OUT_DIR, "/", ObjectField("index"), suffix)]
    for argument in settings.arguments:
        parts: list[str | Part] = []
        for part in placeholders(argument, ARGUMENT, "argument"):
            if part == ObjectField("image"):
                parts.extend(PINNED.parts)
            elif part == ObjectField("output") and group_output is not None:
                parts.extend(group_output.parts)
            else:
                parts.append(part)
        fields.append(Word.of(*parts))
    output = None
    if settings.output is not None:
        key = Word.of(*(RequestField(p.field) if isinstance(p, ObjectField) else p
                        for p in placeholders(settings.output.key, KEY, "output.key")))
        output = Output("output", settings.output.suffix, key)
    run = CommandRun(settings.per, settings.arguments, settings.output is not None,
                     settings.output is not None and settings.output.stdout, settings.fails_on)
    return Planned(tuple(fields), per_object=True, output=output, settings=run, tool=settings.tool)


def _flow(settings: CommandSettings) -> tuple[tuple[str, ...], tuple[str, ...]]:
    reads = ("images",) if any("image" in _named(argument) for argument in settings.arguments) else ()
    return reads, ("outputs",) if settings.output is not None else ()


def _script(step: str, settings: CommandSettings | None) -> str:
    return settings.script if settings is not None and settings.script else f"{step}.sh"


COMMAND = Kind("command", _script, "command.sh.j2", None, _command, once=False, reads=("images",),
               writes=("outputs",), flow=_flow, options=CommandSettings,
               exits=(("TOOL_FAILED", "a command's output named a failure"),),
               summary="command (any tool, its arguments from the message and the plan's paths; its script is "
               "named after the step)")
