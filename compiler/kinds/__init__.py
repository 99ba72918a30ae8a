"""The kinds of step: one declaration per kind, holding everything that is specific to it.

A step's `action` names a kind of `KINDS`. The spec, the checks, the planner and the renderer ask
this registry what a kind runs and how, and name no kind themselves; adding a kind is one more
declaration (and its template), changing no other kind's code.

A kind's own settings are its `options` model, written as its step's `with` mapping. A kind may
rewrite the jobs the planner made of every step (`refine`) and add scripts of its own
(`extra_scripts`): ranged staging, the sync-in kind's (`ranged.py`), does both, and finds the steps it
stages for by what their kinds declare they read of an image (`reads_image`), not by their names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from ..diagnostics import listed
from ..fields import KeyField, MessageField
from ..layout import FileList, Output
from ..words import Word

if TYPE_CHECKING:
    from ..graph import StepScript
    from ..plan import Job
    from ..spec import Spec, Step


@dataclass(frozen=True)
class Planned:
    """What a kind's planning decides for one step."""

    arguments: tuple[Word, ...]
    """The script's arguments: for a per-object step, one object's (with ObjectField parts)."""
    file_list: FileList | None = None
    """A list schedule.sh writes into the run directory for the step, or None."""
    per_object: bool = False
    """The step handles each object of the run (one batch file, a line per object), not the run once."""
    output: Output | None = None
    """The objects' outputs the step writes, which sync-out uploads; None: it writes none."""
    tool: str | None = None
    """The command the step's script runs, when its settings name it (else its kind's `tool`)."""
    settings: Any = None
    """What the step's template lays out beyond its tool (frozen plain data: a kind's own dataclass), or None."""


@dataclass(frozen=True)
class Kind:
    """A kind of step."""

    action: str
    """The name a step gives as its `action`."""
    script: str | Callable[[str, Any], str]
    """The script its step runs: a name (steps whose kinds share a script must configure it alike), or
    the step's own, from its name and its settings (None when they are not valid)."""
    template: str | None
    """The template that renders `script`; None for a script every build writes anyway (status.sh)."""
    tool: str | None
    """The command the script runs, from PATH or in the step's container (None: it runs none, or its step's
    settings name it: `Planned.tool`)."""
    plan: Callable[[Spec, Step], Planned]
    summary: str
    """What the kind does, for the spec reference (`steps.NAME.action`)."""
    note: str = ""
    """More for the spec reference, after the list of kinds."""
    once: bool = True
    """A spec has at most one step of this kind."""
    remote: bool = False
    """Its step needs a `remote`, and may take `rclone_flags`; no other kind's step takes either."""
    container: bool = True
    """Its step may run its tool in a `container`."""
    reads: tuple[str, ...] = ()
    """The data its step reads ("images", "pixels", "outputs"): a step of the spec must write each, and
    the step must depend on it."""
    writes: tuple[str, ...] = ()
    """The data its step writes (or may write, for a kind whose settings say: see `flow`). A run has one of
    each: no two steps of a spec write the same."""
    flow: Callable[[Any], tuple[tuple[str, ...], tuple[str, ...]]] | None = None
    """What a step of this kind reads and writes, from its settings, when they decide it (within `reads` and
    `writes`); None: always `reads` and `writes`."""
    templates: Path | None = None
    """The directory that holds `template`, when it is not ltsflow's own templates directory."""
    options: type[BaseModel] | None = None
    """The model of its step's `with` mapping, the kind's own settings (frozen, unknown keys refused,
    every field described: the spec reference and the JSON Schema come from it); None: its step takes
    no `with`. The step's `with_` holds the validated model."""
    reads_image: Literal["header", "rows"] | None = None
    """What its per-object step reads of each object's image (its first argument), when that is less than
    all of it: "header", the header alone (world to pixel); "rows", the rows around the pixel position in
    its XY_FILE, as crop reads them (its arguments IMAGE, OUT, XY_FILE, LABEL, WIDTH, which fetch_rows.sh
    --rows reads and writes back with the window for IMAGE). Ranged staging fetches only these parts
    (`ranged.py`): for any steps that read headers, and one that reads rows."""
    refine: Callable[[Spec, str, tuple[Job, ...]], tuple[Job, ...]] | None = None
    """Rewrites the planned jobs, given the name of its step, once every step's job is planned (in
    dependency order) and before the relay chain rewrites them: it may change any job and add jobs.
    The planner calls it for each step of the kind, in declaration order, and knows nothing of what
    it does."""
    extra_scripts: Callable[[Spec, str], tuple[StepScript, ...]] | None = None
    """The scripts its step's jobs run besides `script`, given the name of its step (a rewritten job may
    run them)."""
    exits: tuple[tuple[str, str], ...] = ()
    """What its step means by an exit code (`compiler/exits.py`), by the code's name: each script's --help
    lists them, in brackets, after the code's meaning ("OFF_IMAGE", "sky2xy off image/offscale")."""
    needs: tuple[str, ...] = ()
    """The types of message field its step reads (`compiler/fields.py`): the message must have exactly one
    field of each (a `key` field: in the step's remote), which its planning finds with `field_of`."""

    def script_of(self, step: str, settings: Any) -> str:
        """The script step `step` runs, with its settings (None when they are not valid)."""
        return self.script if isinstance(self.script, str) else self.script(step, settings)

    def flow_of(self, settings: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What a step of this kind with these settings reads and writes."""
        return self.flow(settings) if self.flow is not None else (self.reads, self.writes)


def kind_of(action: str) -> Kind:
    return KINDS[action]


# ----------------------------------------------------------------- the message fields a kind reads

def field_of(spec: Spec, field_type: str, step: Step | None = None) -> str:
    """The name of the message's one field of `field_type` (a key field: in `step`'s remote)."""
    return fields_of(spec.message, field_type, step.remote if step else None)[0]


def images_field(spec: Spec) -> str:
    """The name of the message's field of the run's images: the key field the step that stages them reads
    (the step whose kind needs one), else the message's first key field."""
    reader = next((step for step in spec.steps.values() if "key" in kind_of(step.action).needs), None)
    return field_of(spec, "key", reader) if reader else next(
        name for name, field in spec.message.items() if field.type == "key")


