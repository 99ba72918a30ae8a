"""FITS images made by code, the real tools run on them, and astropy as the oracle.

Pure helpers: no pytest import here, so scripts and other plugins can use them too.

Conventions (checked by ``tests/test_tools_oracle.py`` against wcstools 3.9.7 and gnuastro 0.19):

* Pixel positions called ``x, y`` are **1-based FITS pixels** (the centre of the first pixel
  is 1.0; a pixel covers ``x-0.5 .. x+0.5``), which is what ``sky2xy`` prints and what
  ``astcrop --mode=img --center=x,y`` takes. numpy arrays are indexed ``data[y-1, x-1]``.
* ``sky2xy`` = astropy ``WCS.world_to_pixel_values`` + 1 (see ``expected_pixel``).
* ``astcrop --mode=img --center=X,Y --width=W -z -h0`` = astropy
  ``Cutout2D(data, (cx-1, cy-1), W', mode='partial', fill_value=nan)`` where
  ``W' = W`` for odd W and ``W+1`` for even W, and ``cx = crop_centre_pixel(X)``: for X >= 0
  the 1-based pixel that contains X, ``floor(X + 0.5)``, a half-integer X going to the *upper*
  pixel (gnuastro's C rounding, odd for negative X; see ``crop_centre_pixel``); likewise for y.
  astropy on its own rounds an exact half-pixel position *down*, so the position handed to
  Cutout2D is the integer pixel, never the raw float (see ``expected_crop``).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from astropy.io import fits

if TYPE_CHECKING:
    from astropy.wcs import WCS

# astropy.wcs, astropy.nddata and astropy.coordinates are imported where they are used: the bats
# tests start Python for each check (tests/fitstool.py), and making an image needs astropy.io.fits
# only, which takes half the time of all four.

__all__ = [
    "DEBIAN_PACKAGES",
    "Sky2xyResult",
    "astcrop",
    "crop_size",
    "crop_centre_pixel",
    "deg_to_sexagesimal",
    "expected_crop",
    "expected_pixel",
    "make_image",
    "write_image",
    "make_no_wcs",
    "make_not_fits",
    "on_image",
    "read_crop",
    "read_crop_header",
    "sexagesimal_to_deg",
    "sky2xy",
    "tool_path",
]

#: Which Debian package ships each tool (for failure messages).
DEBIAN_PACKAGES = {"sky2xy": "wcstools", "astcrop": "gnuastro"}

#: Default exact-zero block: 1-based inclusive (x0, y0, x1, y1), clipped to the image.
DEFAULT_ZERO_BLOCK = (3, 3, 6, 5)


# --------------------------------------------------------------------------- images


def _cd_matrix(
    scale_arcsec: float | tuple[float, float],
    rotation_deg: float,
    skew_deg: float,
    flip: bool,
) -> np.ndarray:
    """CD = R(rotation) @ Shear(skew) @ diag(-sx, sy)  (deg/pixel).

    ``-sx`` puts east to the left (RA growing to lower x), the usual sky orientation;
    ``flip=True`` mirrors it (RA growing with x, a det>0 CD matrix).
    """
    if isinstance(scale_arcsec, (int, float)):
        sx = sy = float(scale_arcsec)
    else:
        sx, sy = (float(v) for v in scale_arcsec)
    sx /= 3600.0
    sy /= 3600.0
    t = math.radians(rotation_deg)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    shear = np.array([[1.0, math.tan(math.radians(skew_deg))], [0.0, 1.0]])
    par = np.diag([sx if flip else -sx, sy])
    return rot @ shear @ par


def make_image(path: str | Path, **parameters) -> WCS:
    """``write_image(path, **parameters)``, and the image's WCS (its ``pixel_shape`` set)."""
    from astropy.wcs import WCS

    wcs = WCS(write_image(path, **parameters))
    wcs.pixel_shape = (parameters["nx"], parameters["ny"])  # so on_image() knows NAXIS1/NAXIS2
    return wcs


