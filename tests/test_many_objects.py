"""Many objects in one run, under the fake Slurm with the real tools and a real S3 server.

One object's failure never costs another its crop; every object's outcome is in results.json; a
crop's key is stable for its request and distinct for distinct positions; the tools run once per
image, and batched crops equal single-object crops.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.chain import RA, DEC, Run, assert_crop_in_bucket, crop_key
from tests.fitsimages import make_image, make_not_fits
from tests.s3server import S3Server
from tests.shimlib import ShimState

pytestmark = [pytest.mark.s3, pytest.mark.tools]


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    frame = tmp_path / "frame.fits"
    make_image(frame, nx=300, ny=200, ra=RA, dec=DEC, zero_block=(140, 90, 160, 110))
    second = tmp_path / "second.fits"
    make_image(second, nx=120, ny=90, ra=200.0, dec=-30.0, rotation_deg=-10.0)
    return {"frame": frame, "second": second}


@pytest.fixture
def bucket(s3_server: S3Server, s3_bucket: str, images: dict[str, Path], tmp_path: Path) -> str:
    s3_server.put(images["frame"], f"{s3_bucket}/data/frame.fits")
    s3_server.put(images["second"], f"{s3_bucket}/data/second.fits")
    s3_server.put(make_not_fits(tmp_path / "fake.fits"), f"{s3_bucket}/data/fake.fits")
    return s3_bucket


def snapshot_others(snapshot: dict[str, str], keys: list[str]) -> dict[str, str]:
    return {k: v for k, v in snapshot.items() if k not in keys}


def messages(run: Run, name: str, *objects: dict) -> str:
    (run.workdir / name).write_text("".join(json.dumps(o) + "\n" for o in objects))
    return name


def test_bad_objects_cost_no_good_object_its_crop(scripts_dir: Path, shim_state: ShimState, s3_server: S3Server,
                                                  bucket: str, images: dict[str, Path], tmp_path: Path) -> None:
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    frame, second = f"{bucket}/data/frame.fits", f"{bucket}/data/second.fits"
    good = [(frame, RA + 0.001, DEC, "a"), (frame, RA - 0.002, DEC + 0.001, "b"), (second, 200.0, -30.0, "c")]
    bad = [(frame, RA + 0.5, DEC, "off", 5, "get_world_2_pix.sh"),
           (f"{bucket}/data/absent.fits", RA, DEC, "gone", 4, "sync.sh"),
           (f"{bucket}/data/fake.fits", RA, DEC, "fake", 6, "get_world_2_pix.sh")]
    order = [good[0], bad[0], good[1], bad[1], good[2], bad[2]]
    inputs = messages(run, "batch.json", *({"file": o[0], "ra": o[1], "dec": o[2], "label": o[3]} for o in order))
    before = s3_server.snapshot()
    assert run.schedule(inputs).returncode == 0, run.result.stderr
    jobs = run.drain()
    assert {n: j["state"] for n, j in jobs.items()} == dict.fromkeys(
        ["sync_in", "world_to_pixel", "crop", "sync_out"], "COMPLETED"), {n: run.log(j) for n, j in jobs.items()}
    results = run.results()
    assert (results["objects"], results["succeeded"], results["failed"]) == (6, 3, 3)
    by_label = {r["label"]: r for r in results["results"]}
    for file, ra, dec, label in good:
        key = crop_key(file, label, ra, dec)
        assert by_label[label]["key"] == key and by_label[label]["error"] is None
        index = by_label[label]["index"]
        source = images["frame"] if "frame" in file else images["second"]
        assert_crop_in_bucket(s3_server, key, source, run.run_dir / "xy" / f"{index}.xy", ra, dec, 20, tmp_path)
    for file, _, _, label, code, step in bad:
        entry = by_label[label]
        assert entry["key"] is None and (entry["error"]["code"], entry["error"]["step"]) == (code, step), entry
        assert entry["file"] == file and entry["messages"] == [f"batch.json:{order.index(next(o for o in order if o[3] == label)) + 1}"]
    added = set(s3_server.snapshot()) - set(before)
    assert added == {run.results_key, *(crop_key(f, label, ra, dec) for f, ra, dec, label in good)}
    assert json.loads(s3_server.get_bytes(run.results_key)) == results
    status = run.status()
    assert status.returncode == 9, status.stdout + status.stderr
    assert "objects: 3 of 6 succeeded, 3 failed" in status.stdout


def test_crop_keys_are_stable_across_runs_and_distinct_for_distinct_positions(
        scripts_dir: Path, shim_state: ShimState, s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    frame = f"{bucket}/data/frame.fits"
    batch = [{"file": frame, "ra": RA, "dec": DEC},                      # default label: galaxy_1
             {"file": frame, "ra": RA + 0.001, "dec": DEC},              # same label, another position
             {"file": frame, "ra": "10:00:00", "dec": "+02:00:00"},      # the first position, sexagesimal
             {"file": frame, "ra": RA, "dec": DEC, "label": "other"}]    # the first position, another label
    first = Run(scripts_dir, shim_state, s3_server, tmp_path)
    assert first.schedule(messages(first, "batch.json", *batch)).returncode == 0, first.result.stderr
    first.drain()
    keys = [r["key"] for r in first.results()["results"]]
    assert len(keys) == 3 and len(set(keys)) == 3
    assert [r["messages"] for r in first.results()["results"]] == [["batch.json:1", "batch.json:3"],
                                                                   ["batch.json:2"], ["batch.json:4"]]
    assert keys == [crop_key(frame, "galaxy_1", RA, DEC), crop_key(frame, "galaxy_1", RA + 0.001, DEC),
                    crop_key(frame, "other", RA, DEC)]
    assert len(shim_state.calls("singularity")) == 2
    snapshot = s3_server.snapshot()

    again = Run(scripts_dir, shim_state, s3_server, tmp_path)
    assert again.schedule(messages(again, "batch.json", *batch)).returncode == 0, again.result.stderr
    again.drain()
    assert [r["key"] for r in again.results()["results"]] == keys
    after = s3_server.snapshot()
    # The same keys are written again (astcrop stamps each crop with its DATE), and nothing else.
    assert set(after) - {again.results_key} == set(snapshot)
    assert {k: v for k, v in after.items() if k not in keys and k != again.results_key} == snapshot_others(snapshot, keys)


def test_tools_run_once_per_image_whatever_the_number_of_objects(scripts_dir: Path, shim_state: ShimState,
                                                                 s3_server: S3Server, bucket: str,
                                                                 tmp_path: Path) -> None:
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    objects = [{"file": f"{bucket}/data/frame.fits", "ra": RA + 0.0005 * i, "dec": DEC, "label": f"f{i}"}
               for i in range(12)]
    objects += [{"file": f"{bucket}/data/second.fits", "ra": 200.0, "dec": -30.0 + 0.001 * i, "label": f"s{i}"}
                for i in range(5)]
    assert run.schedule(messages(run, "batch.json", *objects)).returncode == 0, run.result.stderr
    jobs = run.drain()
    assert all(j["state"] == "COMPLETED" for j in jobs.values()), {n: run.log(j) for n, j in jobs.items()}
    assert len(shim_state.sbatch_calls()) == 4
    tools = [c["command"][0] for c in shim_state.calls("singularity")]
    assert tools == ["sky2xy", "sky2xy", "astcrop", "astcrop"]
    assert run.results()["succeeded"] == 17
    assert (run.run_dir / "sync_in.list").read_text().splitlines() == [f"{bucket}/data/frame.fits",
                                                                       f"{bucket}/data/second.fits"]


def test_batched_crops_equal_single_object_crops(scripts_dir: Path, shim_state: ShimState, s3_server: S3Server,
                                                 bucket: str, images: dict[str, Path], tmp_path: Path) -> None:
    """The batch (one sky2xy and one astcrop catalog run) against one run of each script per object."""
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    # Near the edges too: the crop at the corner is partly off the image and padded.
    positions = [(RA, DEC), (RA + 0.004, DEC - 0.003), (RA - 0.0081, DEC + 0.0054), (RA + 0.0083, DEC - 0.0055)]
    objects = [{"file": f"{bucket}/data/frame.fits", "ra": ra, "dec": dec, "label": f"o{i}"}
               for i, (ra, dec) in enumerate(positions)]
    assert run.schedule(messages(run, "batch.json", *objects)).returncode == 0, run.result.stderr
    run.drain()
    assert run.results()["succeeded"] == len(positions)
    single = tmp_path / "single"
    single.mkdir()
    env = shim_state.env()
    for index, (ra, dec) in enumerate(positions):
        xy, crop = single / f"{index}.xy", single / f"{index}.fits"
        for script, arguments in (("get_world_2_pix.sh", [str(images["frame"]), str(ra), str(dec), str(xy)]),
                                  ("crop_image_around_pixels.sh", [str(images["frame"]), str(crop), str(xy),
                                                                   f"o{index}", "20"])):
            done = subprocess.run(["bash", str(scripts_dir / script), *arguments], env=env, capture_output=True,
                                  text=True, check=False)
            assert done.returncode == 0, done.stderr
        assert (run.run_dir / "xy" / f"{index}.xy").read_text() == xy.read_text()
        batched = run.run_dir / "out" / f"{index}.fits"
        with fits.open(batched) as ours, fits.open(crop) as theirs:
            assert len(ours) == len(theirs) == 2
            assert np.array_equal(ours[1].data, theirs[1].data, equal_nan=True)
            differ = {k for k in set(ours[1].header) | set(theirs[1].header)
                      if ours[1].header.get(k) != theirs[1].header.get(k)}
            assert differ <= {"DATE"}, differ


def test_a_run_where_every_object_fails_uploads_only_the_results(scripts_dir: Path, shim_state: ShimState,
                                                                 s3_server: S3Server, bucket: str,
                                                                 tmp_path: Path) -> None:
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    before = s3_server.snapshot()
    batch = messages(run, "batch.json", {"file": f"{bucket}/data/frame.fits", "ra": RA + 0.5, "dec": DEC},
                     {"file": f"{bucket}/data/absent.fits", "ra": RA, "dec": DEC})
    assert run.schedule(batch).returncode == 0, run.result.stderr
    jobs = run.drain()
    assert (jobs["sync_out"]["state"], jobs["sync_out"]["exit_code"]) == ("FAILED", 5)
    assert set(s3_server.snapshot()) - set(before) == {run.results_key}
    assert [r["error"]["code"] for r in run.results()["results"]] == [5, 4]
    status = run.status()
    assert status.returncode == 9 and "objects: 0 of 2 succeeded, 2 failed" in status.stdout
