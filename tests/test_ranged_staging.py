"""Ranged staging end to end, under the fake Slurm with the real tools, rclone and S3 server.

fixtures/specs/ranged.yaml fetches each image's header, lets sky2xy place the objects from it,
then fetches only the rows the crops need into a window of the image: its crops must equal, in pixels and in
WCS, those of the full fetch (fixtures/specs/lts-template.yaml) for the same messages. An image
unfit for ranges is copied whole, and the log says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.chain import RA, DEC, Run
from tests.fitsimages import make_image
from tests.s3server import S3Server
from tests.shimlib import ShimState

pytestmark = [pytest.mark.s3, pytest.mark.tools]

NX, NY = 400, 300
WCS_KEYS = ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CD1_1", "CD1_2", "CD2_1", "CD2_2", "CTYPE1", "CTYPE2")


@pytest.fixture
def bucket(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> str:
    make_image(tmp_path / "frame.fits", nx=NX, ny=NY, ra=RA, dec=DEC)
    s3_server.put(tmp_path / "frame.fits", f"{s3_bucket}/data/frame.fits")
    return s3_bucket


def pixel_to_world(image: Path, x: float, y: float) -> tuple[float, float]:
    from astropy.wcs import WCS

    ra, dec = WCS(fits.getheader(image)).pixel_to_world_values(x - 1, y - 1)
    return round(float(ra), 7), round(float(dec), 7)


def run_chain(scripts: Path, shim_state: ShimState, s3: S3Server, tmp_path: Path, name: str,
              objects: list[dict]) -> tuple[Run, dict[str, dict]]:
    directory = tmp_path / name
    directory.mkdir()
    run = Run(scripts, shim_state, s3, directory)
    (run.workdir / "batch.json").write_text("".join(json.dumps(o) + "\n" for o in objects))
    assert run.schedule("batch.json").returncode == 0, run.result.stderr
    jobs = run.drain()
    assert all(job["state"] == "COMPLETED" for job in jobs.values()), {n: run.log(j) for n, j in jobs.items()}
    return run, jobs


def test_ranged_crops_equal_full_fetch_crops(built_spec, shim_state: ShimState, s3_server: S3Server, bucket: str,
                                             tmp_path: Path) -> None:
    image = tmp_path / "frame.fits"
    # Inside, at the bottom and top edges (partly off), two sharing rows, and one off the image.
    pixels = [(200.2, 150.7), (30.0, 2.4), (370.5, 299.6), (120.0, 80.0), (140.0, 86.0), (60.0, 160.5)]
    objects = [{"file": f"{bucket}/data/frame.fits", "ra": ra, "dec": dec, "label": f"o{i}"}
               for i, (ra, dec) in enumerate(pixel_to_world(image, x, y) for x, y in pixels)]
    objects.append({"file": f"{bucket}/data/frame.fits", "ra": RA + 0.5, "dec": DEC, "label": "off"})
    calls = len(shim_state.sbatch_calls())
    ranged, ranged_jobs = run_chain(built_spec("ranged"), shim_state, s3_server, tmp_path, "ranged", objects)
    assert len(shim_state.sbatch_calls()) - calls == 5
    tools = [c["command"][0] for c in shim_state.calls("singularity")]
    # One sky2xy and one astcrop for the image, whatever its bands of rows.
    assert tools == ["sky2xy", "astcrop"], tools
    full, _ = run_chain(built_spec("lts-template"), shim_state, s3_server, tmp_path, "full", objects)
    ours, theirs = ranged.results()["results"], full.results()["results"]
    assert [r["key"] for r in ours] == [r["key"] for r in theirs]
    assert [(r["error"] or {}).get("code") for r in ours] == [None] * 6 + [5]
    assert (ranged.run_dir / "xy" / "0.xy").read_text() == (full.run_dir / "xy" / "0.xy").read_text()
    for entry in ours[:6]:
        (tmp_path / "a.fits").write_bytes(s3_server.get_bytes(entry["key"]))
        with fits.open(tmp_path / "a.fits") as a, \
                fits.open(ranged.run_dir / "out" / f"{entry['index']}.fits") as b, \
                fits.open(full.run_dir / "out" / f"{entry['index']}.fits") as c:
            assert np.array_equal(a[1].data, b[1].data, equal_nan=True)
            assert np.array_equal(b[1].data, c[1].data, equal_nan=True), entry["label"]
            assert [b[1].header.get(k) for k in WCS_KEYS] == [c[1].header.get(k) for k in WCS_KEYS], entry["label"]
    staged = ranged.run_dir / "images" / "0.fits"
    assert staged.stat().st_size < 2880 * 4  # the header alone
    # Rows 141-161 and 151-171 merge, as do 70-90 and 76-96: four bands, in one window of rows 1-300
    # whose gaps are holes: on disk, no more than the bands' rows and a block or two each.
    rows_log = ranged.log(ranged_jobs["sync_in_rows"])
    assert "6 object(s) in 4 band(s) of rows, 4 by the range server: 1:12 70:96 141:171 290:300" in rows_log
    assert "Xfers" not in rows_log  # no progress meter of curl's
    window = staged.with_name("0.fits.rows.fits")
    assert window.stat().st_size == staged.stat().st_size + -(-NX * 4 * 300 // 2880) * 2880
    assert window.stat().st_blocks * 512 <= NX * 4 * (12 + 27 + 31 + 11) + 2880 * 2 + 4 * 2 * 4096


def test_an_image_unfit_for_ranges_is_copied_whole_and_the_log_says_why(built_spec, shim_state: ShimState,
                                                                        s3_server: S3Server, s3_bucket: str,
                                                                        tmp_path: Path) -> None:
    path = tmp_path / "nocrpix.fits"
    make_image(path, nx=120, ny=90, ra=RA, dec=DEC)
    with fits.open(path, mode="update") as hdus:
        del hdus[0].header["CRPIX2"]  # sky2xy and astcrop take 0; a strip could not say where it is
    s3_server.put(path, f"{s3_bucket}/data/nocrpix.fits")
    ra, dec = pixel_to_world(path, 60.0, 45.0)
    run, jobs = run_chain(built_spec("ranged"), shim_state, s3_server, tmp_path, "run",
                          [{"file": f"{s3_bucket}/data/nocrpix.fits", "ra": ra, "dec": dec}])
    assert "full fetch of" in run.log(jobs["sync_in"]) and "CRPIX2" in run.log(jobs["sync_in"])
    staged = run.run_dir / "images" / "0.fits"
    assert staged.read_bytes() == path.read_bytes()
    assert run.results()["succeeded"] == 1


def test_headers_of_many_images_fetched_at_once_each_reach_their_objects(built_spec, shim_state: ShimState,
                                                                         s3_server: S3Server, s3_bucket: str,
                                                                         tmp_path: Path) -> None:
    """Sync in fetches up to eight images' headers at once: every image's objects get their own
    header's pixels and crops, and an image missing from the bucket fails only its own object."""
    objects = []
    for number in range(10):
        path = tmp_path / f"f{number}.fits"
        make_image(path, nx=120 + 10 * number, ny=90 + number, ra=RA + 0.01 * number, dec=DEC)
        s3_server.put(path, f"{s3_bucket}/data/f{number}.fits")
        ra, dec = pixel_to_world(path, 40.0 + number, 30.0 + number)
        objects.append({"file": f"{s3_bucket}/data/f{number}.fits", "ra": ra, "dec": dec})
    objects.insert(4, {"file": f"{s3_bucket}/data/missing.fits", "ra": RA, "dec": DEC})
    run, jobs = run_chain(built_spec("ranged"), shim_state, s3_server, tmp_path, "run", objects)
    results = run.results()
    assert (results["succeeded"], results["failed"]) == (10, 1), results
    failed = [r for r in results["results"] if r["error"] is not None]
    assert [(r["file"], r["error"]["code"]) for r in failed] == [(f"{s3_bucket}/data/missing.fits", 4)]
    assert "11 object(s) in 11 group(s): 1 failed" in run.log(jobs["sync_in"]), run.log(jobs["sync_in"])
    for number in range(10):
        x, y = (float(v) for v in (run.run_dir / "xy" / f"{number + (number >= 4)}.xy").read_text().split()[4:6])
        assert (round(x, 3), round(y, 3)) == (40.0 + number, 30.0 + number)
