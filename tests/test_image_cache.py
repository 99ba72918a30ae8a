"""Runs that share SCRATCH, under the fake Slurm with the real tools, rclone and S3 server.

Each run gets its own shim state (its own queue and drain), and every run has the same scratch, so
their jobs meet in the image cache. A run reads only the version of an image it fetched, however
the bucket and the other runs change; a download into the cache is whole or absent; no upload
replaces an object that no run wrote; and a key too long for a file name still gets its crop.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from tests.waiting import wait_until
from tests.chain import RA, DEC, Run, assert_crop_in_bucket, crop_key, step_of
from tests.fitsimages import make_image
from tests.s3server import S3Server
from tests.shimlib import SHIMS_DIR, ShimState

pytestmark = [pytest.mark.s3, pytest.mark.tools]

STEPS = ["sync_in", "world_to_pixel", "crop", "sync_out"]


def position(image: Path, x: float, y: float) -> tuple[float, float]:
    """The RA/Dec of 1-based pixel x, y of `image`."""
    ra, dec = WCS(fits.getheader(image)).pixel_to_world_values(x - 1, y - 1)
    return round(float(ra), 7), round(float(dec), 7)


def new_run(scripts: Path, s3: S3Server, tmp_path: Path, name: str, **env: str) -> Run:
    """A run with its own fake Slurm, in the scratch every run of the test shares."""
    return Run(scripts, ShimState(tmp_path / "shims" / name), s3, tmp_path, **env)


def schedule(run: Run, name: str, *objects: dict) -> None:
    (run.workdir / f"{name}.json").write_text("".join(json.dumps(o) + "\n" for o in objects))
    assert run.schedule(f"{name}.json").returncode == 0, run.result.stderr


def jobs_of(run: Run) -> dict[str, dict]:
    return {step_of(job): job for job in run.state.jobs()}


def completed(run: Run) -> dict[str, dict]:
    jobs = jobs_of(run)
    assert {n: j["state"] for n, j in jobs.items()} == dict.fromkeys(STEPS, "COMPLETED"), \
        {n: run.log(j) for n, j in jobs.items()}
    return jobs


def start_drain(run: Run) -> subprocess.Popen:
    """The run's queue, drained in the background, in a process group of its own."""
    return subprocess.Popen([str(SHIMS_DIR / "drain")], env=run.env, cwd=run.workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def stop(process: subprocess.Popen, run: Run) -> None:
    """End a background drain this test started (its process group) and the job it runs (the
    process group the drain started for it), if they still run."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        for job in run.state.jobs():
            if job["state"] == "RUNNING" and job.get("pgid"):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job["pgid"], signal.SIGKILL)
    process.communicate(timeout=60)


def partial_bytes(scratch: Path) -> int:
    """The size of the largest download rclone has in progress under SCRATCH/.../images."""
    return max((p.stat().st_size for p in scratch.rglob("*.partial") if p.is_file()), default=0)


def changed_copy(source: Path, target: Path) -> Path:
    """`source` with other pixels (the same size and WCS): a replaced object."""
    with fits.open(source) as hdus:
        hdus[0].data = (hdus[0].data * -3.0 + 7.0).astype(hdus[0].data.dtype)
        hdus.writeto(target, overwrite=True)
    return target


def test_two_runs_fetching_one_image_at_once_each_read_the_whole_image(
        compile_spec, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    """Run A downloads slowly; run B starts on the same image when A is 40% through, and downloads
    slower still. Sharing rclone's partial file, B's truncation left zeros in A's image (its crop
    all 0), then a full-size image with wrong bytes that a later run trusted."""
    spec = (Path(__file__).parents[1] / "fixtures" / "specs" / "lts-template.yaml").read_text()
    scripts = compile_spec(spec + "exports:\n  - RCLONE_BWLIMIT\n", "bwlimit")
    image = tmp_path / "big.fits"
    nx, ny = 1024, 512  # 2 MiB of float32: 4 s at 512 KiB/s
    make_image(image, nx=nx, ny=ny, ra=RA, dec=DEC, zero_block=None)
    file = f"{s3_bucket}/data/big.fits"
    s3_server.put(image, file)
    # Rows about 150, some 600 KB into the file: B truncates it later than that.
    objects = {name: dict(zip(("ra", "dec"), position(image, 400.0 + 40 * i, 150.0)), file=file, label=name)
               for i, name in enumerate("abc")}
    a = new_run(scripts, s3_server, tmp_path, "a", RCLONE_BWLIMIT="512k")
    b = new_run(scripts, s3_server, tmp_path, "b", RCLONE_BWLIMIT="50k")
    schedule(a, "a", objects["a"])
    schedule(b, "b", objects["b"])
    drain_a = start_drain(a)
    drain_b = None
    try:
        wait_until(lambda: partial_bytes(a.scratch) >= image.stat().st_size * 2 // 5,
                 "run A's download to be 40% through", poll=0.01)
        drain_b = start_drain(b)
        assert drain_a.wait(timeout=120) == 0
        completed(a)
        assert_crop_in_bucket(s3_server, crop_key(file, "a", objects["a"]["ra"], objects["a"]["dec"]), image,
                              a.run_dir / "xy" / "0.xy", objects["a"]["ra"], objects["a"]["dec"], 20, tmp_path)
        assert drain_b.wait(timeout=120) == 0
        completed(b)
        assert_crop_in_bucket(s3_server, crop_key(file, "b", objects["b"]["ra"], objects["b"]["dec"]), image,
                              b.run_dir / "xy" / "0.xy", objects["b"]["ra"], objects["b"]["dec"], 20, tmp_path)
    finally:
        stop(drain_a, a)
        if drain_b is not None:
            stop(drain_b, b)
    # A later run trusts the cache only because it is the bucket's object: it fetches nothing.
    c = new_run(scripts, s3_server, tmp_path, "c")
    schedule(c, "c", objects["c"])
    c.drain()
    jobs = completed(c)
    assert "cached:" in c.log(jobs["sync_in"])
    assert_crop_in_bucket(s3_server, crop_key(file, "c", objects["c"]["ra"], objects["c"]["dec"]), image,
                          c.run_dir / "xy" / "0.xy", objects["c"]["ra"], objects["c"]["dec"], 20, tmp_path)
    assert not list(a.scratch.rglob("*.partial")) and not list(a.scratch.rglob("*.part"))


def test_a_run_crops_the_version_it_fetched_though_the_object_is_replaced_and_fetched_again(
        scripts_dir: Path, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    """Run A fetched the image and placed its object; the object was replaced and run B fetched the new
    version into the shared cache; A then cropped the new image at the old position, exit 0."""
    old, new = tmp_path / "old.fits", tmp_path / "new.fits"
    make_image(old, nx=300, ny=200, ra=RA, dec=DEC)
    changed_copy(old, new)
    file = f"{s3_bucket}/data/frame.fits"
    s3_server.put(old, file)
    ra, dec = position(old, 120.0, 80.0)
    a = new_run(scripts_dir, s3_server, tmp_path, "a")
    schedule(a, "a", {"file": file, "ra": ra, "dec": dec, "label": "a"})
    assert a.state.drain(a.env, cwd=a.workdir, max_jobs=2).returncode == 0  # sync in, world to pixel
    s3_server.put(new, file)
    b = new_run(scripts_dir, s3_server, tmp_path, "b")
    schedule(b, "b", {"file": file, "ra": ra, "dec": dec, "label": "b"})
    b.drain()
    completed(b)
    assert_crop_in_bucket(s3_server, crop_key(file, "b", ra, dec), new, b.run_dir / "xy" / "0.xy", ra, dec, 20,
                          tmp_path)
    a.drain()
    completed(a)
    assert_crop_in_bucket(s3_server, crop_key(file, "a", ra, dec), old, a.run_dir / "xy" / "0.xy", ra, dec, 20,
                          tmp_path)
    # Each run pinned its own version; the cache holds both, under different names.
    pinned_a, pinned_b = a.run_dir / "images" / "0.fits", b.run_dir / "images" / "0.fits"
    assert pinned_a.read_bytes() == old.read_bytes() and pinned_b.read_bytes() == new.read_bytes()
    assert len(list((a.scratch / "lts-template" / "data" / "images").glob("*.fits"))) == 2


def test_a_message_whose_file_a_crop_of_the_run_could_overwrite_is_refused_before_anything_is_submitted(
        scripts_dir: Path, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    """Messages for B/data/frame.fits and for the key its crop gets were accepted, and the second
    image was replaced by the first one's crop."""
    image = tmp_path / "frame.fits"
    make_image(image, nx=300, ny=200, ra=RA, dec=DEC)
    frame = f"{s3_bucket}/data/frame.fits"
    target = crop_key(frame, "galaxy_1", RA, DEC)
    s3_server.put(image, frame)
    s3_server.put(image, target)
    before = s3_server.snapshot()
    run = new_run(scripts_dir, s3_server, tmp_path, "a")
    (run.workdir / "m.json").write_text(json.dumps({"file": frame, "ra": RA, "dec": DEC}) + "\n"
                                        + json.dumps({"file": target, "ra": RA, "dec": DEC, "label": "x"}) + "\n")
    result = run.schedule("m.json")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "m.json:2" in result.stderr and "crop key" in result.stderr
    assert run.state.sbatch_calls() == []
    # Any key of a crop's form in the output location, even one no crop of this run has.
    other = f"{s3_bucket}/data/elsewhere_someone_0123456789ab_crop.fits"
    (run.workdir / "one.json").write_text(json.dumps({"file": other, "ra": RA, "dec": DEC}))
    assert run.schedule("one.json").returncode == 2
    run.drain()
    assert s3_server.snapshot() == before


