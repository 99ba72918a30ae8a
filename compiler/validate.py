"""Stage 2, validate: a loaded Document -> a frozen `Spec`, or every problem at once.

Two passes, both always run so one report holds everything:
- the shape, checked by the pydantic models in `spec.py` (unknown keys, types,
  formats), each error mapped back to the line and column of its node;
- the meaning, checked here on the raw data (names that must exist, at most one step
  of a kind that runs once, the data flow between steps, dependency cycles, clusters that can only
  depend on each other inside a federation). These checks skip whatever has the
  wrong shape: the first pass reports that.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from .diagnostics import Diagnostic, SpecError, listed, one_of, quoted
from .load import Document, Path
from .fields import (BUCKET_SHAPE, FIELD_NAME, FIELD_TYPES, RESERVED_NAMES, IntegerField, KeyField, MessageField,
                     bucket_problem)
from .kinds import KINDS, Kind, fields_of, remote_actions, writers_of
from .kinds.ranged import SCRIPT as ROWS_SCRIPT
from .plan import CONTROL_SCRIPTS
from .spec import CLUSTER_NAME, REMOTE_NAME, STEP_NAME, Spec, Step

def validate_spec(document: Document) -> Spec:
    """Check `document` against the spec; return the Spec or raise SpecError with every problem."""
    diagnostics = list(document.diagnostics)
    spec = None
    try:
        spec = Spec.model_validate(document.data)
    except ValidationError as error:
        diagnostics.extend(_shape_diagnostic(document, e) for e in error.errors())
    options = _kinds_options(document, diagnostics)
    diagnostics.extend(_MeaningCheck(document, options).run())
    if diagnostics or spec is None:
        raise SpecError(diagnostics)
    return spec.model_copy(update={"steps": {name: step.model_copy(update={"with_": options.get(name)})
                                             for name, step in spec.steps.items()}})


def _kinds_options(document: Document, diagnostics: list[Diagnostic]) -> dict[str, BaseModel]:
    """Each step's `with`, checked against its kind's `options` model (a step without one gets the
    model's defaults); its problems are added to `diagnostics`, at their lines, as the shape pass's."""
    options: dict[str, BaseModel] = {}
    # The message's fields, {name: type}, for the settings that name them (a command's placeholders).
    message = {name: _mapping(field).get("type") for name, field in
               _mapping(_mapping(document.data).get("message")).items()}
    for name, step in _mapping(_mapping(document.data).get("steps")).items():
        step = _mapping(step)
        action = step.get("action")
        kind = KINDS.get(action) if isinstance(action, str) else None
        path: Path = ("steps", name, "with")
        if kind is None or not isinstance(step.get("with", {}), dict):
            continue  # an unknown action, or a `with` that is not a mapping: the shape pass says so
        if kind.options is None:
            if "with" in step:
                diagnostics.append(Diagnostic.at(document.file, document.position_of(path, key=True),
                                                 f"a {quoted(action)} step takes no \"with\": its kind has no settings"))
            continue
        try:
            options[name] = kind.options.model_validate(step.get("with", {}), context={"message": message})
        except ValidationError as error:
            diagnostics.extend(_shape_diagnostic(document, e, kind.options, path) for e in error.errors())
    return options


# --------------------------------------------------------------------------- shape


def _shape_diagnostic(document: Document, error: Any, model: type[BaseModel] = Spec, within: Path = ()) -> Diagnostic:
    """One pydantic error of `model`, validating the document's data at `within`, as a diagnostic."""
    inner: Path = tuple(error["loc"])
    # A message field's errors name its type after the field (message.NAME.TYPE.KEY): the spec does not.
    field_type = inner[2] if len(inner) > 2 and inner[0] == "message" and inner[2] in FIELD_TYPES else None
    if field_type is not None:
        inner = (*inner[:2], *inner[3:])
    loc: Path = (*within, *inner)
    kind = error["type"]
    name = _dotted(loc)
    value = error.get("input")
    if kind in ("union_tag_invalid", "union_tag_not_found") and loc[:1] == ("message",):
        types = one_of(list(FIELD_TYPES))
        if kind == "union_tag_not_found":
            return Diagnostic.at(document.file, document.position_of(loc, key=True),
                                 f"missing required key \"type\" for {quoted(name)} section: one of {types}")
        tag = str(error["ctx"]["tag"])
        return Diagnostic.at(document.file, document.position_of((*loc, "type")),
                             f"invalid value {quoted(tag)} for {quoted(name + '.type')}. expected one of {types}"
                             + _did_you_mean(tag, list(FIELD_TYPES)))
    if kind == "extra_forbidden":
        key = str(loc[-1])
        valid = list(FIELD_TYPES[field_type].model_fields) if field_type else _keys_of_model_at(inner[:-1], model)
        message = f"unexpected key {quoted(key)} {_section(loc[:-1])}. expected one of {one_of(valid)}"
        return Diagnostic.at(document.file, document.position_of(loc, key=True), message + _did_you_mean(key, valid))
    if kind == "missing":
        message = f"missing required key {quoted(loc[-1])} {_section(loc[:-1])}"
        return Diagnostic.at(document.file, document.position_of(loc[:-1], key=True), message)
    if kind == "literal_error":
        # pydantic writes the choices as "'a', 'b' or 'c'" (strings) or "1" (numbers): keep the difference,
        # so `version: "1"` is not told to be "1".
        found = re.findall(r"'((?:[^'\\]|\\.)*)'|(-?\d+)", error["ctx"]["expected"])
        texts = sorted(text for text, number in found if not number)
        numbers = sorted(number for _text, number in found if number)
        shown = ", ".join([*numbers, *(quoted(t) for t in texts)])
        expected = f"expected one of {shown}" if len(found) > 1 else f"expected {shown}"
        message = f"invalid value {_show(value)} for {quoted(name)}. {expected}"
        return Diagnostic.at(document.file, document.position_of(loc), message + _did_you_mean(str(value), texts))
    return Diagnostic.at(document.file, document.position_of(loc), f"{quoted(name)} {_reason(kind, error, value)}")


_TYPE_REASONS = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}


