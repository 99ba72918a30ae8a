"""A command line over tests/fitsimages.py, for the bats tests.

  python -m tests.fitstool make IMAGE NX NY RA DEC       a TAN image centred on RA, DEC (zeros in a block)
  python -m tests.fitstool make-no-wcs IMAGE             a valid image without any WCS keyword
  python -m tests.fitstool pixel IMAGE RA DEC            astropy's 1-based x y (world_to_pixel + 1)
  python -m tests.fitstool same-crop IMAGE CROP X Y WIDTH [CROP X Y WIDTH]...
                                                         exit 0 when each CROP equals astropy's cutout

Each call starts Python and astropy (most of a second): a test checks all its crops in one call.
"""

from __future__ import annotations

import sys

import numpy as np
from astropy.io import fits

from tests.fitsimages import expected_crop, expected_pixel, make_no_wcs, read_crop, write_image


def same_crop(data: np.ndarray, crop: str, x: str, y: str, width: str) -> bool:
    """Print how CROP equals astropy's cutout of `data` around (x, y), or on stderr how it differs."""
    expected = expected_crop(data, float(x), float(y), int(width))
    actual = read_crop(crop)
    if expected is None or actual.shape != expected.shape:
        print(f"{crop}: shape {actual.shape} != {None if expected is None else expected.shape}", file=sys.stderr)
        return False
    if not np.array_equal(actual, expected, equal_nan=True):
        print(f"{crop}: {int((actual != expected).sum())} pixels differ", file=sys.stderr)
        return False
    print(f"equal {actual.shape[1]}x{actual.shape[0]} zeros={int((actual == 0).sum())}")
    return True


def main(argv: list[str]) -> int:
    command, *arguments = argv
    if command == "make":
        image, nx, ny, ra, dec = arguments
        write_image(image, nx=int(nx), ny=int(ny), ra=float(ra), dec=float(dec))
    elif command == "make-no-wcs":
        [image] = arguments
        make_no_wcs(image)
    elif command == "pixel":
        from astropy.wcs import WCS

        image, ra, dec = arguments
        x, y = expected_pixel(WCS(fits.getheader(image)), float(ra), float(dec))
        print(f"{x:.3f} {y:.3f}")
    elif command == "same-crop" and arguments and len(arguments) % 4 == 1:
        image, *crops = arguments
        data = fits.getdata(image)
        results = [same_crop(data, *crops[i:i + 4]) for i in range(0, len(crops), 4)]
        return 0 if all(results) else 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
