"""The notify kind: once the run has ended, a notice of what became of it, one object in the bucket
where a front end reads it (`notify.sh`, with rclone).

It reads what sync out leaves in the run directory, so its step must depend on the sync-out step:
with `afterany`, a run that failed is told of too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..diagnostics import quoted
from ..fields import bucket_problem
from ..layout import RUN_DIR
from ..words import Word
from . import Kind, Planned

if TYPE_CHECKING:
    from ..spec import Spec, Step

_PLACE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._-]+)*/?")
"""BUCKET or BUCKET/PREFIX/, as objects.results is written."""


def _place(value: str) -> str:
    if not _PLACE.fullmatch(value):
        raise ValueError(f"must be BUCKET or BUCKET/PREFIX/, got {quoted(value)}")
    bucket = value.split("/", 1)[0]
    problem = bucket_problem(bucket)
    if problem:
        raise ValueError(f"starts with {quoted(bucket)}, which is not an S3 bucket name: {problem}")
    return value


class NotifySettings(BaseModel):
    """Where a notify step puts each run's notice."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    to: Annotated[str, AfterValidator(_place)] = Field(
        json_schema_extra={"pattern": f"^{_PLACE.pattern}$"},
        description="Where the notices go in the step's remote, as `BUCKET` or `BUCKET/PREFIX/`: a run's notice "
        "is `BUCKET/PREFIX/<run id>.json`, sent once, when the step runs. It holds the run's `results.json` (the "
        "objects' outcomes; an object sync out did not upload has failed), its `result` (`succeeded` when every "
        "object's crop is in the bucket, else `failed`) and its `results_key` (null when sync out uploaded "
        "nothing).",
    )


def _notify(_spec: Spec, step: Step) -> Planned:
    prefix = step.with_.to.rstrip("/") + "/"
    return Planned((Word.of(RUN_DIR), Word.of(f"{step.remote}:{prefix}")))


NOTIFY = Kind("notify", "notify.sh", "notify.sh.j2", "rclone", _notify, remote=True, container=False,
              reads=("results",), options=NotifySettings,
              exits=(("TOOL_FAILED", "the notice could not be put"),),
              summary="notify (rclone puts a notice of the run's outcome into the remote, `notify.sh`)",
              note="A notify step is optional: give it `afterany` on the sync-out step, so that a run that "
              "failed is told of too.")