def _reason(kind: str, error: Any, value: Any) -> str:
    if kind in _TYPE_REASONS:
        return f"{_TYPE_REASONS[kind]}, got {_show(value)}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        bound = next(iter(error["ctx"].values()))
        word = {"greater_than_equal": "at least", "greater_than": "more than",
                "less_than_equal": "at most", "less_than": "less than"}[kind]
        return f"must be {word} {bound}, got {_show(value)}"
    if kind == "too_short":
        return "must not be empty"
    message = str(error["msg"])
    return message[:1].lower() + message[1:] + f", got {_show(value)}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return quoted(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, tuple):
        return "a list"
    return str(value)


def _dotted(loc: Path) -> str:
    return ".".join(str(part) for part in loc) or "spec"


def _section(loc: Path) -> str:
    return f"for {quoted(_dotted(loc))} section" if loc else "at top level"


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {quoted(close[0])}?)" if close else ""


def _keys_of_model_at(loc: Path, model: type[BaseModel] = Spec) -> list[str]:
    """The keys allowed in the mapping at `loc` of `model`, read from the models' annotations."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = next((f for n, f in annotation.model_fields.items() if (f.alias or n) == str(part)), None)
            if field is None:
                return []
            annotation = field.annotation
        elif typing.get_origin(annotation) in (dict, tuple):
            annotation = typing.get_args(annotation)[-1 if typing.get_origin(annotation) is dict else 0]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_keys(annotation)
    return []


def model_keys(model: type[BaseModel]) -> list[str]:
    """The keys a mapping of `model` may hold, as a spec writes them (`with`, not `with_`)."""
    return [field.alias or name for name, field in model.model_fields.items()]


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] and Annotated[...] down to the type that holds the fields."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        else:
            return annotation


# --------------------------------------------------------------------------- meaning

_BUILD_SCRIPTS = ("schedule.sh", *CONTROL_SCRIPTS, ROWS_SCRIPT)
"""The scripts every build (or every build with ranged staging) writes, whatever its steps."""




_FIELD = TypeAdapter(MessageField)


def _field(raw: Any) -> MessageField | None:
    """A message field's declaration, or None when it has the wrong shape (the shape pass reports it)."""
    try:
        return _FIELD.validate_python(raw)
    except ValidationError:
        return None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class _MeaningCheck:
    """Cross-references and data flow, checked on whatever part of the data has the right shape."""

    def __init__(self, document: Document, options: dict[str, BaseModel]) -> None:
        self.document = document
        self.options = options
        """Each step's valid `with`, as its kind's model (none for a step whose `with` is not valid)."""
        data = _mapping(document.data)
        self.steps = {name: _mapping(step) for name, step in _mapping(data.get("steps")).items()}
        self.clusters = _mapping(data.get("clusters"))
        self.remotes = _mapping(data.get("remotes"))
        self.federated = data.get("federated") is True
        self.relay = data.get("chain") == "relay"
        # A "federated" of the wrong shape (`yes` is a string in YAML 1.2) is reported by the shape
        # pass; telling the user to set it as well would mislead.
        self.federation_known = isinstance(data.get("federated", False), bool)
        self.message_data = _mapping(data.get("message"))
        self.message = {name: field for name, field in
                        ((name, _field(raw)) for name, raw in self.message_data.items()) if field is not None}
        """The fields of the message that have the right shape."""
        self.found: list[Diagnostic] = []

    def error(self, path: Path, message: str, *, key: bool = False) -> None:
        self.found.append(Diagnostic.at(self.document.file, self.document.position_of(path, key=key), message))

    def run(self) -> list[Diagnostic]:
        self.check_names()
        self.check_buckets()
        self.check_message()
        for name, step in self.steps.items():
            self.check_step(name, step)
        self.check_actions()
        self.check_ranged_staging()
        self.check_cycles()
        return self.found

    def check_ranged_staging(self) -> None:
        """A remote that stages by ranges serves steps that read parts of each image: at least one that
        reads its header, then one that reads its rows (`Kind.reads_image`); for any other, it cannot."""
        reads = [kind.reads_image for name in self.steps if (kind := self.kind_of(name)) is not None]
        if len(reads) != len(self.steps) or (reads.count("header") >= 1 and reads.count("rows") == 1):
            return
        for name, remote in self.remotes.items():
            used = any(step.get("remote") == name and "images" in (kind.writes if kind else ())
                       for step, kind in ((step, self.kind_of(other)) for other, step in self.steps.items()))
            if used and _mapping(remote).get("staging") == "ranged":
                readers = listed([quoted(kind.action) for kind in KINDS.values() if kind.reads_image], "and")
                self.error(("remotes", name, "staging"),
                           f"remote {quoted(name)} stages by ranges, which needs steps that read images' headers, "
                           f"then one that reads their rows ({readers}); this spec's steps read whole images: use "
                           "\"staging: full\"")

    def check_names(self) -> None:
        for section, names, pattern, what in (
            ("steps", self.steps, STEP_NAME, "lower-case letters, digits and \"_\", starting with a letter"),
            ("clusters", self.clusters, CLUSTER_NAME, "letters, digits, \".\", \"_\" and \"-\""),
            ("remotes", self.remotes, REMOTE_NAME, "letters, digits and \"_\", starting with a letter"),
        ):
            for name in names:
                if not pattern.fullmatch(name):
                    self.error((section, name), f"invalid name {quoted(name)} in {quoted(section)}: use {what}", key=True)

    def check_buckets(self) -> None:
        """The bucket of objects.output and objects.results, by S3's naming rules (their shape, as
        3 to 63 lower-case letters, digits, "." and "-", is the shape pass's)."""
        objects = _mapping(_mapping(self.document.data).get("objects"))
        for field in ("output", "results"):
            place = objects.get(field)
            bucket = place.split("/", 1)[0] if isinstance(place, str) else ""
            problem = bucket_problem(bucket) if BUCKET_SHAPE.fullmatch(bucket) else None
            if problem:
                self.error(("objects", field), f"{quoted('objects.' + field)} starts with {quoted(bucket)}, "
                                               f"which is not an S3 bucket name: {problem}")

    def check_message(self) -> None:
        for name, raw in self.message_data.items():
            path: Path = ("message", name)
            if not FIELD_NAME.fullmatch(name):
                self.error(path, f"invalid name {quoted(name)} in \"message\": use lower-case letters, digits and "
                                 "\"_\", starting with a letter", key=True)
            elif name in RESERVED_NAMES:
                self.error(path, f"a message field may not be named {quoted(name)}: schedule.sh keeps "
                                 f"{one_of(RESERVED_NAMES)} for each object", key=True)
            field = self.message.get(name)
            if field is None:
                continue
            has_default = _mapping(raw).get("default") is not None
            if field.required == has_default:
                self.error((*path, "required") if field.required else path,
                           f"field {quoted(name)} of the message is required, so it takes no default" if field.required
                           else f"field {quoted(name)} of the message needs \"required: true\" or a \"default\"",
                           key=True)
            if isinstance(field, IntegerField) and field.bounds()[0] > field.bounds()[1]:
                self.error((*path, "minimum"), f"field {quoted(name)} of the message has a minimum above its maximum")
            elif has_default and field.default_text is not None and (problem := field.refuses(field.default_text)):
                self.error((*path, "default"), f"the default of field {quoted(name)} of the message, "
                                               f"{quoted(field.default_text)}, {problem}")
            if isinstance(field, KeyField) and field.remote not in self.remotes:
                self.unknown((*path, "remote"), "remote", field.remote, self.remotes)

    def check_needs(self, name: str, step: dict[str, Any], kind: Kind) -> None:
        """The message has one field of each type the step's kind reads (a key field: in the step's remote)."""
        if len(self.message) != len(self.message_data):
            return  # a field of the wrong shape may be the one: the shape pass reports it
        remote = step.get("remote") if kind.remote else None
        for field_type in kind.needs:
            if field_type == "key" and remote not in self.remotes:
                continue  # no remote, or an unknown one: reported already
            found = fields_of(self.message, field_type, remote if isinstance(remote, str) else None)
            if len(found) == 1:
                continue
            what = f"one {quoted(field_type)} field of the message" + (
                f" in its remote {quoted(remote)}" if field_type == "key" else "")
            has = f"has {len(found)}: {', '.join(quoted(f) for f in found)}" if found else "has none"
            self.error(("steps", name, "action"), f"step {quoted(name)} ({kind.action}) reads {what}, and the "
                                                  f"message {has}")

    def check_step(self, name: str, step: dict[str, Any]) -> None:
        path: Path = ("steps", name)
        cluster = step.get("cluster")
        # No clusters, or no partitions, is reported by the shape pass: not once more for every step.
        if isinstance(cluster, str) and self.clusters and cluster not in self.clusters:
            self.unknown((*path, "cluster"), "cluster", cluster, self.clusters)
        partition = step.get("partition")
        if isinstance(partition, str) and isinstance(cluster, str) and cluster in self.clusters:
            partitions = _mapping(self.clusters[cluster]).get("partitions")
            if isinstance(partitions, tuple) and partitions and partition not in partitions:
                self.unknown((*path, "partition"), "partition", partition,
                             [p for p in partitions if isinstance(p, str)], where=f" on cluster {quoted(cluster)}")
        action = step.get("action")
        remote = step.get("remote")
        kind = KINDS.get(action) if isinstance(action, str) else None
        if kind is not None and kind.needs and self.message_data:
            self.check_needs(name, step, kind)
        if kind is not None and kind.remote and "remote" not in step:
            self.error(path, f"step {quoted(name)} (action {quoted(action)}) needs a \"remote\". "
                             f"expected one of {one_of(self.remotes)}", key=True)
        if kind is not None and not kind.container and "container" in step:
            self.error((*path, "container"), f"a {quoted(action)} step runs {kind.script_of(name, None)} itself: "
                                             "it takes no container", key=True)
        with_remote = listed([quoted(action) for action in remote_actions()])
        if kind is not None and not kind.remote and "rclone_flags" in step:
            self.error((*path, "rclone_flags"), f"\"rclone_flags\" are only for steps with action {with_remote}, "
                                                f"not {quoted(action)}", key=True)
        if kind is not None and not kind.remote and "remote" in step:
            self.error((*path, "remote"), f"\"remote\" is only for steps with action {with_remote}, "
                                          f"not {quoted(action)}", key=True)
        elif isinstance(remote, str) and remote not in self.remotes:
            self.unknown((*path, "remote"), "remote", remote, self.remotes)
        for parent, _kind in _mapping(step.get("depends_on")).items():
            where: Path = (*path, "depends_on", parent)
            if parent == name:
                self.error(where, f"step {quoted(name)} depends on itself", key=True)
            elif parent not in self.steps:
                self.unknown(where, "step", parent, self.steps, key=True)
            else:
                self.check_crossing(name, step, parent, where)

    def check_crossing(self, name: str, step: dict[str, Any], parent: str, where: Path) -> None:
        here, there = step.get("cluster"), self.steps[parent].get("cluster")
        if self.federated or self.relay or not self.federation_known:
            return
        if here not in self.clusters or there not in self.clusters or here == there:
            return
        self.error(where, f"step {quoted(name)} on cluster {quoted(here)} depends on step {quoted(parent)} on "
                          f"cluster {quoted(there)}, but the clusters are not federated: Slurm on {quoted(here)} "
                          f"would not know the job id and would count the dependency as satisfied at once. "
                          f"set \"federated: true\" if they form a federation, \"chain: relay\" to have each job "
                          f"submit the next, or run both steps on one cluster",
                   key=True)

    def unknown(self, path: Path, what: str, value: str, choices: Any, *, key: bool = False, where: str = "") -> None:
        names = sorted(str(c) for c in choices)
        expected = f"expected one of {one_of(names)}" if names else "none are defined"
        self.error(path, f"unknown {what} {quoted(value)}{where}. {expected}{_did_you_mean(value, names)}", key=key)

    def check_actions(self) -> None:
        by_action: dict[str, list[str]] = {}
        for name, step in self.steps.items():
            action = step.get("action")
            if isinstance(action, str) and action in KINDS:
                by_action.setdefault(action, []).append(name)
        if not self.steps:
            return
        repeats = {extra for action, names in by_action.items() if KINDS[action].once for extra in names[1:]}
        for action, names in by_action.items():
            for extra in (name for name in names if name in repeats):
                self.error(("steps", extra, "action"), f"step {quoted(extra)} repeats action {quoted(action)} "
                                                       f"of step {quoted(names[0])}: each action runs once")
        self.check_data_flow(repeats)
        self.check_shared_scripts(repeats)

    def kind_of(self, name: str) -> Kind | None:
        """The kind of step `name`, or None if its action names none (the shape pass reports that)."""
        action = self.steps[name].get("action")
        return KINDS.get(action) if isinstance(action, str) else None

    def flow(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What step `name` reads and writes; a step whose settings decide it but are not valid reads nothing
        here (their problems are reported already) and may write whatever its kind may."""
        kind = KINDS[self.steps[name]["action"]]
        if kind.flow is not None and name not in self.options:
            return (), kind.writes
        return kind.flow_of(self.options.get(name))

    def check_data_flow(self, repeats: set[str]) -> None:
        """Each step reads what a step of the spec writes, after it; no two steps write the same data (a
        step that repeats a kind that runs once is reported as such, not once more here)."""
        steps = [name for name in self.steps if self.kind_of(name) is not None]
        flows = {name: self.flow(name) for name in steps}
        writer: dict[str, str] = {}
        doubled: set[str] = set()
        for name in steps:
            for data in flows[name][1]:
                if data in writer and name not in repeats:
                    self.error(("steps", name), f"steps {quoted(writer[data])} and {quoted(name)} both write "
                                                f"{quoted(data)}: a run has one of each", key=True)
                    doubled.add(data)
                writer.setdefault(data, name)
        # A step without a valid action (reported by the shape pass) may be the missing writer.
        if len(steps) != len(self.steps):
            return
        for name in steps:
            action = self.steps[name]["action"]
            for data in flows[name][0]:
                source = writer.get(data)
                if source is None:
                    kinds = " or ".join(quoted(kind) for kind in writers_of(data))
                    self.error(("steps", name), f"step {quoted(name)} ({action}) reads {quoted(data)}, which no "
                                                f"step of the spec writes" + (f": add a {kinds} step" if kinds else ""),
                               key=True)
                elif data not in doubled and self.dependencies_known(name) and source not in self.ancestors(name):
                    self.error(("steps", name), f"step {quoted(name)} ({action}) reads what step {quoted(source)} "
                                                f"({self.steps[source]['action']}) writes, so it must depend on it",
                               key=True)

    def check_shared_scripts(self, repeats: set[str]) -> None:
        """Steps that run one script configure it alike; a script named after its step is its alone, and
        no step script takes the name of a script every build writes."""
        first_user: dict[str, str] = {}
        for name in self.steps:
            kind = self.kind_of(name)
            if kind is None or name in repeats:
                continue
            script = kind.script_of(name, self.options.get(name))
            if not isinstance(kind.script, str) and script in _BUILD_SCRIPTS:
                self.error(("steps", name), f"step {quoted(name)} would run {script}, which every build writes "
                                            "itself: name the step, or its script, otherwise", key=True)
                continue
            if script not in first_user:
                first_user[script] = name
                continue
            other = first_user[script]
            other_kind = KINDS[self.steps[other]["action"]]
            if not (isinstance(kind.script, str) and isinstance(other_kind.script, str)):
                self.error(("steps", name), f"steps {quoted(other)} and {quoted(name)} would both run {script}: "
                                            "name one of their scripts otherwise (\"with: {script: ...}\")", key=True)
                continue
            for field in ("modules", "container"):
                if self.steps[name].get(field) != self.steps[other].get(field):
                    self.error(("steps", name, field) if field in self.steps[name] else ("steps", name),
                               f"steps {quoted(other)} and {quoted(name)} both run {script}, so their "
                               f"{quoted(field)} must be the same", key=True)

    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        pending = [name]
        while pending:
            for parent in _mapping(self.steps.get(pending.pop(), {}).get("depends_on")):
                if parent in self.steps and parent not in seen:
                    seen.add(parent)
                    pending.append(parent)
        return seen

    def dependencies_known(self, name: str) -> bool:
        """Whether every `depends_on` from `name` up is a mapping of existing steps (else it is reported already).

        A step with an unknown key counts as unknown too: the key may be a misspelt `depends_on`.
        """
        for step in (name, *self.ancestors(name)):
            fields = self.steps.get(step, {})
            depends_on = fields.get("depends_on", {})
            if not isinstance(depends_on, dict) or any(parent not in self.steps for parent in depends_on):
                return False
            if any(key not in model_keys(Step) for key in fields):
                return False
        return True

    def check_cycles(self) -> None:
        reported: set[frozenset[str]] = set()
        for cycle in _cycles(self.steps):
            if frozenset(cycle) in reported:
                continue
            reported.add(frozenset(cycle))
            first = cycle[0]
            self.error(("steps", first, "depends_on", cycle[1] if len(cycle) > 1 else first),
                       "dependency cycle: " + " -> ".join(quoted(s) for s in (*cycle, first)), key=True)


def _cycles(steps: dict[str, dict[str, Any]]) -> Iterator[list[str]]:
    """Each elementary cycle found by depth-first search, rotated to start at its first-declared step."""
    order = {name: index for index, name in enumerate(steps)}
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(name: str) -> Iterator[list[str]]:
        state[name] = "open"
        stack.append(name)
        for parent in _mapping(steps[name].get("depends_on")):
            if parent not in steps or parent == name:
                continue
            if state.get(parent) == "open":
                cycle = stack[stack.index(parent):]
                start = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                yield cycle[start:] + cycle[:start]
            elif parent not in state:
                yield from visit(parent)
        stack.pop()
        state[name] = "done"

    for name in steps:
        if name not in state:
            yield from visit(name)
