"""Staging: sync in copies the run's images from a remote to scratch, sync out copies its results back.

Both run `sync.sh`, with rclone, and need a remote. Sync in stages by ranges when its remote says so
(`ranged.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..layout import IMAGE_DIR, IMAGES, OUT_DIR, RUN_DIR, SCRATCH, FileList
from ..words import Word
from . import Kind, Planned, field_of, ranged

if TYPE_CHECKING:
    from ..spec import Spec, Step


def _sync_in(spec: Spec, step: Step) -> Planned:
    # A listed image missing from the bucket is not the step's failure but its objects': sync in
    # records it for each of them.
    return Planned((Word.of("--images"), Word.of(RUN_DIR), Word.of(f"{step.remote}:"),
                    Word.of(SCRATCH, IMAGE_DIR.rstrip("/"))), file_list=FileList(IMAGES, field_of(spec, "key", step)))


def _sync_out(_spec: Spec, step: Step) -> Planned:
    # sync-out uploads the run's results and the objects' outputs made.
    return Planned((Word.of("--results"), Word.of(RUN_DIR), Word.of(RUN_DIR, OUT_DIR), Word.of(f"{step.remote}:")))


STAGING_EXITS = (("NO_SUCH_FILE", "the image is not in the bucket"),
                 ("TOOL_FAILED", "a transfer failed or was incomplete"))
SYNC_IN = Kind("sync-in", "sync.sh", "sync.sh.j2", "rclone", _sync_in, remote=True, writes=("images",),
               needs=("key",), exits=STAGING_EXITS,
               summary="sync-in (rclone copies the images from the remote to scratch, `sync.sh`)",
               refine=ranged.refine, extra_scripts=ranged.scripts)
SYNC_OUT = Kind("sync-out", "sync.sh", "sync.sh.j2", "rclone", _sync_out, remote=True, reads=("outputs",),
                writes=("results",), exits=STAGING_EXITS,
                summary="sync-out (rclone copies the objects' outputs, such as the crops, and `results.json` to the "
                "remote, `sync.sh`)")