def test_an_object_that_no_run_wrote_at_a_crop_key_is_never_replaced(
        scripts_dir: Path, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    image = tmp_path / "frame.fits"
    make_image(image, nx=300, ny=200, ra=RA, dec=DEC)
    frame = f"{s3_bucket}/data/frame.fits"
    s3_server.put(image, frame)
    ra, dec = RA + 0.001, DEC
    key = crop_key(frame, "galaxy_1", ra, dec)
    s3_server.put_bytes(b"someone else's file", key)
    run = new_run(scripts_dir, s3_server, tmp_path, "a")
    schedule(run, "a", {"file": frame, "ra": ra, "dec": dec}, {"file": frame, "ra": RA, "dec": DEC})
    run.drain()
    jobs = jobs_of(run)
    assert jobs["sync_out"]["state"] == "COMPLETED", run.log(jobs["sync_out"])
    assert s3_server.get_bytes(key) == b"someone else's file"
    first, second = run.results()["results"]
    assert first["key"] is None and first["error"]["code"] == 2 and "not replaced" in first["error"]["message"]
    assert second["error"] is None
    # A crop an ltsflow run uploaded is replaced by the same request's crop in a later run.
    again = new_run(scripts_dir, s3_server, tmp_path, "b")
    schedule(again, "b", {"file": frame, "ra": RA, "dec": DEC})
    again.drain()
    completed(again)
    assert again.results()["results"][0]["error"] is None
    assert_crop_in_bucket(s3_server, second["key"], image, again.run_dir / "xy" / "0.xy", RA, DEC, 20, tmp_path)


def test_a_key_longer_than_a_file_name_gets_its_crop(scripts_dir: Path, s3_server: S3Server, s3_bucket: str,
                                                     tmp_path: Path) -> None:
    """An image name of 250 bytes made the crop fail: mv: File name too long."""
    image = tmp_path / "frame.fits"
    make_image(image, nx=300, ny=200, ra=RA, dec=DEC)
    file = f"{s3_bucket}/data/{'n' * 245}.fits"
    s3_server.put(image, file)
    run = new_run(scripts_dir, s3_server, tmp_path, "a")
    schedule(run, "a", {"file": file, "ra": RA, "dec": DEC})
    run.drain()
    completed(run)
    assert_crop_in_bucket(s3_server, crop_key(file, "galaxy_1", RA, DEC), image, run.run_dir / "xy" / "0.xy", RA,
                          DEC, 20, tmp_path)


def test_ranged_staging_fails_the_objects_of_an_image_replaced_between_header_and_rows(
        built_spec, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    """The rows were read from the new object at the old header's offsets, and cropped, exit 0."""
    old, new = tmp_path / "old.fits", tmp_path / "new.fits"
    make_image(old, nx=300, ny=200, ra=RA, dec=DEC)
    changed_copy(old, new)
    file = f"{s3_bucket}/data/frame.fits"
    s3_server.put(old, file)
    ra, dec = position(old, 120.0, 80.0)
    run = new_run(built_spec("ranged"), s3_server, tmp_path, "a")
    schedule(run, "a", {"file": file, "ra": ra, "dec": dec})
    assert run.state.drain(run.env, cwd=run.workdir, max_jobs=2).returncode == 0  # headers, world to pixel
    s3_server.put(new, file)
    run.drain()
    [result] = run.results()["results"]
    assert result["key"] is None, result
    assert (result["error"]["code"], result["error"]["step"]) == (7, "fetch_rows.sh")
    assert "changed in the bucket" in result["error"]["message"]
    assert (run.run_dir / "failed" / "0").read_text().split("\t")[0] == "7"
    assert not s3_server.list_objects(s3_bucket, "data/frame_")


RUNS = 20  # the soak: 20 schedule.sh at once on 3 shared images


def test_soak_twenty_runs_at_once_on_three_shared_images(scripts_dir: Path, s3_server: S3Server, s3_bucket: str,
                                                         tmp_path: Path) -> None:
    """20 schedule.sh runs at once on 3 images, in one scratch, their chains drained 8 at once (so each
    image is fetched by several runs at the same time): every crop equals astropy's cutout, and each
    image is in the cache once."""
    images = []
    for number in range(3):
        path = tmp_path / f"image{number}.fits"
        make_image(path, nx=240, ny=200, ra=RA + number, dec=DEC, seed=number)
        s3_server.put(path, f"{s3_bucket}/data/image{number}.fits")
        images.append(path)
    rng = np.random.default_rng(9)
    runs, wanted = [], []
    for index in range(RUNS):
        run = new_run(scripts_dir, s3_server, tmp_path, f"r{index}")
        number = index % 3
        x, y = (float(v) for v in rng.uniform(40, 160, size=2).round(2))
        ra, dec = position(images[number], x, y)
        objects = [{"file": f"{s3_bucket}/data/image{number}.fits", "ra": ra, "dec": dec, "label": f"r{index}"}]
        (run.workdir / f"r{index}.json").write_text("".join(json.dumps(o) + "\n" for o in objects))
        runs.append(run)
        wanted.append(objects)
    with ThreadPoolExecutor(max_workers=RUNS) as pool:
        results = list(pool.map(lambda pair: pair[0].schedule(f"r{pair[1]}.json"), zip(runs, range(RUNS))))
    assert [r.returncode for r in results] == [0] * RUNS, [r.stderr for r in results if r.returncode]
    with ThreadPoolExecutor(max_workers=8) as pool:
        drained = list(pool.map(lambda run: run.state.drain(run.env, cwd=run.workdir), runs))
    assert [d.returncode for d in drained] == [0] * RUNS
    for run, objects in zip(runs, wanted):
        completed(run)
        for index, o in enumerate(objects):
            source = images[int(o["file"][-6])]
            assert_crop_in_bucket(s3_server, crop_key(o["file"], o["label"], o["ra"], o["dec"]), source,
                                  run.run_dir / "xy" / f"{index}.xy", o["ra"], o["dec"], 20, tmp_path)
    cache = tmp_path / "scratch" / "lts-template" / "data" / "images"
    entries = sorted(p.read_bytes() for p in cache.glob("*.fits"))
    assert entries == sorted(path.read_bytes() for path in images)
