"""A command line over tests/fitsimages.py, for the bats tests.

  python -m tests.fitstool make IMAGE NX NY RA DEC       a TAN image centred on RA, DEC (zeros in a block)
  python -m tests.fitstool pixel IMAGE RA DEC            astropy's 1-based x y (world_to_pixel + 1)
  python -m tests.fitstool same-crop IMAGE CROP X Y WIDTH   exit 0 when CROP equals astropy's cutout
"""

from __future__ import annotations

import sys

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from tests.fitsimages import expected_crop, expected_pixel, make_image, read_crop


def main(argv: list[str]) -> int:
    command, *arguments = argv
    if command == "make":
        image, nx, ny, ra, dec = arguments
        make_image(image, nx=int(nx), ny=int(ny), ra=float(ra), dec=float(dec))
    elif command == "pixel":
        image, ra, dec = arguments
        x, y = expected_pixel(WCS(fits.getheader(image)), float(ra), float(dec))
        print(f"{x:.3f} {y:.3f}")
    elif command == "same-crop":
        image, crop, x, y, width = arguments
        expected = expected_crop(fits.getdata(image), float(x), float(y), int(width))
        actual = read_crop(crop)
        if expected is None or actual.shape != expected.shape:
            print(f"shape {actual.shape} != {None if expected is None else expected.shape}", file=sys.stderr)
            return 1
        if not np.array_equal(actual, expected, equal_nan=True):
            print(f"{int((actual != expected).sum())} pixels differ", file=sys.stderr)
            return 1
        zeros = int((actual == 0).sum())
        print(f"equal {actual.shape[1]}x{actual.shape[0]} zeros={zeros}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
