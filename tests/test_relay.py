"""Clusters that are not federated: the relay chain, and the hazard it avoids.

The fake Slurm runs non-federated here (LTSFLOW_SHIM_FEDERATED=0): each cluster
has its own job ids and knows nothing of the other's. In relay mode schedule.sh
submits only the first job and each job submits the next when it ends; the
report step records how the run ended.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.chain import crop_key
from tests.chain import DEC, RA, Run, assert_crop_in_bucket
from tests.fitsimages import make_image
from tests.s3server import S3Server
from tests.shimlib import ShimState

pytestmark = [pytest.mark.s3, pytest.mark.tools]

STEPS = ["sync_in", "world_to_pixel", "crop", "sync_out", "report"]


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "frame.fits"
    make_image(path, nx=300, ny=200, ra=RA, dec=DEC)
    return path


@pytest.fixture
def bucket(s3_server: S3Server, s3_bucket: str, image: Path) -> str:
    s3_server.put(image, f"{s3_bucket}/data/frame.fits")
    return s3_bucket


def relay_run(built_spec, shim_state: ShimState, s3_server: S3Server, tmp_path: Path) -> Run:
    return Run(built_spec("relay"), shim_state, s3_server, tmp_path, LTSFLOW_SHIM_FEDERATED="0")


def test_relay_submits_each_job_from_the_one_before_and_makes_the_crop(built_spec, shim_state: ShimState,
                                                                       s3_server: S3Server, bucket: str,
                                                                       image: Path, tmp_path: Path) -> None:
    run = relay_run(built_spec, shim_state, s3_server, tmp_path)
    ra, dec = RA + 0.001, DEC + 0.0005
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=ra, dec=dec)).returncode == 0, \
        run.result.stderr
    assert [c["cluster"] for c in shim_state.sbatch_calls()] == ["zeus"]
    jobs = run.drain()
    assert {step: job["state"] for step, job in jobs.items()} == dict.fromkeys(STEPS, "COMPLETED"), \
        {step: run.log(job) for step, job in jobs.items()}
    calls = shim_state.sbatch_calls()
    assert [c["cluster"] for c in calls] == ["zeus", "magnus", "magnus", "zeus", "zeus"]
    assert not any(a.startswith("--dependency") for c in calls for a in c["argv"])
    # the run records every job as it is created, so status.sh and cancel.sh see them all
    rows = [line.split("\t")[:2] for line in (run.run_dir / "jobs.tsv").read_text().splitlines()[1:]]
    assert rows == [[s, c] for s, c in zip(STEPS, ["zeus", "magnus", "magnus", "zeus", "zeus"])]
    assert_crop_in_bucket(s3_server, crop_key(f"{bucket}/data/frame.fits", "galaxy_1", ra, dec), image,
                          run.run_dir / "xy" / "0.xy", ra, dec, 20, tmp_path)
    report = (run.run_dir / "report.txt").read_text()
    assert report.splitlines()[-1] == "result: succeeded"
    status = subprocess.run(["bash", str(run.scripts / "status.sh"), str(run.run_dir)], env=run.env,
                            capture_output=True, text=True, check=True)
    assert [line.split()[0] for line in status.stdout.splitlines()[1:-2]] == STEPS
    assert all(line.split()[3] == "COMPLETED" for line in status.stdout.splitlines()[1:-2])
    assert status.stdout.splitlines()[-2] == "objects: 1 of 1 succeeded, 0 failed"


def test_a_failed_step_stops_the_relay_and_the_report_records_it(built_spec, shim_state: ShimState,
                                                                 s3_server: S3Server, bucket: str,
                                                                 tmp_path: Path) -> None:
    run = relay_run(built_spec, shim_state, s3_server, tmp_path)
    run.env["LTSFLOW_SHIM_MISSING"] = "sky2xy"  # the step itself fails: no sky2xy in its container
    before = s3_server.snapshot()
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0
    jobs = run.drain()
    assert sorted(jobs) == ["report", "sync_in", "world_to_pixel"]
    assert (jobs["world_to_pixel"]["state"], jobs["world_to_pixel"]["exit_code"]) == ("FAILED", 3)
    assert jobs["report"]["state"] == "COMPLETED"
    assert shim_state.queued() == []
    report = (run.run_dir / "report.txt").read_text()
    assert "world_to_pixel: FAILED exit 3:0" in report.splitlines()[-1]
    assert [line.split()[:4] for line in report.splitlines() if line.split()[3:4] == ["NOT_SUBMITTED"]] == [
        ["crop", "-", "-", "NOT_SUBMITTED"], ["sync_out", "-", "-", "NOT_SUBMITTED"]]
    assert s3_server.snapshot() == before


def test_cancel_stops_a_relay_run_on_every_cluster(built_spec, shim_state: ShimState, s3_server: S3Server,
                                                   bucket: str, tmp_path: Path) -> None:
    run = relay_run(built_spec, shim_state, s3_server, tmp_path)
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0
    cancelled = subprocess.run(["bash", str(run.scripts / "cancel.sh"), str(run.run_dir)], env=run.env,
                               capture_output=True, text=True, check=False)
    assert cancelled.returncode == 0, cancelled.stderr
    assert [c["argv"] for c in shim_state.calls("scancel")] == [["--clusters=zeus", str(shim_state.jobs()[0]["id"])]]
    run.drain()
    assert [job["state"] for job in shim_state.jobs()] == ["CANCELLED"]
    assert (run.run_dir / "cancelled").exists()


def test_dependencies_across_clusters_without_a_federation_do_not_wait(built_spec, shim_state: ShimState,
                                                                        tmp_path: Path) -> None:
    """The hazard `ltsflow check` refuses: magnus does not know zeus's job id, so it does not wait."""
    scripts = built_spec("lts-template")  # says federated: true; the fake clusters are not
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    (workdir / "m.json").write_text('{"file": "bucket/data/frame.fits", "ra": "1", "dec": "1"}')
    env = shim_state.env(MYSCRATCH=str(tmp_path / "scratch"), LTSFLOW_SHIM_FEDERATED="0",
                         RCLONE_CONFIG_CEPH_ACCESS_KEY_ID="x", RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY="y")
    result = subprocess.run(["bash", str(scripts / "schedule.sh"), "m.json"], cwd=workdir, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    _sync_in, world_to_pixel, crop, sync_out = shim_state.jobs()

    def resolved(job: dict) -> list:
        return [ident["ref"] for item in job["dependencies"]["items"] for ident in item["ids"]]

    # world_to_pixel (magnus) waits for a zeus id that magnus does not know: satisfied at once
    assert resolved(world_to_pixel) == [None]
    # crop waits for world_to_pixel on its own cluster: a real dependency
    assert resolved(crop) != [None]
    assert resolved(sync_out) == [None]
