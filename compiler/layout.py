"""The run directory's layout: where a run's files are, as words the scripts expand at run time.

Both the planner and the kinds' planning (`kinds.py`) name these paths; they live here, apart from
both, so that neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .words import EveryObject, ObjectField, Variable, Word

SCRATCH = Variable("SCRATCH")
RUN_DIR = Variable("RUN_DIR")
OUTPUT_PREFIX = Variable("OUTPUT_PREFIX")
"""What schedule.sh puts before an output's key that starts with it: the spec's `objects.output` as a key
prefix ("" beside each image)."""
IMAGE_DIR = "/images/"
OUT_DIR = "/out"


@dataclass(frozen=True)
class FileList:
    """A list schedule.sh writes into the run directory: one object field per line, each once."""

    name: str
    field: str

    @property
    def path(self) -> Word:
        return Word.of(RUN_DIR, "/", self.name)

    @property
    def values(self) -> Word:
        return Word((EveryObject(self.field),))


IMAGES = "sync_in.list"
"""The run's images, one a line: a sync-in step's list, of its key field (line N, from 0, is image N)."""
PINNED = Word.of(RUN_DIR, "/images/", ObjectField("image"), ".fits")
"""The run's own copy of an object's image, named by the image's index: sync in pins (hard-links) the
cache entry of the version it fetched there, and every later step reads only it. Local names are
never made from keys (a key may be 1024 bytes; a file name, 255)."""
CROP = Word.of(RUN_DIR, OUT_DIR, "/", ObjectField("index"), ".fits")
"""An object's crop, named by the object's index; sync out uploads it to its key."""
FAILED = Word.of(RUN_DIR, "/failed/", ObjectField("index"))
"""An object's outcome file: written, with the exit code and message, when the object fails."""
PIXELS = Word.of(RUN_DIR, "/xy/", ObjectField("index"), ".xy")
"""An object's pixel position, as world to pixel writes it and crop reads it."""


@dataclass(frozen=True)
class Output:
    """The objects' outputs a step writes: object N's is RUN_DIR/out/N<suffix>, which sync out uploads
    to its key."""

    name: str
    """What an output is called in messages and the run directory's files ("crop": "no crop was made",
    objects.tsv's column crop_key)."""
    suffix: str
    key: Word
    """An object's key, from its request's fields (RequestField and RequestStem parts), its position's
    digest (PositionDigest) and OUTPUT_PREFIX: the requests with one key are one object, done once."""