def write_image(
    path: str | Path,
    *,
    nx: int,
    ny: int,
    ra: float,
    dec: float,
    scale_arcsec: float | tuple[float, float] = 0.4,
    rotation_deg: float = 30.0,
    skew_deg: float = 0.0,
    flip: bool = False,
    crpix: tuple[float, float] | None = None,
    zeros: Iterable[tuple[int, int]] | None = None,
    zero_block: tuple[int, int, int, int] | None = DEFAULT_ZERO_BLOCK,
    seed: int = 0,
    dtype: np.dtype | type = np.float32,
    radesys: str = "ICRS",
) -> fits.Header:
    """Write a primary-HDU-only 2-D image with a TAN WCS and a CD matrix; return its header.

    * ``ra, dec`` (degrees) sit at ``crpix`` (1-based; default the image centre
      ``((nx+1)/2, (ny+1)/2)``).
    * The CD matrix has ``rotation_deg``, optional ``skew_deg`` (non-orthogonal axes),
      ``flip`` (mirror parity) and ``scale_arcsec`` (one value, or ``(sx, sy)`` for
      non-square pixels). The header holds ``CD1_1..CD2_2`` (no PC/CDELT).
    * Pixel values: deterministic from ``numpy.random.default_rng(seed)``, uniform in
      ``[1, 1001)`` so none is 0 by chance, then exact ``0.0`` at every 1-based ``(x, y)``
      in ``zeros`` and in the inclusive block ``zero_block = (x0, y0, x1, y1)`` (clipped to
      the image; ``None`` for no block). Float dtypes only make sense for the NaN tests.
    * 4096x4096 float32 takes well under a second (one vectorised RNG call).
    """
    path = Path(path)
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        rdtype = dtype if dtype in (np.dtype(np.float32), np.dtype(np.float64)) else np.float64
        data = rng.random((ny, nx), dtype=rdtype)
        data *= 1000.0
        data += 1.0
        data = data.astype(dtype, copy=False)
    else:
        data = rng.integers(1, 1001, size=(ny, nx)).astype(dtype)
    if zero_block is not None:
        x0, y0, x1, y1 = zero_block
        x0, y0 = max(x0, 1), max(y0, 1)
        x1, y1 = min(x1, nx), min(y1, ny)
        if x0 <= x1 and y0 <= y1:
            data[y0 - 1 : y1, x0 - 1 : x1] = 0
    for x, y in zeros or ():
        if not (1 <= x <= nx and 1 <= y <= ny):
            raise ValueError(f"zero pixel ({x}, {y}) outside a {nx}x{ny} image")
        data[y - 1, x - 1] = 0

    if crpix is None:
        crpix = ((nx + 1) / 2.0, (ny + 1) / 2.0)
    cd = _cd_matrix(scale_arcsec, rotation_deg, skew_deg, flip)
    header = fits.Header()
    header["WCSAXES"] = 2
    header["CTYPE1"] = "RA---TAN"
    header["CTYPE2"] = "DEC--TAN"
    header["CUNIT1"] = "deg"
    header["CUNIT2"] = "deg"
    header["CRVAL1"] = float(ra)
    header["CRVAL2"] = float(dec)
    header["CRPIX1"] = float(crpix[0])
    header["CRPIX2"] = float(crpix[1])
    header["CD1_1"] = float(cd[0, 0])
    header["CD1_2"] = float(cd[0, 1])
    header["CD2_1"] = float(cd[1, 0])
    header["CD2_2"] = float(cd[1, 1])
    header["RADESYS"] = radesys
    if radesys.upper() in ("FK5", "FK4"):
        header["EQUINOX"] = 2000.0 if radesys.upper() == "FK5" else 1950.0
    header["OBJECT"] = "ltsflow synthetic"
    hdu = fits.PrimaryHDU(data=data, header=header)
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path, overwrite=True)
    return header


def make_not_fits(path: str | Path) -> Path:
    """A file named like FITS that is not FITS (plain text)."""
    path = Path(path)
    path.write_text("this is not a FITS file\n" * 40)
    return path


