"""fixtures/specs/setonix-acacia.yaml: Pawsey's current system, Setonix and Acacia, compiled with no
change to the compiler, and a step's rclone flags as data.

The spec's sync-in step asks for --local-no-set-modtime: its copies into scratch keep the time of
the copy as their modification time, not the object's (Pawsey's scratch purge goes by it). rclone
gets the flag as RCLONE_LOCAL_NO_SET_MODTIME in the job's environment, and only that job does.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from compiler.build import step_lines
from compiler.load import load_spec
from compiler.plan import plan_jobs
from compiler.validate import validate_spec
from tests.chain import RA, DEC, Run, assert_crop_in_bucket, crop_key, step_of
from tests.fitsimages import make_image
from tests.s3server import S3Server
from tests.shimlib import ShimState

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "fixtures" / "specs" / "setonix-acacia.yaml"
OLD = 1_000_000_000  # 2001-09-09: the image's modification time when it was uploaded


def test_the_spec_plans_one_cluster_with_the_flag_on_sync_in_only() -> None:
    document = load_spec(SPEC.read_text(), str(SPEC))
    graph = plan_jobs(validate_spec(document), step_lines(document))
    assert {job.name: (job.cluster, job.partition) for job in graph.jobs} == {
        "sync_in": ("setonix", "copy"), "world_to_pixel": ("setonix", "work"), "crop": ("setonix", "work"),
        "sync_out": ("setonix", "copy")}
    assert {job.name: job.settings for job in graph.jobs} == {
        "sync_in": (("RCLONE_LOCAL_NO_SET_MODTIME", "true"),), "world_to_pixel": (), "crop": (), "sync_out": ()}


@pytest.mark.s3
@pytest.mark.tools
def test_setonix_turns_a_message_into_the_crop_and_scratch_keeps_the_copys_time(
        built_spec, shim_state: ShimState, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    image = tmp_path / "frame.fits"
    make_image(image, nx=300, ny=200, ra=RA, dec=DEC)
    os.utime(image, (OLD, OLD))
    s3_server.put(image, f"{s3_bucket}/data/frame.fits")  # rclone keeps the old time as the object's
    scripts = built_spec("setonix-acacia")
    run = Run(scripts, shim_state, s3_server, tmp_path, remote="acacia")
    started = time.time()
    ra, dec = RA + 0.002, DEC - 0.001
    assert run.schedule(run.message(file=f"{s3_bucket}/data/frame.fits", ra=str(ra), dec=str(dec))).returncode == 0, \
        run.result.stderr
    run.drain()
    jobs = {step_of(job, "lts-setonix"): job for job in shim_state.jobs()}
    assert {name: (job["state"], job["cluster"], job["partition"]) for name, job in jobs.items()} == {
        "sync_in": ("COMPLETED", "setonix", "copy"), "world_to_pixel": ("COMPLETED", "setonix", "work"),
        "crop": ("COMPLETED", "setonix", "work"), "sync_out": ("COMPLETED", "setonix", "copy")}, \
        {n: run.log(j) for n, j in jobs.items()}
    key = crop_key(f"{s3_bucket}/data/frame.fits", "galaxy_1", str(ra), str(dec))
    assert_crop_in_bucket(s3_server, key, image, run.run_dir / "xy" / "0.xy", ra, dec, 20, tmp_path)
    # The run's copy of the image has the time of the copy, not the object's.
    assert (run.run_dir / "images" / "0.fits").stat().st_mtime >= started - 1
    # Only the sync-in job was given the flag.
    given = {}
    for job in shim_state.jobs():
        exported = json.loads((shim_state.path / "jobs" / str(job["seq"]) / "environment").read_text())
        given[step_of(job, "lts-setonix")] = exported.get("RCLONE_LOCAL_NO_SET_MODTIME")
    assert given == {"sync_in": "true", "world_to_pixel": None, "crop": None, "sync_out": None}
    loaded = [call["argv"] for call in shim_state.calls("module")]
    assert ["load", "rclone/1.68.1"] in loaded and ["load", "singularity/4.1.0-slurm"] in loaded, loaded
