"""The real tools agree with astropy (the oracle) on images made by code.

sky2xy (wcstools 3.9.7) and astcrop (gnuastro 0.19) are what the generated scripts run, so
what they print and write is checked here against astropy on synthetic images: TAN
projection, CD matrix with rotation (and skew, flip, non-square pixels), from 50x50 to
4096x4096, RA wrapping through 0 and a celestial pole inside an image.

Facts pinned down (see ``tests/fitsimages.py`` for the exact astcrop <-> Cutout2D rule):

* sky2xy x,y == astropy ``world_to_pixel_values`` + 1, within 0.01 px (it prints 3 decimals).
* Off the image (x or y outside ``0.5 .. NAXIS+0.5``) sky2xy still prints the right x,y,
  appends ``(off image)`` and **exits 0**; a point the TAN projection cannot reach (>= 90 deg
  from the tangent point; astropy gives NaN) prints ``0.000 0.000 (offscale)``, **exit 0**.
  Scripts must read the text, not the exit status.
* Sexagesimal RA is hours, decimal RA is degrees; ``-00:30:00`` keeps its sign.
* astcrop with ``--width=W`` writes ``W`` (odd) or ``W+1`` (even) pixels a side, centred on
  the pixel gnuastro's rounding picks (half-integers go up); partly-off crops are NaN-padded
  to full size; exact 0.0 stays 0.0 with ``-z`` and becomes NaN without it.
* A crop that misses the image: exit 0, "no overlap", and **no output file** (an existing
  file of that name is deleted).
* No WCS: sky2xy exits 1 with ``No WCS in image file``; astcrop ``--mode=img`` does not need
  a WCS and crops anyway. A non-FITS, empty or missing file (or a comma in the name) makes
  sky2xy crash on a signal (SIGSEGV: -11 here, 139 from a shell) with no result line.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS

from tests import fitsimages as fi

pytestmark = pytest.mark.tools

TOL_PX = 0.01

# ----------------------------------------------------------------------------- images

IMAGES = {
    "50x50": dict(nx=50, ny=50, ra=150.0, dec=2.0, rotation_deg=30.0),
    "300x120-skew-rect-pixels": dict(
        nx=300,
        ny=120,
        ra=10.5,
        dec=-45.25,
        rotation_deg=-63.0,
        skew_deg=1.5,
        scale_arcsec=(0.4, 0.45),
        crpix=(100.3, 80.7),
    ),
    "128x257-flip-ra-wraps-0-fk5": dict(
        nx=128,
        ny=257,
        ra=359.9995,
        dec=0.2,
        rotation_deg=120.0,
        flip=True,
        crpix=(60.0, 140.0),
        radesys="FK5",
    ),
    "1000x700-pole-inside": dict(
        nx=1000, ny=700, ra=200.0, dec=89.95, rotation_deg=10.0, scale_arcsec=1.0
    ),
    "4096x4096": dict(nx=4096, ny=4096, ra=45.0, dec=30.0, rotation_deg=47.0, scale_arcsec=0.262),
}


def _on_points(nx: int, ny: int) -> list[tuple[str, float, float]]:
    """1-based pixel positions on the image: centre, corners, just inside the edges, random."""
    pts = [
        ("centre", (nx + 1) / 2, (ny + 1) / 2),
        ("pix-1-1", 1.0, 1.0),
        ("pix-nx-1", float(nx), 1.0),
        ("pix-1-ny", 1.0, float(ny)),
        ("pix-nx-ny", float(nx), float(ny)),
        ("corner-ll-inside", 0.51, 0.51),
        ("corner-ur-inside", nx + 0.49, ny + 0.49),
        ("corner-ul-inside", 0.51, ny + 0.49),
        ("corner-lr-inside", nx + 0.49, 0.51),
        ("edge-left", 0.51, ny / 2 + 0.3),
        ("edge-top", nx / 2 - 0.2, ny + 0.49),
    ]
    rng = np.random.default_rng(nx * 10007 + ny)
    for i in range(4):
        pts.append((f"random{i}", float(rng.uniform(0.6, nx + 0.4)), float(rng.uniform(0.6, ny + 0.4))))
    return pts


def _off_points(nx: int, ny: int) -> list[tuple[str, float, float]]:
    return [
        ("just-left", 0.49, ny / 2),
        ("just-right", nx + 0.51, ny / 2),
        ("just-below", nx / 2, 0.49),
        ("just-above", nx / 2, ny + 0.51),
        ("far-ll", -100.0, -100.0),
        ("far-ur", nx + 1000.0, 3.0 * ny),
    ]


def _cases(points_fn):
    return [
        pytest.param(name, x, y, id=f"{name}-{label}")
        for name, spec in IMAGES.items()
        for label, x, y in points_fn(spec["nx"], spec["ny"])
    ]


@pytest.fixture
def image(fits_images):
    return lambda name: fits_images(name=name, **IMAGES[name])


# ----------------------------------------------------------------------------- sky2xy


@pytest.mark.parametrize(("name", "px", "py"), _cases(_on_points))
def test_sky2xy_matches_astropy_on_image(sky2xy_exe, image, name, px, py):
    img = image(name)
    ra, dec = img.world(px, py)
    ex, ey = fi.expected_pixel(img.wcs, ra, dec)
    # the oracle itself round-trips (guards the test, not the tool)
    assert abs(ex - px) < 1e-6 and abs(ey - py) < 1e-6
    r = fi.sky2xy(img.path, ra, dec, exe=sky2xy_exe)
    assert r.returncode == 0, r
    assert r.x is not None, f"no result line: {r.raw!r} {r.stderr!r}"
    assert abs(r.x - ex) <= TOL_PX and abs(r.y - ey) <= TOL_PX, (r.raw, ex, ey)
    assert not r.off_image and not r.offscale, r.raw
    assert r.on_image


@pytest.mark.parametrize(("name", "px", "py"), _cases(_off_points))
def test_sky2xy_off_image_is_flagged_with_exit_0(sky2xy_exe, image, name, px, py):
    img = image(name)
    ra, dec = img.world(px, py)
    ex, ey = fi.expected_pixel(img.wcs, ra, dec)
    assert not fi.on_image(img.wcs, ex, ey)
    r = fi.sky2xy(img.path, ra, dec, exe=sky2xy_exe)
    # exit status does NOT tell: only the text does
    assert r.returncode == 0, r
    assert r.raw.rstrip().endswith("(off image)"), r.raw
    assert r.off_image and not r.offscale
    # the coordinates are still printed, and still right
    assert abs(r.x - ex) <= TOL_PX and abs(r.y - ey) <= TOL_PX, (r.raw, ex, ey)


def _unreachable(ra: float, dec: float) -> list[tuple[float, float]]:
    c = SkyCoord(ra * u.deg, dec * u.deg)
    pts = [((ra + 180.0) % 360.0, -dec)]  # antipode
    for pa, sep in ((0.0, 95.0), (137.0, 120.0), (250.0, 91.0)):
        o = c.directional_offset_by(pa * u.deg, sep * u.deg)
        pts.append((float(o.ra.deg), float(o.dec.deg)))
    return pts


@pytest.mark.parametrize("name", ["50x50", "300x120-skew-rect-pixels", "4096x4096"])
def test_sky2xy_unreachable_point_is_offscale_with_exit_0(sky2xy_exe, image, name):
    img = image(name)
    spec = IMAGES[name]
    for ra, dec in _unreachable(spec["ra"], spec["dec"]):
        # astropy agrees the TAN projection cannot reach it
        ex, ey = fi.expected_pixel(img.wcs, ra, dec)
        assert not (math.isfinite(ex) and math.isfinite(ey)), (ra, dec, ex, ey)
        r = fi.sky2xy(img.path, ra, dec, exe=sky2xy_exe)
        assert r.returncode == 0, r
        assert r.offscale, r.raw
        assert not r.off_image, r.raw  # only "(offscale)", not "(off image)" as well
        assert (r.x, r.y) == (0.0, 0.0), r.raw
        assert not r.on_image


def test_sky2xy_output_format(sky2xy_exe, image):
    """``RA DEC J2000 -> X Y``: x, y are fields 5 and 6 (what the scripts cut out)."""
    img = image("50x50")
    r = fi.sky2xy(img.path, "150.0", "2.0", exe=sky2xy_exe)
    assert r.returncode == 0
    fields = r.raw.split()
    assert fields[:4] == ["150.0", "2.0", "J2000", "->"], r.raw
    assert float(fields[4]) == pytest.approx(25.5, abs=1e-3)
    assert float(fields[5]) == pytest.approx(25.5, abs=1e-3)
    assert len(r.raw.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "label", "px", "py"),
    [
        (name, label, px, py)
        for name in ("50x50", "300x120-skew-rect-pixels", "128x257-flip-ra-wraps-0-fk5", "4096x4096")
        for label, px, py in _on_points(IMAGES[name]["nx"], IMAGES[name]["ny"])[:6:5]
        + _off_points(IMAGES[name]["nx"], IMAGES[name]["ny"])[4:5]
    ],
)
def test_sky2xy_sexagesimal_equals_degrees(sky2xy_exe, image, name, label, px, py):
    img = image(name)
    ra_s, dec_s = fi.deg_to_sexagesimal(*img.world(px, py), precision=4)
    ra, dec = fi.sexagesimal_to_deg(ra_s, dec_s)
    ex, ey = fi.expected_pixel(img.wcs, ra, dec)
    rs = fi.sky2xy(img.path, ra_s, dec_s, exe=sky2xy_exe)
    rd = fi.sky2xy(img.path, ra, dec, exe=sky2xy_exe)
    assert rs.returncode == rd.returncode == 0
    assert rs.x is not None and rd.x is not None, (rs, rd)
    assert abs(rs.x - rd.x) <= 0.0015 and abs(rs.y - rd.y) <= 0.0015, (rs.raw, rd.raw)
    assert abs(rs.x - ex) <= TOL_PX and abs(rs.y - ey) <= TOL_PX, (rs.raw, ex, ey)
    assert rs.off_image == rd.off_image == (not fi.on_image(img.wcs, ex, ey))


@pytest.mark.parametrize(
    ("ra_s", "dec_s", "ra_deg", "dec_deg"),
    [
        ("00:00:02.4", "-00:30:00.0", 0.01, -0.5),  # the "-00" sign trap
        ("00:00:02.4", "-0:30:00", 0.01, -0.5),
        ("00:00:01.2", "-00:29:42.0", 0.005, -0.495),
        ("23:59:59.0", "-00:30:10.0", 359.99583333333334, -0.50277777777777777),  # RA wraps
    ],
)
def test_sky2xy_sexagesimal_sign_and_wrap(sky2xy_exe, fits_images, ra_s, dec_s, ra_deg, dec_deg):
    img = fits_images(name="ra0-dec-0.5", nx=400, ny=300, ra=0.01, dec=-0.5, rotation_deg=-20.0)
    assert fi.sexagesimal_to_deg(ra_s, dec_s) == pytest.approx((ra_deg, dec_deg), abs=1e-9)
    ex, ey = fi.expected_pixel(img.wcs, ra_deg, dec_deg)
    assert fi.on_image(img.wcs, ex, ey)
    rs = fi.sky2xy(img.path, ra_s, dec_s, exe=sky2xy_exe)
    rd = fi.sky2xy(img.path, ra_deg, dec_deg, exe=sky2xy_exe)
    for r in (rs, rd):
        assert r.returncode == 0 and r.on_image, r
        assert abs(r.x - ex) <= TOL_PX and abs(r.y - ey) <= TOL_PX, (r.raw, ex, ey)
    # the wrong sign would land far off the image
    wx, wy = fi.expected_pixel(img.wcs, ra_deg, -dec_deg)
    assert not fi.on_image(img.wcs, wx, wy)


def test_sky2xy_sexagesimal_ra_is_hours_decimal_is_degrees(sky2xy_exe, image):
    img = image("50x50")  # centre 150.0, +2.0 at pixel 25.5, 25.5
    hours = fi.sky2xy(img.path, "10:00:00.0", "+02:00:00", exe=sky2xy_exe)
    degrees = fi.sky2xy(img.path, "150.0", "2.0", exe=sky2xy_exe)
    as_hours_number = fi.sky2xy(img.path, "10.0", "2.0", exe=sky2xy_exe)
    assert (hours.x, hours.y) == (degrees.x, degrees.y) == (25.5, 25.5)
    assert not as_hours_number.on_image  # "10.0" is 10 degrees, not 10 hours (140 deg away)


def test_ra_wrap_image_really_straddles_ra_0(image):
    """Guard for the flip image: its pixels do cover RA on both sides of 0."""
    img = image("128x257-flip-ra-wraps-0-fk5")
    ras = [img.world(x, y)[0] for _, x, y in _on_points(img.nx, img.ny)]
    assert any(r < 1.0 for r in ras) and any(r > 359.0 for r in ras), ras


def test_sky2xy_no_wcs_exits_1(sky2xy_exe, fits_images):
    path = fits_images.no_wcs(60, 40)
    r = fi.sky2xy(path, 150.0, 2.0, exe=sky2xy_exe)
    assert r.returncode == 1, r
    assert "No WCS" in r.stderr, r
    assert r.x is None and "->" not in r.raw


@pytest.mark.parametrize("kind", ["not-fits", "empty", "missing", "comma-in-name"])
def test_sky2xy_bad_file_is_a_failure_not_a_result(sky2xy_exe, fits_images, tmp_path, kind):
    """Seen here: SIGSEGV (returncode -11; a shell says 139) for all four."""
    if kind == "not-fits":
        path = fits_images.not_fits()
    elif kind == "empty":
        path = tmp_path / "empty.fits"
        path.write_bytes(b"")
    elif kind == "missing":
        path = tmp_path / "missing.fits"
    else:
        good = fits_images(name="50x50", **IMAGES["50x50"])
        path = tmp_path / "a,b.fits"
        shutil.copy(good.path, path)
    r = fi.sky2xy(path, 150.0, 2.0, exe=sky2xy_exe)
    assert r.returncode != 0, f"{kind}: sky2xy exit 0: {r}"
    assert r.x is None and "->" not in r.raw, r
    # record what was seen: a crash on a signal (negative) or a shell-style 128+N
    assert r.returncode < 0 or r.returncode > 128 or r.returncode == 1, r


# ----------------------------------------------------------------------------- astcrop

CROP_IMAGE = dict(
    nx=300,
    ny=120,
    ra=10.5,
    dec=-45.25,
    rotation_deg=-63.0,
    skew_deg=1.5,
    scale_arcsec=(0.4, 0.45),
    zero_block=(3, 3, 6, 5),
    zeros=[(150, 60), (151, 61), (300, 120), (1, 120)],
)
BIG = "4096x4096"

# (image, x, y, width)
CROPS = {
    "interior-odd": ("crop", 150.3, 60.7, 11),
    "interior-even": ("crop", 150.3, 60.7, 10),
    "half-pixel-centre": ("crop", 150.5, 60.5, 7),
    "just-below-half": ("crop", 150.4999, 60.4999, 7),
    "integer-centre": ("crop", 150.0, 60.0, 5),
    "width-1": ("crop", 150.0, 60.0, 1),
    "width-2": ("crop", 150.0, 60.0, 2),
    "left-edge-partly-off": ("crop", 2.2, 60.0, 21),
    "ur-corner-even-partly-off": ("crop", 299.6, 119.5, 30),
    "ll-zero-block": ("crop", 4.0, 4.0, 9),
    "ul-corner-zero": ("crop", 1.0, 120.0, 4),
    "centre-off-image-left": ("crop", -3.0, 50.0, 15),
    "centre-off-gnuastro-rounding": ("crop", -1.5, 50.0, 5),
    "one-column-overlap": ("crop", 300.5, 60.0, 3),
    "bigger-than-image": ("crop", 150.0, 60.0, 401),
    "big-corner": (BIG, 4090.2, 3.7, 50),
    "big-centre-half": (BIG, 2048.5, 2048.5, 101),
}

OFF_CROPS = {
    "far-left": ("crop", -50.0, 50.0, 11),
    "right-by-one": ("crop", 307.0, 60.0, 11),
    "below": ("crop", 150.0, -5.6, 9),
    "above": ("crop", 150.0, 125.0, 9),
    "diagonal": ("crop", -10.0, -10.0, 15),
    "big-far": (BIG, 5000.0, 5000.0, 100),
}


@pytest.fixture
def crop_source(fits_images):
    def get(which):
        if which == "crop":
            return fits_images(name="crop", **CROP_IMAGE)
        return fits_images(name=which, **IMAGES[which])

    return get


def _icf1pix(img, x, y, width) -> str:
    h = fi.crop_size(width) // 2
    cx, cy = fi.crop_centre_pixel(x), fi.crop_centre_pixel(y)
    return (
        f"{max(1, cx - h)}:{min(img.nx, cx + h)},"
        f"{max(1, cy - h)}:{min(img.ny, cy + h)}"
    )


@pytest.mark.parametrize(("which", "x", "y", "width"), list(CROPS.values()), ids=list(CROPS))
def test_astcrop_equals_cutout2d(astcrop_exe, crop_source, tmp_path, which, x, y, width):
    img = crop_source(which)
    out = tmp_path / "crop.fits"
    p = fi.astcrop(img.path, x, y, width, out, exe=astcrop_exe)
    assert p.returncode == 0, p.stderr
    assert out.exists(), p.stdout + p.stderr
    got = fi.read_crop(out)
    exp = fi.expected_crop(img.data, x, y, width)
    size = fi.crop_size(width)
    assert got.shape == exp.shape == (size, size)
    assert got.dtype == img.data.dtype  # float32 in, float32 out
    assert np.array_equal(got, exp, equal_nan=True), (x, y, width)
    # NaN exactly where the crop hangs off the image
    assert np.isnan(got).sum() == size * size - np.isfinite(exp).sum()
    with fits.open(out) as hdul:
        assert hdul[0].data is None  # HDU0 empty, crop in HDU1
        assert len(hdul) == 2
        hdr = hdul[1].header
    assert hdr["ICF1PIX"] == _icf1pix(img, x, y, width)
    # the crop's WCS puts its central pixel where the source's centre pixel is on the sky
    cx, cy = fi.crop_centre_pixel(x), fi.crop_centre_pixel(y)
    src = img.wcs.pixel_to_world_values(cx - 1, cy - 1)
    crp = WCS(hdr).pixel_to_world_values(size // 2, size // 2)
    sep = SkyCoord(*src, unit="deg").separation(SkyCoord(*crp, unit="deg")).arcsec
    assert sep < 1e-4, sep


def test_astcrop_even_width_is_width_plus_one(astcrop_exe, crop_source, tmp_path):
    img = crop_source("crop")
    a, b = tmp_path / "w10.fits", tmp_path / "w11.fits"
    assert fi.astcrop(img.path, 120.2, 40.9, 10, a, exe=astcrop_exe).returncode == 0
    assert fi.astcrop(img.path, 120.2, 40.9, 11, b, exe=astcrop_exe).returncode == 0
    ga, gb = fi.read_crop(a), fi.read_crop(b)
    assert ga.shape == (11, 11)
    assert np.array_equal(ga, gb, equal_nan=True)


@pytest.mark.parametrize(("x", "y"), [(150.5, 60.5), (20.5, 30.0), (20.0, 30.5), (299.5, 119.5)])
def test_astcrop_half_pixel_goes_up_unlike_raw_cutout2d(astcrop_exe, crop_source, tmp_path, x, y):
    """At an exact half pixel astcrop takes the upper pixel; astropy's own rounding takes
    the lower one, which is why ``expected_crop`` hands Cutout2D an integer centre."""
    img = crop_source("crop")
    out = tmp_path / "half.fits"
    assert fi.astcrop(img.path, x, y, 7, out, exe=astcrop_exe).returncode == 0
    got = fi.read_crop(out)
    assert np.array_equal(got, fi.expected_crop(img.data, x, y, 7), equal_nan=True)
    raw = Cutout2D(img.data, (x - 1, y - 1), 7, mode="partial", fill_value=np.nan).data
    assert not np.array_equal(got, raw, equal_nan=True)
    # upper pixel: the source pixel at the crop centre is (ceil(x), ceil(y))
    assert got[3, 3] == img.data[math.ceil(y) - 1, math.ceil(x) - 1]


@pytest.mark.parametrize(
    ("which", "x", "y", "width"),
    [CROPS[k] for k in ("interior-odd", "ur-corner-even-partly-off", "ll-zero-block", "ul-corner-zero")],
    ids=["interior-odd", "ur-corner-even-partly-off", "ll-zero-block", "ul-corner-zero"],
)
def test_astcrop_zeros_kept_with_z_blank_without(astcrop_exe, crop_source, tmp_path, which, x, y, width):
    img = crop_source(which)
    with_z, without_z = tmp_path / "z.fits", tmp_path / "noz.fits"
    assert fi.astcrop(img.path, x, y, width, with_z, exe=astcrop_exe).returncode == 0
    p = fi.astcrop(img.path, x, y, width, without_z, zeroisnotblank=False, exe=astcrop_exe)
    assert p.returncode == 0, p.stderr
    gz, gn = fi.read_crop(with_z), fi.read_crop(without_z)
    zeros = gz == 0.0
    assert zeros.sum() > 0, "case must contain exact zeros"
    assert np.array_equal(gz, fi.expected_crop(img.data, x, y, width), equal_nan=True)
    assert np.array_equal(
        gn, fi.expected_crop(img.data, x, y, width, zeroisnotblank=False), equal_nan=True
    )
    assert not (gn == 0.0).any()
    assert np.isnan(gn[zeros]).all()
    # everything else identical
    assert np.array_equal(gn[~zeros], gz[~zeros], equal_nan=True)


@pytest.mark.parametrize(("which", "x", "y", "width"), list(OFF_CROPS.values()), ids=list(OFF_CROPS))
def test_astcrop_fully_off_exits_0_and_writes_nothing(astcrop_exe, crop_source, tmp_path, which, x, y, width):
    img = crop_source(which)
    assert fi.expected_crop(img.data, x, y, width) is None
    out = tmp_path / "off.fits"
    p = fi.astcrop(img.path, x, y, width, out, exe=astcrop_exe)
    assert p.returncode == 0, p.stderr
    assert not out.exists()
    assert "no overlap" in p.stdout + p.stderr


def test_astcrop_fully_off_deletes_existing_output(astcrop_exe, crop_source, tmp_path):
    """A stale file of the output name does not survive a no-overlap crop."""
    img = crop_source("crop")
    out = tmp_path / "stale.fits"
    assert fi.astcrop(img.path, 150.0, 60.0, 5, out, exe=astcrop_exe).returncode == 0
    assert out.exists()
    p = fi.astcrop(img.path, -50.0, -50.0, 5, out, exe=astcrop_exe)
    assert p.returncode == 0
    assert not out.exists()


def test_astcrop_needs_h0_for_primary_image(astcrop_exe, crop_source, tmp_path):
    img = crop_source("crop")
    out = tmp_path / "h1.fits"
    p = fi.astcrop(img.path, 150.0, 60.0, 5, out, hdu="1", exe=astcrop_exe)
    assert p.returncode != 0
    assert not out.exists()


def test_astcrop_img_mode_needs_no_wcs(astcrop_exe, fits_images, tmp_path):
    """Only sky2xy rejects a WCS-less image; astcrop --mode=img crops it anyway."""
    path = fits_images.no_wcs(60, 40)
    out = tmp_path / "nowcs-crop.fits"
    p = fi.astcrop(path, 10.0, 10.0, 5, out, exe=astcrop_exe)
    assert p.returncode == 0, p.stderr
    data = fits.getdata(path)
    assert np.array_equal(fi.read_crop(out), fi.expected_crop(data, 10.0, 10.0, 5), equal_nan=True)


def test_astcrop_not_fits_fails(astcrop_exe, fits_images, tmp_path):
    out = tmp_path / "x.fits"
    p = fi.astcrop(fits_images.not_fits(), 10.0, 10.0, 5, out, exe=astcrop_exe)
    assert p.returncode != 0
    assert not out.exists()


# ----------------------------------------------------------------------------- helpers


def test_make_image_is_deterministic_and_as_described(tmp_path):
    kw = dict(nx=70, ny=40, ra=12.0, dec=-30.0, rotation_deg=25.0, skew_deg=2.0,
              zeros=[(70, 40)], zero_block=(1, 1, 2, 3), seed=7)
    w1 = fi.make_image(tmp_path / "a.fits", **kw)
    fi.make_image(tmp_path / "b.fits", **kw)
    a, b = fits.getdata(tmp_path / "a.fits"), fits.getdata(tmp_path / "b.fits")
    assert np.array_equal(a, b) and a.shape == (40, 70) and a.dtype.kind == "f" and a.dtype.itemsize == 4
    with fits.open(tmp_path / "a.fits") as hdul:
        assert len(hdul) == 1
        h = hdul[0].header
    assert all(k in h for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"))
    assert "PC1_1" not in h and "CDELT1" not in h
    assert h["CTYPE1"] == "RA---TAN" and h["CTYPE2"] == "DEC--TAN"
    assert h["CD1_2"] != 0 and h["CD2_1"] != 0  # rotated
    assert np.linalg.det(w1.wcs.cd) < 0  # east left (no flip)
    zeros = set(zip(*np.nonzero(a == 0)))
    assert zeros == {(39, 69), (0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)}
    assert fi.expected_pixel(w1, 12.0, -30.0) == pytest.approx((35.5, 20.5), abs=1e-9)
    c = fi.make_image(tmp_path / "c.fits", **{**kw, "seed": 8})
    assert c is not None and not np.array_equal(a, fits.getdata(tmp_path / "c.fits"))


def test_crop_centre_pixel_matches_gnuastro_rule():
    assert [fi.crop_centre_pixel(v) for v in (10.0, 10.4999, 10.5, 10.9, 0.5, 0.4, -0.4, -0.5)] == [
        10, 10, 11, 11, 1, 0, 0, 0]
    assert [fi.crop_centre_pixel(v) for v in (-1.0, -1.5, -1.9, -2.0, -2.5, -3.5)] == [
        -1, 0, 0, -2, -1, -2]
    assert [fi.crop_size(w) for w in (1, 2, 10, 11)] == [1, 3, 11, 11]


def test_sexagesimal_helpers_round_trip():
    assert fi.sexagesimal_to_deg("10:00:00.0", "+02:00:00") == pytest.approx((150.0, 2.0))
    assert fi.sexagesimal_to_deg("00:00:24.0", "-00:15:00") == pytest.approx((0.1, -0.25))
    ra_s, dec_s = fi.deg_to_sexagesimal(0.1, -0.25)
    assert (ra_s, dec_s) == ("00:00:24.0000", "-00:15:00.0000")
    assert fi.sexagesimal_to_deg(ra_s, dec_s) == pytest.approx((0.1, -0.25), abs=1e-12)
