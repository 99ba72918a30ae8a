"""Scratch read-only or full: schedule.sh says so and leaves nothing; a job that fails for want of
space is explained by status.sh, although its own log is empty.

The scratch here is a tmpfs of its own, mounted read-only, or small and filled up: what a read-only
or full Lustre looks like to a script (EROFS, ENOSPC). Mounting needs root, which the tests have
here and in CI; a chmod'ed directory would not stop root from writing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chain import DEC, RA, Run
from tests.fitsimages import make_image
from tests.s3server import S3Server
from tests.shimlib import ShimState

IMAGE = "lts-template/data/frame.fits"
SECRETS = {"RCLONE_CONFIG_CEPH_ACCESS_KEY_ID": "id", "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY": "secret"}


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    assert os.geteuid() == 0, "these tests mount a tmpfs, which needs root"
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "ltsflow-test", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(directory: Path) -> None:
    """Write into `directory` until its filesystem is full."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


def schedule(scripts: Path, state: ShimState, tmp_path: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    (workdir / "message.json").write_text(json.dumps({"file": IMAGE, "ra": "0.1", "dec": "0.25"}))
    env = state.env({k: v for k, v in os.environ.items() if not k.startswith("RCLONE_CONFIG_")},
                    MYSCRATCH=str(scratch), **SECRETS)
    return subprocess.run(["bash", str(scripts / "schedule.sh"), "message.json"], cwd=workdir, env=env,
                          capture_output=True, text=True, check=False, timeout=120)


def test_a_read_only_scratch_stops_schedule_with_its_own_exit_code_and_leaves_nothing(
        scripts_dir: Path, shim_state: ShimState, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "scratch", "1m", read_only=True) as scratch:
        result = schedule(scripts_dir, shim_state, tmp_path, scratch)
        assert result.returncode == 10, result.stderr
        assert f"scratch {scratch}/lts-template/data is not writable (read-only, or no permission)" in result.stderr
        assert "unexpected" not in result.stderr
        assert list(scratch.iterdir()) == []
    assert shim_state.sbatch_calls() == []


def test_a_full_scratch_stops_schedule_with_its_own_exit_code_and_leaves_nothing(
        scripts_dir: Path, shim_state: ShimState, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "scratch", "64k") as scratch:
        data = scratch / "lts-template" / "data"
        (data / "runs").mkdir(parents=True)
        (data / "images").mkdir()
        fill(scratch)
        result = schedule(scripts_dir, shim_state, tmp_path, scratch)
        assert result.returncode == 10, result.stderr
        assert f"in scratch {data} (0 KiB free): is it full?" in result.stderr
        assert "unexpected" not in result.stderr
        assert list((data / "runs").iterdir()) == []
    assert shim_state.sbatch_calls() == []


def scheduled_on(scratch: Path, scripts_dir: Path, shim_state: ShimState, s3_server: S3Server, s3_bucket: str,
                 tmp_path: Path) -> Run:
    """A one-object run scheduled with its scratch on `scratch`, its image in the bucket."""
    image = tmp_path / "frame.fits"
    make_image(image, nx=300, ny=200, ra=RA, dec=DEC)
    s3_server.put(image, f"{s3_bucket}/data/frame.fits")
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    assert run.scratch == scratch
    assert run.schedule(run.message(file=f"{s3_bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0, \
        run.result.stderr
    return run


@pytest.mark.s3
def test_a_job_failed_by_a_full_scratch_is_explained_by_status(scripts_dir: Path, shim_state: ShimState,
                                                                s3_server: S3Server, s3_bucket: str,
                                                                tmp_path: Path) -> None:
    with tmpfs(tmp_path / "scratch", "4m") as scratch:
        run = scheduled_on(scratch, scripts_dir, shim_state, s3_server, s3_bucket, tmp_path)
        # sync in and world to pixel run; then scratch fills up, before the crop
        assert shim_state.drain(run.env, cwd=run.workdir, max_jobs=2).returncode == 0
        fill(scratch)
        assert shim_state.drain(run.env, cwd=run.workdir).returncode == 0
        crop = next(job for job in shim_state.jobs() if "-crop-" in job["name"])
        assert crop["state"] == "FAILED"
        log = run.run_dir / "logs" / f"crop-{crop['id']}.log"
        assert log.read_bytes() == b""
        status = run.status()
        assert status.returncode == 9, status.stderr
        assert (f"note: crop job {crop['id']} ended FAILED (exit {crop['exit_code']}:0) and left an empty log ({log}); "
                "scratch has 0 KiB free: a full or read-only scratch fails a job this way") in status.stdout, status.stdout
        assert status.stdout.splitlines()[-1].startswith("result: failed (crop: FAILED")


@pytest.mark.s3
def test_status_report_on_a_full_scratch_prints_the_report_and_says_it_could_not_write_it(
        scripts_dir: Path, shim_state: ShimState, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "scratch", "4m") as scratch:
        run = scheduled_on(scratch, scripts_dir, shim_state, s3_server, s3_bucket, tmp_path)
        assert shim_state.drain(run.env, cwd=run.workdir, max_jobs=1).returncode == 0
        fill(scratch)
        report = subprocess.run(["bash", str(scripts_dir / "status.sh"), "--report", str(run.run_dir)],
                                cwd=run.workdir, env=run.env, capture_output=True, text=True, check=False, timeout=60)
        plain = run.status()
        assert report.returncode == 10, report.stderr
        # the same report as status.sh prints, on stdout; no report.txt, not even an empty one
        assert report.stdout == plain.stdout
        assert report.stdout.splitlines()[-1] == "result: running", report.stdout
        assert not (run.run_dir / "report.txt").exists()
        assert "unexpected" not in report.stderr
        assert (f"status.sh: error: could not write the report into {run.run_dir}/report.txt "
                f"(scratch has 0 KiB free): it is on stdout only") in report.stderr, report.stderr
