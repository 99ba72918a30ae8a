"""The kinds of step: one declaration per kind, holding everything that is specific to it.

A step's `action` names a kind of `KINDS`. The spec, the checks, the planner and the renderer ask
this registry what a kind runs and how, and name no kind themselves; adding a kind is one more
declaration (and its template), changing no other kind's code.

(Ranged staging, `plan._ranged`, still names the kinds it is about: moving it here is the next step.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .fields import KeyField, MessageField
from .layout import CROP, IMAGE_DIR, IMAGES, OUT_DIR, PINNED, PIXELS, RUN_DIR, SCRATCH, FileList
from .words import ObjectField, Word

if TYPE_CHECKING:
    from .spec import Spec, Step


@dataclass(frozen=True)
class Planned:
    """What a kind's planning decides for one step."""

    arguments: tuple[Word, ...]
    """The script's arguments: for a per-object step, one object's (with ObjectField parts)."""
    file_list: FileList | None = None
    """A list schedule.sh writes into the run directory for the step, or None."""
    per_object: bool = False
    """The step handles each object of the run (one batch file, a line per object), not the run once."""


@dataclass(frozen=True)
class Kind:
    """A kind of step."""

    action: str
    """The name a step gives as its `action`."""
    script: str
    """The script its step runs: steps whose kinds share a script must configure it alike."""
    template: str | None
    """The template that renders `script`; None for a script every build writes anyway (status.sh)."""
    tool: str | None
    """The command the script runs, from PATH or in the step's container (None: it runs none)."""
    plan: Callable[[Spec, Step], Planned]
    summary: str
    """What the kind does, for the spec reference (`steps.NAME.action`)."""
    note: str = ""
    """More for the spec reference, after the list of kinds."""
    required: bool = False
    """A spec has exactly one step of this kind (any other kind: at most one)."""
    remote: bool = False
    """Its step needs a `remote`, and may take `rclone_flags`; no other kind's step takes either."""
    container: bool = True
    """Its step may run its tool in a `container`."""
    reads: tuple[str, ...] = ()
    """The kinds whose output its step reads, so it must depend on their step."""
    templates: Path | None = None
    """The directory that holds `template`, when it is not ltsflow's own templates directory."""
    needs: tuple[str, ...] = ()
    """The types of message field its step reads (`compiler/fields.py`): the message must have exactly one
    field of each (a `key` field: in the step's remote), which its planning finds with `field_of`."""


# ----------------------------------------------------------------- the message fields a kind reads

def field_of(spec: Spec, field_type: str, step: Step | None = None) -> str:
    """The name of the message's one field of `field_type` (a key field: in `step`'s remote)."""
    return fields_of(spec.message, field_type, step.remote if step else None)[0]


def fields_of(message: Mapping[str, MessageField], field_type: str, remote: str | None = None) -> list[str]:
    """The names of the fields of `field_type` in `message` (a key field: in `remote`)."""
    return [name for name, field in message.items()
            if field.type == field_type and (not isinstance(field, KeyField) or field.remote == remote)]


def _sync_in(spec: Spec, step: Step) -> Planned:
    # A listed image missing from the bucket is not the step's failure but its objects': sync in
    # records it for each of them.
    return Planned((Word.of("--images"), Word.of(RUN_DIR), Word.of(f"{step.remote}:"),
                    Word.of(SCRATCH, IMAGE_DIR.rstrip("/"))), file_list=FileList(IMAGES, field_of(spec, "key", step)))


def _world_to_pixel(spec: Spec, _step: Step) -> Planned:
    return Planned((PINNED, Word.of(ObjectField(field_of(spec, "right-ascension"))),
                    Word.of(ObjectField(field_of(spec, "declination"))), PIXELS), per_object=True)


def _crop(spec: Spec, _step: Step) -> Planned:
    return Planned((PINNED, CROP, PIXELS, Word.of(ObjectField(field_of(spec, "label"))),
                    Word.of(str(spec.objects.crop_width))), per_object=True)


def _sync_out(_spec: Spec, step: Step) -> Planned:
    # sync-out uploads the run's results and the crops made.
    return Planned((Word.of("--results"), Word.of(RUN_DIR), Word.of(RUN_DIR, OUT_DIR), Word.of(f"{step.remote}:")))


def _report(_spec: Spec, _step: Step) -> Planned:
    return Planned((Word.of("--report"), Word.of(RUN_DIR)))


KINDS: dict[str, Kind] = {kind.action: kind for kind in (
    Kind("sync-in", "sync.sh", "sync.sh.j2", "rclone", _sync_in, required=True, remote=True, needs=("key",),
         summary="sync-in (rclone copies the images from the remote to scratch, `sync.sh`)"),
    Kind("world-to-pixel", "get_world_2_pix.sh", "world_to_pixel.sh.j2", "sky2xy", _world_to_pixel,
         required=True, reads=("sync-in",), needs=("right-ascension", "declination"),
         summary="world-to-pixel (sky2xy, `get_world_2_pix.sh`)"),
    Kind("crop", "crop_image_around_pixels.sh", "crop.sh.j2", "astcrop", _crop, required=True,
         reads=("world-to-pixel",), needs=("label",), summary="crop (astcrop, `crop_image_around_pixels.sh`)"),
    Kind("sync-out", "sync.sh", "sync.sh.j2", "rclone", _sync_out, required=True, remote=True, reads=("crop",),
         summary="sync-out (rclone copies the crops and `results.json` to the remote, `sync.sh`)"),
    Kind("report", "status.sh", None, None, _report, container=False, summary="`report`",
         note="A report step is optional: it runs `status.sh --report`, which writes `RUN_DIR/report.txt` with "
         "every job's final state and a last line `result: succeeded` or `result: failed (...)` (on a full or "
         "read-only scratch it prints the report to its log, says so, and exits 10); give it `afterany`."),
)}
"""Every kind, by action, in the order the spec reference and the checks list them."""


def kind_of(action: str) -> Kind:
    return KINDS[action]


def required_actions() -> tuple[str, ...]:
    return tuple(kind.action for kind in KINDS.values() if kind.required)


def remote_actions() -> tuple[str, ...]:
    return tuple(kind.action for kind in KINDS.values() if kind.remote)


def template_directories() -> tuple[Path, ...]:
    """The directories of the kinds' templates that are not in ltsflow's own, once each."""
    return tuple(dict.fromkeys(kind.templates for kind in KINDS.values() if kind.templates is not None))


def describe() -> str:
    """The spec reference's text for `steps.NAME.action`."""
    listed = _listed([kind.summary for kind in KINDS.values()], "or")
    required = _listed([f"`{action}`" for action in required_actions()], "and")
    once = (f"A spec has exactly one step of each of {required}, and at most one of any other."
            if required else "A spec has at most one step of each.")
    notes = "".join(f" {kind.note}" for kind in KINDS.values() if kind.note)
    return f"What the step does: {listed}. {once}{notes}"


def _listed(items: list[str], last: str) -> str:
    """`a`, `a or b`, `a, b or c`."""
    return f"{', '.join(items[:-1])} {last} {items[-1]}" if len(items) > 1 else "".join(items)
