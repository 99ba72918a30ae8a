"""The astronomy kinds: world to pixel (wcstools' sky2xy) and crop (gnuastro's astcrop).

Each handles every object of a run in one job, its tool running once per image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..layout import CROP, OUTPUT_PREFIX, PINNED, PIXELS, Output
from ..words import ObjectField, PositionDigest, RequestField, RequestStem, Word
from . import Kind, Planned, field_of, images_field

if TYPE_CHECKING:
    from ..spec import Spec, Step


def _world_to_pixel(spec: Spec, _step: Step) -> Planned:
    return Planned((PINNED, Word.of(ObjectField(field_of(spec, "right-ascension"))),
                    Word.of(ObjectField(field_of(spec, "declination"))), PIXELS), per_object=True)


def _crop(spec: Spec, _step: Step) -> Planned:
    label = field_of(spec, "label")
    # A crop's key: the output location (none: beside its image), its image's key without the extension, its
    # label and its position's digest (the position and the width), so each crop of an image has its own.
    key = Word.of(OUTPUT_PREFIX, RequestStem(images_field(spec)), "_", RequestField(label), "_", PositionDigest(),
                  "_crop.fits")
    return Planned((PINNED, CROP, PIXELS, Word.of(ObjectField(label)), Word.of(str(spec.objects.crop_width))),
                   per_object=True, output=Output("crop", ".fits", key))


WORLD_TO_PIXEL = Kind("world-to-pixel", "get_world_2_pix.sh", "world_to_pixel.sh.j2", "sky2xy", _world_to_pixel,
                      reads=("images",), writes=("pixels",), reads_image="header",
                      needs=("right-ascension", "declination"),
                      exits=(("OFF_IMAGE", "sky2xy off image/offscale"), ("BAD_IMAGE", "not FITS, no WCS")),
                      summary="world-to-pixel (sky2xy, `get_world_2_pix.sh`)")
# crop reads the images too, which world to pixel reads before it: reading its pixels says both.
CROP_KIND = Kind("crop", "crop_image_around_pixels.sh", "crop.sh.j2", "astcrop", _crop, reads=("pixels",),
                 writes=("outputs",), reads_image="rows", needs=("label",),
                 exits=(("OFF_IMAGE", "astcrop no overlap"),),
                 summary="crop (astcrop, `crop_image_around_pixels.sh`)")