def make_no_wcs(path: str | Path, nx: int = 50, ny: int = 40) -> Path:
    """A valid primary-HDU float32 image with no WCS keywords at all."""
    path = Path(path)
    data = np.arange(1, nx * ny + 1, dtype=np.float32).reshape(ny, nx)
    fits.PrimaryHDU(data=data).writeto(path, overwrite=True)
    return path


# --------------------------------------------------------------------------- sky2xy


@dataclass(frozen=True)
class Sky2xyResult:
    """One ``sky2xy IMAGE RA DEC`` run. ``x``/``y`` are None when no result line was printed."""

    x: float | None
    y: float | None
    off_image: bool
    offscale: bool
    raw: str
    returncode: int
    stderr: str = ""

    @property
    def on_image(self) -> bool:
        return self.x is not None and not self.off_image and not self.offscale


# "150.0 2.0 J2000 -> 30.500 25.500 (off image)"
_SKY2XY_LINE = re.compile(
    r"^\s*(?P<ra>\S+)\s+(?P<dec>\S+)\s+(?P<sys>\S+)\s+->\s+"
    r"(?P<x>[-+0-9.eE]+)\s+(?P<y>[-+0-9.eE]+)\s*(?P<rest>.*)$"
)


def _coord_arg(v: float | str) -> str:
    if isinstance(v, str):
        return v
    return f"{float(v):.10f}"


