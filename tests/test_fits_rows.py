"""templates/_fits_rows.sh.j2, ranged staging: a header-only file for sky2xy, then a window of rows for astcrop.

The library runs inside tests/templates/fits_rows_test.sh.j2 (the prelude, _tool.sh.j2 and the library, and a
main that prints the library's globals). rclone reads plain local paths here, and a wrapper ``rclone`` first
on PATH logs every ``--offset``/``--count`` it is given, so the bytes read are counted. The oracles are
astropy (the window's pixels and WCS against the whole image's) and the real tools: ``astcrop`` on a window
whose first row is the image's row FIRST, at y - (FIRST-1), equals ``astcrop`` on the whole image at y, and
``sky2xy`` on the header-only file equals ``sky2xy`` on the whole image.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import types
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import jinja2
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from compiler.plan import EXIT_CODES
from compiler.render import _render, make_environment
from compiler.verify import check_scripts
from tests import fitsimages

pytestmark = pytest.mark.tools

TESTS = Path(__file__).resolve().parent
REAL_RCLONE = Path(sys.executable).parent / "rclone"
BLOCK = 2880
FIRST_FETCH = 8 * BLOCK
FETCH = re.compile(r"^cat --offset (\d+) --count (\d+) -- (.+)$")
SERVER = "rcd --rc-serve --rc-no-auth --rc-addr unix://socket"


def render_driver(launcher: tuple[str, ...] = ()):
    environment = make_environment()
    environment.loader = jinja2.ChoiceLoader([environment.loader, jinja2.FileSystemLoader(TESTS / "templates")])
    context = {
        "graph": types.SimpleNamespace(exit_codes=EXIT_CODES),
        "name": "fits_rows_test.sh",
        "script": types.SimpleNamespace(launcher=launcher, container=(), image="", tool="rclone", modules=()),
    }
    return _render(environment, "fits_rows_test.sh", "fits_rows_test.sh.j2", context)


@dataclass
class Run:
    values: dict[str, str]
    fetches: list[tuple[int, int]]
    stderr: str
    servers: int = 0  # range servers started

    @property
    def problem(self) -> str:
        return self.values["FITS_PROBLEM"]

    def int(self, name: str) -> int:
        return int(self.values[name])


class Driver:
    """The rendered test script, run with a logging rclone wrapper first on PATH."""

    def __init__(self, root: Path, launcher: tuple[str, ...] = (), path: str | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.script = root / "fits_rows_test.sh"
        self.script.write_text(render_driver(launcher).text)
        self.script.chmod(0o755)
        self.log = root / "rclone.log"
        bin_dir = root / "bin"
        bin_dir.mkdir(exist_ok=True)
        wrapper = bin_dir / "rclone"
        wrapper.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >>"${{FITS_ROWS_LOG:?}}"\nexec {REAL_RCLONE} "$@"\n')
        wrapper.chmod(0o755)
        (root / "rclone.conf").write_text("")
        self.env = {
            **os.environ,
            "PATH": path if path is not None else f"{bin_dir}:{os.environ['PATH']}",
            "FITS_ROWS_LOG": str(self.log),
            "RCLONE_CONFIG": str(root / "rclone.conf"),
        }

    def run(self, *args: object, env: dict[str, str] | None = None) -> Run:
        """Run the driver; `env` (an S3 server's) is used with this driver's PATH and log on top."""
        self.log.write_text("")
        env = self.env if env is None else {**env, "PATH": self.env["PATH"], "FITS_ROWS_LOG": str(self.log)}
        proc = subprocess.run([str(self.script), *map(str, args)], capture_output=True, text=True, env=env,
                              timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        values = dict(line.split("=", 1) for line in proc.stdout.splitlines())
        fetches, servers = [], 0
        for line in self.log.read_text().splitlines():
            if line == SERVER:
                servers += 1
                continue
            m = FETCH.match(line)
            assert m, f"an rclone call that is no ranged cat: {line!r}"
            fetches.append((int(m[1]), int(m[2])))
        return Run(values, fetches, proc.stderr, servers)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Driver:
    assert REAL_RCLONE.exists(), f"{REAL_RCLONE} is missing: make .venv/.test-installed installs rclone"
    return Driver(tmp_path_factory.mktemp("fits_rows"))


# ----------------------------------------------------------------------------- images


def wcs_cards(nx: int, ny: int, crpix: tuple[float, float] | None, tmp: Path) -> fits.Header:
    """make_image's WCS cards (CD matrix, rotated) for an nx x ny image."""
    fitsimages.make_image(tmp, nx=nx, ny=ny, ra=150.0, dec=2.0, crpix=crpix)
    header = fits.getheader(tmp)
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND"):
        header.remove(key, ignore_missing=True)
    return header


def pixels(kind: str, nx: int, ny: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    values = rng.integers(1, 250, size=(ny, nx))
    values[2:5, 3:7] = 0
    return values.astype({"uint8": np.uint8, "int8": np.int8, "int16": np.int16, "uint32": np.uint32,
                          "float32": np.float32, "float64": np.float64, "scaled16": np.float64}[kind])


@dataclass
class Image:
    path: Path
    hdu: int
    nx: int
    ny: int
    bitpix: int

    def hdul_data(self) -> tuple[np.ndarray, fits.Header, int]:
        with fits.open(self.path) as hdul:
            hdu = hdul[self.hdu]
            return np.array(hdu.data), hdu.header.copy(), hdu.fileinfo()["datLoc"]


def write_image(path: Path, kind: str, *, nx: int = 60, ny: int = 50, hdu: int = 0, primary_data: bool = False,
                crpix: tuple[float, float] | None = None, comments: int = 0, alternate: bool = False) -> Image:
    header = wcs_cards(nx, ny, crpix, path.with_suffix(".wcs.fits"))
    if alternate:  # a second WCS, "A": the same axes, another reference pixel
        for key in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"):
            header[key + "A"] = header[key]
        header["CRPIX1A"] = 10.25
        header["CRPIX2A"] = 7.445e02
    for number in range(comments):
        header.add_comment(f"a long header: comment card {number}")
    data = pixels(kind, nx, ny)
    image = (fits.PrimaryHDU if hdu == 0 else fits.ImageHDU)(data=data, header=header)
    if kind == "scaled16":
        image.scale("int16", bscale=0.5, bzero=100.0)
    hdus = [image] if hdu == 0 else [fits.PrimaryHDU(np.arange(35, dtype=np.int16).reshape(5, 7) if primary_data
                                                     else None), image]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    with fits.open(path) as hdul:
        return Image(path, hdu, nx, ny, hdul[hdu].header["BITPIX"])


def rows_for(y: float, width: int, ny: int) -> tuple[int, int]:
    """The rows astcrop reads for a crop of --width=width centred at y, clipped to the image."""
    half = fitsimages.crop_size(width) // 2
    cy = math.floor(y + 0.5)
    return max(1, cy - half), min(ny, cy + half)


# ----------------------------------------------------------------------------- the checks


def check_window(image: Image, window: Path, bands: list[tuple[int, int]]) -> None:
    """astropy: the window spans the bands' rows, holds each band's rows (zeros between them), and its WCS
    puts every pixel where the image's does."""
    data, header, _ = image.hdul_data()
    first, last = bands[0][0], bands[-1][1]
    with fits.open(window) as hdul:
        assert len(hdul) == 1
        assert window.stat().st_size % BLOCK == 0
        window_data = np.array(hdul[0].data)
        window_header = hdul[0].header
    assert window_header["NAXIS2"] == last - first + 1
    covered = np.zeros(last - first + 1, dtype=bool)
    for low, high in bands:
        assert np.array_equal(window_data[low - first:high - first + 1], data[low - 1:high], equal_nan=True)
        covered[low - first:high - first + 1] = True
    raw = raw_rows(window, len(window_header.tostring()), image.nx * abs(image.bitpix) // 8, last - first + 1)
    assert len(raw) == len(covered)
    assert all(not any(row) for row, inside in zip(raw, covered) if not inside)  # the gaps: zero bytes
    for key in ("", "A"):
        if f"CRPIX2{key}" not in header:
            continue
        card = window_header.cards[f"CRPIX2{key}"]
        text = card.image[10:30].strip()
        assert card.image[29] != " " and card.image[8:10] == "= "  # fixed format: value ends in column 30
        assert Decimal(text) == Decimal(header.cards[f"CRPIX2{key}"].image[10:30].strip()) - (first - 1)
        assert card.comment == header.cards[f"CRPIX2{key}"].comment
        whole, part = WCS(header, key=key or " "), WCS(window_header, key=key or " ")
        xs = np.array([1.0, image.nx, 17.25, 1.0, image.nx])
        ys = np.array([first, first, (first + last) / 2, last, last], dtype=float)
        assert np.array_equal(np.array(part.pixel_to_world_values(xs - 1, ys - first)),
                              np.array(whole.pixel_to_world_values(xs - 1, ys - 1)))


def raw_rows(path: Path, header_bytes: int, row_bytes: int, rows: int) -> list[bytes]:
    """The data rows of a one-HDU FITS file, as stored."""
    raw = path.read_bytes()[header_bytes:]
    return [raw[i * row_bytes:(i + 1) * row_bytes] for i in range(rows)]


def check_strip(image: Image, strip: Path, first: int, last: int) -> None:
    """A window of one band."""
    check_window(image, strip, [(first, last)])


def merged(bands: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Bands sorted, and merged where they overlap or touch (as fetch_rows.sh merges them)."""
    out: list[tuple[int, int]] = []
    for low, high in sorted(bands):
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


def wcs_parameters(path: Path) -> tuple:
    w = WCS(fitsimages.read_crop_header(path))
    n = fitsimages.read_crop(path).shape
    corners = w.pixel_to_world_values(np.array([0, n[1] - 1, 0, n[1] - 1]), np.array([0, 0, n[0] - 1, n[0] - 1]))
    matrix = w.wcs.cd if w.wcs.has_cd() else w.wcs.get_pc() * w.wcs.cdelt[:, None]
    return (tuple(w.wcs.crpix), tuple(w.wcs.crval), tuple(map(tuple, matrix)), tuple(w.wcs.ctype),
            tuple(map(tuple, np.array(corners))))


def check_crop(image: Image, strip: Path, first: int, x: float, y: float, width: int, out: Path) -> None:
    """astcrop on the strip at y - (first-1) is astcrop on the whole image at y: pixels and WCS."""
    whole, part = out.with_suffix(".whole.fits"), out.with_suffix(".strip.fits")
    r = fitsimages.astcrop(image.path, x, y, width, whole, hdu=str(image.hdu))
    assert r.returncode == 0 and whole.exists(), r.stderr
    r = fitsimages.astcrop(strip, x, y - (first - 1), width, part, hdu="0")
    assert r.returncode == 0 and part.exists(), r.stderr
    expected, got = fitsimages.read_crop(whole), fitsimages.read_crop(part)
    assert got.shape == (fitsimages.crop_size(width),) * 2
    assert np.array_equal(got, expected, equal_nan=True)
    assert wcs_parameters(part) == wcs_parameters(whole)


def check_sky2xy(image: Image, header_only: Path, driver_dir: Path) -> None:
    """sky2xy reads the header-only file as it reads the image (which it is given with [HDU])."""
    data, header, _ = image.hdul_data()
    wcs = WCS(header)
    for x, y in ((1.0, 1.0), (image.nx / 3, image.ny / 2 + 0.25), (image.nx, image.ny), (-20.0, 3.0)):
        ra, dec = (float(v) for v in wcs.pixel_to_world_values(x - 1, y - 1))
        whole = fitsimages.sky2xy(f"{image.path}[{image.hdu}]", ra, dec)
        alone = fitsimages.sky2xy(header_only, ra, dec)
        assert whole.returncode == 0 and alone.returncode == 0 and whole.x is not None, whole
        assert alone.raw == whole.raw
        px, py = fitsimages.expected_pixel(wcs, ra, dec)
        assert abs(alone.x - px) <= 5e-4 and abs(alone.y - py) <= 5e-4


CASES = {
    "bitpix8": dict(kind="uint8"),
    "bitpix8-bzero": dict(kind="int8"),
    "bitpix16-bscale-bzero": dict(kind="scaled16"),
    "bitpix16": dict(kind="int16"),
    "bitpix32-bzero": dict(kind="uint32"),
    "bitpix-32": dict(kind="float32"),
    "bitpix-64": dict(kind="float64", crpix=(30.5, 21.123456789012)),
    "hdu1": dict(kind="float32", hdu=1),
    "hdu1-primary-data": dict(kind="int16", hdu=1, primary_data=True),
    "long-header-alternate-wcs": dict(kind="float32", comments=700, alternate=True, crpix=(-3.25, 1024.5)),
}
BITPIX = {"uint8": 8, "int8": 8, "scaled16": 16, "int16": 16, "uint32": 32, "float32": -32, "float64": -64}

# (x, y, width): inside, at the bottom edge, at the top edge (past it), on an exact half pixel; W even and odd.
CROPS = ((20.25, 24.75, 21), (41.0, 2.0, 20), (7.5, 49.75, 21), (55.0, 45.5, 9))


@pytest.mark.parametrize("case", list(CASES))
def test_a_window_crops_like_the_whole_image(case: str, driver: Driver, tmp_path: Path) -> None:
    image = write_image(tmp_path / f"{case}.fits", **CASES[case])
    assert image.bitpix == BITPIX[CASES[case]["kind"]]
    _, header, data_offset = image.hdul_data()
    bands = merged([rows_for(y, width, image.ny) for _, y, width in CROPS])
    assert len(bands) == 3  # the two crops at the top share rows
    head, window = tmp_path / "head.fits", tmp_path / "window.fits"
    run = driver.run("window", image.path, image.hdu, head, window, *(f"{first}:{last}" for first, last in bands))
    assert run.problem == ""
    row_bytes = image.nx * abs(image.bitpix) // 8
    assert (run.int("FITS_DATA_OFFSET"), run.int("FITS_NAXIS1"), run.int("FITS_NAXIS2"),
            run.int("FITS_ROW_BYTES")) == (data_offset, image.nx, image.ny, row_bytes)

    # The header, a few blocks at a time, then each band's rows and nothing more.
    header_fetches, row_fetches = run.fetches[:-len(bands)], run.fetches[-len(bands):]
    assert sorted(row_fetches) == sorted(
        (data_offset + (first - 1) * row_bytes, (last - first + 1) * row_bytes) for first, last in bands)
    header_blocks = (len(header) + 1 + 35) // 36
    assert len(header_fetches) <= (1 if header_blocks <= 8 else 3) + (1 if CASES[case].get("primary_data") else 0)
    assert sum(count for _, count in header_fetches) <= max(FIRST_FETCH, 2 * data_offset)

    check_sky2xy(image, head, tmp_path)
    check_window(image, window, bands)
    for number, (x, y, width) in enumerate(CROPS, start=1):
        check_crop(image, window, bands[0][0], x, y, width, tmp_path / f"crop{number}.fits")


def test_bands_are_fetched_eight_at_a_time_into_one_window(driver: Driver, tmp_path: Path) -> None:
    """Twenty bands: every band's rows fetched once, and each in the window at its place."""
    image = write_image(tmp_path / "many.fits", "float32", nx=30, ny=100)
    bands = [(5 * n + 1, 5 * n + 3) for n in range(20)]
    run = driver.run("window", image.path, 0, tmp_path / "h.fits", tmp_path / "w.fits",
                     *(f"{first}:{last}" for first, last in bands))
    assert run.problem == ""
    assert sorted(run.fetches[1:]) == [(BLOCK + (first - 1) * 120, 3 * 120) for first, _ in bands]
    check_window(image, tmp_path / "w.fits", bands)
    assert not list(tmp_path.glob("w.fits.*"))  # no part file left


def test_the_range_server_fetches_every_band_with_one_rclone(driver: Driver, tmp_path: Path) -> None:
    """Through the range server, the header and twenty bands cost one rclone start, and the window is
    the one rclone cat makes; the server and its directory are gone afterwards."""
    image = write_image(tmp_path / "many.fits", "float32", nx=30, ny=100)
    bands = [(5 * n + 1, 5 * n + 3) for n in range(20)]
    (tmp_path / "served").mkdir()
    run = driver.run("served", image.path, 0, tmp_path / "h.fits", tmp_path / "served" / "w.fits",
                     *(f"{first}:{last}" for first, last in bands))
    assert run.problem == "" and run.values["FITS_SERVER_STARTED"] == "true", run.stderr
    assert run.values["FITS_SERVED"] == " ".join(["true"] * 20)
    assert (run.servers, run.fetches) == (1, [])  # the server, and no rclone cat
    check_window(image, tmp_path / "served" / "w.fits", bands)
    assert [p.name for p in (tmp_path / "served").iterdir()] == ["w.fits"]  # no part file, no server left
    plain = driver.run("window", image.path, 0, tmp_path / "h2.fits", tmp_path / "w2.fits",
                       *(f"{first}:{last}" for first, last in bands))
    assert (tmp_path / "w2.fits").read_bytes() == (tmp_path / "served" / "w.fits").read_bytes()
    assert len(plain.fetches) == 21


def test_what_the_range_server_does_not_deliver_goes_by_rclone_cat(driver: Driver, tmp_path: Path) -> None:
    """A band the server cannot deliver whole (past the end of a truncated file) is fetched again by rclone
    cat, which says what is wrong; with no curl, every band goes by rclone cat."""
    image = write_image(tmp_path / "img.fits", "float32")
    truncated = tmp_path / "short.fits"
    truncated.write_bytes(image.path.read_bytes()[:BLOCK + 40 * 60 * 4])
    run = driver.run("served", truncated, 0, tmp_path / "h.fits", tmp_path / "t.fits", "1:10", "38:50")
    assert run.values["FITS_SERVED"] == "true false"
    assert "ends before rows 38:50" in run.problem and run.servers == 1
    assert run.fetches == [(BLOCK + 37 * 240, 13 * 240)]
    assert not list(tmp_path.glob("t.fits*")) and not list(tmp_path.glob("range-server.*"))

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "cat", "date", "dd", "dirname", "head", "mktemp", "rm", "stat", "tail", "tr", "truncate", "wc"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "rclone").symlink_to(driver.script.parent / "bin" / "rclone")
    no_curl = Driver(tmp_path / "d", path=str(bin_dir))
    run = no_curl.run("served", image.path, 0, tmp_path / "h.fits", tmp_path / "n.fits", "1:10", "38:50")
    assert run.problem == "" and run.values["FITS_SERVER_STARTED"] == "false" and run.servers == 0
    assert "no curl on PATH" in run.stderr and len(run.fetches) == 3
    check_window(image, tmp_path / "n.fits", [(1, 10), (38, 50)])


def test_a_window_takes_bands_in_order_and_apart(driver: Driver, tmp_path: Path) -> None:
    image = write_image(tmp_path / "img.fits", "float32")
    for bands in (("10:20", "15:30"), ("30:40", "1:5"), ("3:9", "9:12")):
        run = driver.run("window", image.path, 0, tmp_path / "h.fits", tmp_path / "w.fits", *bands)
        assert "overlaps or precedes the band before it" in run.problem and len(run.fetches) == 1
        assert not (tmp_path / "w.fits").exists()


def test_one_strip_and_its_bytes(driver: Driver, tmp_path: Path) -> None:
    image = write_image(tmp_path / "one.fits", "float32", nx=300, ny=400)
    first, last = rows_for(200.3, 21, image.ny)
    run = driver.run("strip", image.path, 0, tmp_path / "head.fits", first, last, tmp_path / "strip.fits")
    assert run.problem == ""
    assert run.fetches == [(0, FIRST_FETCH), (BLOCK + (first - 1) * 1200, 21 * 1200)]
    assert sum(count for _, count in run.fetches) < 0.11 * image.path.stat().st_size
    check_strip(image, tmp_path / "strip.fits", first, last)
    check_crop(image, tmp_path / "strip.fits", first, 150.0, 200.3, 21, tmp_path / "crop.fits")
    # The header-only file: the primary header alone, padded with spaces.
    head = (tmp_path / "head.fits").read_bytes()
    assert len(head) == BLOCK and head == image.path.read_bytes()[:BLOCK]


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_header_of_an_extension_becomes_a_primary_header(driver: Driver, tmp_path: Path) -> None:
    image = write_image(tmp_path / "ext.fits", "int16", hdu=1, primary_data=True)
    run = driver.run("header", image.path, 1, tmp_path / "head.fits")
    assert run.problem == ""
    raw = (tmp_path / "head.fits").read_bytes()
    assert len(raw) % BLOCK == 0 and raw.rstrip(b" ").endswith(b"END")
    cards = [raw[i:i + 80].decode() for i in range(0, len(raw), 80)]
    assert cards[0].startswith("SIMPLE  =                    T")
    assert not any(c.startswith(("XTENSION", "PCOUNT", "GCOUNT", "EXTEND")) for c in cards)
    with fits.open(tmp_path / "head.fits") as hdul:
        assert len(hdul) == 1 and hdul[0].header["NAXIS2"] == image.ny


def test_rclone_runs_through_the_launcher(tmp_path: Path) -> None:
    """Every rclone goes through LAUNCHER: with no rclone on PATH, only the launcher can find one."""
    launcher = tmp_path / "launch"
    launcher.write_text(f'#!/bin/bash\n[[ "$1" == rclone ]] && shift && printf "%s\\n" "$*" >>"${{FITS_ROWS_LOG:?}}"'
                        f' && exec {REAL_RCLONE} "$@"\nexit 99\n')
    launcher.chmod(0o755)
    driver = Driver(tmp_path / "d", launcher=(str(launcher),), path="/usr/bin:/bin")
    image = write_image(tmp_path / "l.fits", "float32")
    run = driver.run("window", image.path, 0, tmp_path / "head.fits", tmp_path / "w.fits", "1:5", "40:50")
    assert run.problem == "" and len(run.fetches) == 3
    check_window(image, tmp_path / "w.fits", [(1, 5), (40, 50)])


@pytest.mark.s3
def test_ranges_from_s3(driver: Driver, s3_server, s3_bucket: str, tmp_path: Path) -> None:
    """From a real S3 store (range requests), the same window as from the local file; a missing key."""
    image = write_image(tmp_path / "s3.fits", "int16", hdu=1, primary_data=True)
    s3_server.put(image.path, f"{s3_bucket}/dir/image.fits")
    local = driver.run("window", image.path, 1, tmp_path / "local.h.fits", tmp_path / "local.w.fits", "1:11", "30:50")
    remote = driver.run("window", f"ceph:{s3_bucket}/dir/image.fits", 1, tmp_path / "s3.h.fits",
                        tmp_path / "s3.w.fits", "1:11", "30:50", env=s3_server.env())
    assert remote.problem == "" and sorted(remote.fetches) == sorted(local.fetches) and len(remote.fetches) == 3
    assert remote.values == local.values
    for name in ("h.fits", "w.fits"):
        assert (tmp_path / f"s3.{name}").read_bytes() == (tmp_path / f"local.{name}").read_bytes()
    # Through the range server, under a key that URLs must encode: the same window, one rclone start.
    key = "dir/odd [key] é+%#?&=;' x.fits"
    s3_server.put(image.path, f"{s3_bucket}/{key}")
    (tmp_path / "srv").mkdir()
    served = driver.run("served", f"ceph:{s3_bucket}/{key}", 1, tmp_path / "srv.h.fits", tmp_path / "srv" / "w.fits",
                        "1:11", "30:50", env=s3_server.env())
    assert served.problem == "" and served.values["FITS_SERVED"] == "true true", served.stderr
    assert (served.servers, served.fetches) == (1, [])
    assert (tmp_path / "srv.h.fits").read_bytes() == (tmp_path / "local.h.fits").read_bytes()
    assert (tmp_path / "srv" / "w.fits").read_bytes() == (tmp_path / "local.w.fits").read_bytes()
    # A missing key in a bucket is no error to rclone: nothing is read, and the image is "empty".
    missing = driver.run("header", f"ceph:{s3_bucket}/dir/nokey.fits", 0, tmp_path / "m.fits", env=s3_server.env())
    assert "is empty or missing" in missing.problem
    # The server answers 404; rclone cat, asked again, reads nothing: the same problem.
    missing = driver.run("served", f"ceph:{s3_bucket}/dir/nokey.fits", 0, tmp_path / "srv" / "m.fits",
                         tmp_path / "srv" / "w.fits", "1:2", env=s3_server.env())
    assert "is empty or missing" in missing.problem and missing.servers == 1 and len(missing.fetches) == 1


# ----------------------------------------------------------------------------- images it does not take


def header_fetches_only(run: Run, limit: int = 2) -> None:
    assert 1 <= len(run.fetches) <= limit and all(count == FIRST_FETCH for _, count in run.fetches), run.fetches


def test_tile_compressed_image(driver: Driver, tmp_path: Path) -> None:
    path = tmp_path / "comp.fits"
    header = wcs_cards(60, 50, None, tmp_path / "wcs.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(pixels("float32", 60, 50), header)]).writeto(path)
    run = driver.run("strip", path, 1, tmp_path / "head.fits", 1, 10, tmp_path / "s.fits")
    assert "tile-compressed" in run.problem
    header_fetches_only(run, 1)
    assert not (tmp_path / "head.fits").exists() and not (tmp_path / "s.fits").exists()
    run = driver.run("header", path, 0, tmp_path / "head.fits")
    assert "not a 2-D image: NAXIS is 0 (is the image in HDU 1?)" in run.problem


def test_cube(driver: Driver, tmp_path: Path) -> None:
    path = tmp_path / "cube.fits"
    header = wcs_cards(30, 20, None, tmp_path / "wcs.fits")
    fits.PrimaryHDU(np.ones((3, 20, 30), np.float32), header).writeto(path)
    run = driver.run("strip", path, 0, tmp_path / "head.fits", 1, 10, tmp_path / "s.fits")
    assert "not a 2-D image: NAXIS is 3" in run.problem
    header_fetches_only(run, 1)


def test_not_fits(driver: Driver, tmp_path: Path) -> None:
    run = driver.run("strip", fitsimages.make_not_fits(tmp_path / "x.fits"), 0, tmp_path / "h.fits", 1, 1,
                     tmp_path / "s.fits")
    assert run.problem.startswith("not a FITS file") and run.int("FITS_FETCH_STATUS") == 0
    header_fetches_only(run, 1)
    binary = tmp_path / "bin.fits"
    binary.write_bytes(b"SIMPLE  =                    T" + b"\0" * 3000)
    assert driver.run("header", binary, 0, tmp_path / "h.fits").problem.startswith("not a FITS file")


def test_other_problems(driver: Driver, tmp_path: Path) -> None:
    no_wcs = fitsimages.make_no_wcs(tmp_path / "nowcs.fits")
    assert "has no CRPIX2" in driver.run("header", no_wcs, 0, tmp_path / "h.fits").problem
    assert "no HDU 2 in" in (problem := driver.run("header", no_wcs, 2, tmp_path / "h.fits").problem)
    assert problem.endswith("nowcs.fits: it holds HDUs 0 to 0")
    missing = driver.run("header", tmp_path / "missing.fits", 0, tmp_path / "h.fits")
    assert missing.problem.startswith("rclone cat failed") and missing.int("FITS_FETCH_STATUS") != 0

    no_end = tmp_path / "noend.fits"
    no_end.write_bytes("SIMPLE  =                    T".ljust(80).encode() + b" " * (401 * BLOCK))
    run = driver.run("header", no_end, 0, tmp_path / "h.fits")
    assert "no END card in its first 400 header blocks" in run.problem
    assert sum(count for _, count in run.fetches) == 400 * BLOCK and len(run.fetches) <= 8

    image = write_image(tmp_path / "img.fits", "float32")
    for first, last in ((0, 3), (5, 4), (45, 51), ("a", 3)):
        run = driver.run("strip", image.path, 0, tmp_path / "h.fits", first, last, tmp_path / "s.fits")
        assert "are not FIRST:LAST within 1 to 50" in run.problem and len(run.fetches) == 1
        assert not (tmp_path / "s.fits").exists()

    truncated = tmp_path / "short.fits"
    truncated.write_bytes(image.path.read_bytes()[:BLOCK + 40 * 60 * 4])
    run = driver.run("window", truncated, 0, tmp_path / "h.fits", tmp_path / "t.fits", "1:10", "38:50")
    assert "ends before rows 38:50" in run.problem and run.int("FITS_FETCH_STATUS") == 0
    assert not list(tmp_path.glob("t.fits*"))


# ----------------------------------------------------------------------------- exact CRPIX arithmetic


@pytest.mark.parametrize(("value", "delta", "expected"), [
    ("1024.5", 100, "924.5"),
    ("7.445E+02", 100, "644.5"),
    ("-3.25", 1, "-4.25"),
    ("0.5", 1, "-0.5"),
    ("1024", 0, "1024.0"),
    ("1.5D3", 1, "1499.0"),
    ("+2.50", 0, "2.5"),
    (".5", 0, "0.5"),
    ("123456.123456789012", 5, "123451.123456789012"),
    ("1.000000000001", 1, "0.000000000001"),
    ("21.123456789012", 20, "1.123456789012"),
    ("1.0E-20", 0, ""),
    ("1024.5 ", 0, ""),
    ("abc", 0, ""),
    ("", 0, ""),
])
def test_fits_shift_is_exact(value: str, delta: int, expected: str, driver: Driver) -> None:
    run = driver.run("shift", value, delta)
    assert run.values["FITS_DECIMAL"] == expected
    if expected:
        assert Decimal(expected) == Decimal(value.replace("D", "E")) - delta


def test_the_driver_and_library_are_shellcheck_clean() -> None:
    assert check_scripts((render_driver(),)) == ()