def fields_of(message: Mapping[str, MessageField], field_type: str, remote: str | None = None) -> list[str]:
    """The names of the fields of `field_type` in `message` (a key field: in `remote`)."""
    return [name for name, field in message.items()
            if field.type == field_type and (not isinstance(field, KeyField) or field.remote == remote)]


def writers_of(data: str) -> tuple[str, ...]:
    """The kinds whose step writes (or may write) `data`."""
    return tuple(kind.action for kind in KINDS.values() if data in kind.writes)


def remote_actions() -> tuple[str, ...]:
    return tuple(kind.action for kind in KINDS.values() if kind.remote)


def template_directories() -> tuple[Path, ...]:
    """The directories of the kinds' templates that are not in ltsflow's own, once each."""
    return tuple(dict.fromkeys(kind.templates for kind in KINDS.values() if kind.templates is not None))


def describe() -> str:
    """The spec reference's text for `steps.NAME.action`."""
    kinds = listed([kind.summary for kind in KINDS.values()], "or")
    once = listed([f"`{kind.action}`" for kind in KINDS.values() if kind.once], "and")
    data = dict.fromkeys(name for kind in KINDS.values() for name in (*kind.writes, *kind.reads))
    flows = "; ".join(f"`{name}`, written by {listed([f'`{a}`' for a in writers_of(name)], 'or')}"
                      for name in data if writers_of(name))
    flow = (f"A step that reads data needs a step of the spec that writes it, and must depend on it: {flows}. "
            "No two steps write the same data.")
    notes = "".join(f" {kind.note}" for kind in KINDS.values() if kind.note)
    return f"What the step does: {kinds}. A spec has at most one step of each of {once}. {flow}{notes}"



# The kinds ltsflow ships, each in its own module; a kind of one's own is one more module and one more
# entry here (or, for a test, an entry of KINDS). Last, so that a kind's module may import what is above.
from .astronomy import CROP_KIND, WORLD_TO_PIXEL  # noqa: E402
from .command import COMMAND  # noqa: E402
from .notify import NOTIFY  # noqa: E402
from .report import REPORT  # noqa: E402
from .staging import SYNC_IN, SYNC_OUT  # noqa: E402

KINDS: dict[str, Kind] = {kind.action: kind for kind in (SYNC_IN, WORLD_TO_PIXEL, CROP_KIND, COMMAND, SYNC_OUT,
                                                          REPORT, NOTIFY)}
"""Every kind, by action, in the order the spec reference and the checks list them."""