def sky2xy(
    image: str | Path,
    ra: float | str,
    dec: float | str,
    *,
    args: Sequence[str] = (),
    exe: str = "sky2xy",
    timeout: float = 60,
) -> Sky2xyResult:
    """Run the real ``sky2xy [args] IMAGE RA DEC`` and parse its one output line.

    ``ra``/``dec``: floats are degrees (formatted with 10 decimals); strings are passed as
    given (``HH:MM:SS.s`` is hours, ``+DD:MM:SS.s`` degrees). A crash (signal) shows as a
    negative ``returncode`` (``-11`` for SIGSEGV; a shell reports it as 139).
    """
    cmd = [exe, *args, str(image), _coord_arg(ra), _coord_arg(dec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    x = y = None
    off_image = offscale = False
    for line in proc.stdout.splitlines():
        m = _SKY2XY_LINE.match(line)
        if m:
            x, y = float(m["x"]), float(m["y"])
            rest = m["rest"]
            off_image = "(off image)" in rest
            offscale = "(offscale)" in rest
            break
    return Sky2xyResult(x, y, off_image, offscale, proc.stdout, proc.returncode, proc.stderr)


def expected_pixel(wcs: WCS, ra: float, dec: float) -> tuple[float, float]:
    """astropy's answer in 1-based FITS pixels: ``world_to_pixel_values`` + 1 (degrees in)."""
    px, py = wcs.world_to_pixel_values(ra, dec)
    return float(px) + 1.0, float(py) + 1.0


def on_image(wcs: WCS, x: float, y: float) -> bool:
    """sky2xy's notion of "on the image": ``0.5 <= x <= NAXIS1+0.5`` (and likewise y)."""
    nx, ny = wcs.pixel_shape
    return 0.5 <= x <= nx + 0.5 and 0.5 <= y <= ny + 0.5


def sexagesimal_to_deg(ra_hms: str, dec_dms: str) -> tuple[float, float]:
    """``("HH:MM:SS.s", "+DD:MM:SS.s")`` -> degrees, via astropy (RA in hours)."""
    from astropy import units as u
    from astropy.coordinates import Angle

    ra = Angle(ra_hms, unit=u.hourangle).to_value(u.deg)
    dec = Angle(dec_dms, unit=u.deg).to_value(u.deg)
    return float(ra), float(dec)


def deg_to_sexagesimal(ra: float, dec: float, precision: int = 4) -> tuple[str, str]:
    """Degrees -> ``("HH:MM:SS.ssss", "+DD:MM:SS.ssss")`` via astropy."""
    from astropy import units as u
    from astropy.coordinates import Angle

    ra_s = Angle(ra, unit=u.deg).to_string(unit=u.hourangle, sep=":", precision=precision, pad=True)
    dec_s = Angle(dec, unit=u.deg).to_string(
        unit=u.deg, sep=":", precision=precision, pad=True, alwayssign=True
    )
    return ra_s, dec_s


# --------------------------------------------------------------------------- astcrop


def crop_size(width: int) -> int:
    """Side of the square astcrop writes for ``--width=width`` (img mode): odd stays, even +1."""
    width = int(width)
    return width if width % 2 else width + 1


def crop_centre_pixel(c: float) -> int:
    """The 1-based pixel astcrop centres a crop on, for a 1-based coordinate ``c``.

    gnuastro 0.19 ``lib/box.c`` ``gal_box_border_from_center``::

        tmp = center + ( fabs(modf(center, &intpart)) >= 0.5 ? 1 : 0 );   /* long tmp */

    i.e. add 1 when the fractional part's magnitude is >= 0.5, then truncate toward zero.
    For ``c >= 0`` that is ``floor(c + 0.5)``: the pixel containing ``c``, an exact half
    (10.5) going *up* to 11 (astropy's Cutout2D would pick 10). For ``c < -0.5`` it is not
    monotonic (-1.0 -> -1, -1.5 -> 0, -2.0 -> -2, -2.5 -> -1): reproduced here on purpose.
    """
    c = float(c)
    frac = math.modf(c)[0]
    return int(c + (1 if abs(frac) >= 0.5 else 0))  # int() truncates toward zero, like C


def expected_crop(
    data: np.ndarray,
    x: float,
    y: float,
    width: int,
    *,
    zeroisnotblank: bool = True,
) -> np.ndarray | None:
    """What ``astcrop --mode=img --center=x,y --width=width -h0 [-z]`` writes to HDU1.

    ``Cutout2D(data, (cx-1, cy-1), crop_size(width), mode='partial', fill_value=nan)``
    with ``cx, cy = crop_centre_pixel(x), crop_centre_pixel(y)``, as float. With
    ``zeroisnotblank=False`` (no ``-z``) every exact 0.0 becomes NaN as well.
    Returns None when the crop does not touch the image (astcrop then writes no file).
    """
    from astropy.nddata import Cutout2D

    size = crop_size(width)
    cx, cy = crop_centre_pixel(x), crop_centre_pixel(y)
    ny, nx = data.shape
    half = size // 2
    if cx + half < 1 or cx - half > nx or cy + half < 1 or cy - half > ny:
        return None
    arr = data if data.dtype.kind == "f" else data.astype(np.float64)
    cut = Cutout2D(
        arr, (cx - 1, cy - 1), size, mode="partial", fill_value=np.nan, copy=True
    ).data
    if not zeroisnotblank:
        cut = np.where(cut == 0, np.nan, cut).astype(cut.dtype)
    return cut


def astcrop(
    image: str | Path,
    x: float,
    y: float,
    width: int,
    output: str | Path,
    *,
    zeroisnotblank: bool = True,
    hdu: str = "0",
    args: Sequence[str] = (),
    exe: str = "astcrop",
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Run the real ``astcrop --mode=img --center=x,y --width=W [-z] -hHDU IMAGE -o OUTPUT``."""
    cmd = [
        exe,
        "--mode=img",
        f"--center={x},{y}",
        f"--width={width}",
        f"-h{hdu}",
        *(["-z"] if zeroisnotblank else []),
        *args,
        str(image),
        f"--output={output}",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def read_crop(path: str | Path) -> np.ndarray:
    """The crop astcrop wrote (HDU1; HDU0 is an empty primary)."""
    with fits.open(path) as hdul:
        return np.array(hdul[1].data)


def read_crop_header(path: str | Path) -> fits.Header:
    """HDU1's header (updated WCS, ``ICF1PIX = 'x0:x1,y0:y1'`` source pixel range)."""
    with fits.open(path) as hdul:
        return hdul[1].header.copy()


def tool_path(name: str) -> str | None:
    """Absolute path of a tool on PATH, or None."""
    return shutil.which(name)
