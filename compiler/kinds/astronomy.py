"""The astronomy kinds: world to pixel (wcstools' sky2xy) and crop (gnuastro's astcrop).

Each handles every object of a run in one job, its tool running once per image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..layout import CROP, PINNED, PIXELS
from ..words import ObjectField, Word
from . import Kind, Planned

if TYPE_CHECKING:
    from ..spec import Spec, Step


def _world_to_pixel(_spec: Spec, _step: Step) -> Planned:
    return Planned((PINNED, Word.of(ObjectField("ra")), Word.of(ObjectField("dec")), PIXELS), per_object=True)


def _crop(spec: Spec, _step: Step) -> Planned:
    return Planned((PINNED, CROP, PIXELS, Word.of(ObjectField("label")), Word.of(str(spec.objects.crop_width))),
                   per_object=True)


WORLD_TO_PIXEL = Kind("world-to-pixel", "get_world_2_pix.sh", "world_to_pixel.sh.j2", "sky2xy", _world_to_pixel,
                      required=True, reads=("sync-in",), reads_image="header",
                      summary="world-to-pixel (sky2xy, `get_world_2_pix.sh`)")
CROP_KIND = Kind("crop", "crop_image_around_pixels.sh", "crop.sh.j2", "astcrop", _crop, required=True,
                 reads=("world-to-pixel",), reads_image="rows",
                 summary="crop (astcrop, `crop_image_around_pixels.sh`)")
