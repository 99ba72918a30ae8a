"""sync.sh when the S3 endpoint dies or goes silent: it fails in bounded time, saying so.

rclone's own defaults (a 1 minute connect time-out, a 5 minute I/O time-out, 3 retries of 10
low-level retries each) keep a sync step retrying a dead endpoint for many minutes. The spec's
remote sets them instead (connect_timeout, io_timeout, retries, low_level_retries), and sync.sh
hands them to rclone as RCLONE_* variables, never in argv.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.waiting import wait_until
from tests.s3server import S3Server
from tests.shimlib import ShimState

pytestmark = pytest.mark.s3  # every test here talks to a real S3 server

ROOT = Path(__file__).resolve().parents[1]
SPEC = (ROOT / "fixtures" / "specs" / "lts-template.yaml").read_text()
TIGHT = "    connect_timeout: 1\n    io_timeout: 2\n    retries: 1\n    low_level_retries: 1\n"


def with_limits(limits: str) -> str:
    anchor = "    credentials: [ACCESS_KEY_ID, SECRET_ACCESS_KEY]\n"
    assert anchor in SPEC
    return SPEC.replace(anchor, anchor + limits)


def sync_in(scripts: Path, env: dict[str, str], tmp_path: Path, key: str) -> subprocess.Popen[str]:
    """sync.sh as the sync-in job runs it: one object on image `key`, fetched into a cache."""
    run = tmp_path / "run"
    (run / "failed").mkdir(parents=True)
    (run / "sync_in.list").write_text(key + "\n")
    (run / "objects.tsv").write_text(f"index\tfile\n0\t{key}\n")
    return subprocess.Popen(["bash", str(scripts / "sync.sh"), "--images", str(run), "ceph:", str(tmp_path / "images")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_an_endpoint_that_never_answers_fails_sync_in_within_the_specs_limits(
        compile_spec, shim_state: ShimState, s3_server: S3Server, tmp_path: Path) -> None:
    scripts = compile_spec(with_limits(TIGHT), "tight")
    # A socket that listens and never accepts: connections complete in the kernel's backlog (then
    # hang for want of an answer) until it is full (then hang for want of a connection).
    silent = socket.create_server(("127.0.0.1", 0), backlog=1)
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        env = shim_state.env(s3_server.env(env_extra={"RCLONE_CONFIG_CEPH_ENDPOINT": endpoint}))
        process = sync_in(scripts, env, tmp_path, "bucket/data/frame.fits")
        try:
            _, stderr = process.communicate(timeout=120)
        finally:
            process.kill()
    finally:
        silent.close()
    assert process.returncode == 7, stderr
    assert "rclone lsf (listing the images of" in stderr
    assert f"with remote ceph at {endpoint}: 1 tries, each request 1 times, with 1s to connect and 2s for each answer" \
        in stderr, stderr


def test_the_s3_server_killed_during_sync_in_fails_it_with_the_default_limits(
        scripts_dir: Path, shim_state: ShimState, tmp_path: Path) -> None:
    server = S3Server()
    server.start(tmp_path / "s3")
    try:
        server.make_bucket("dying")
        image = tmp_path / "big.fits"
        image.write_bytes(os.urandom(32 << 20))
        server.put(image, "dying/data/big.fits")
        # slowed, so that the server dies while the image is on its way. After the kill rclone still reads
        # what the kernel had buffered (some MiB on loopback) at this rate before it sees the end: at
        # 512k that took 8 s, at 4M it takes 1-3 s; 32 MiB keep the transfer going ~8 s, as 8 MiB at 512k did.
        env = shim_state.env(server.env(env_extra={"RCLONE_BWLIMIT": "4M"}))
        process = sync_in(scripts_dir, env, tmp_path, "dying/data/big.fits")
        try:
            wait_until(lambda: any(p.is_file() for p in (tmp_path / "images").glob("*.part/*")) or process.poll() is not None,
                     "a file arriving")
            assert process.poll() is None, process.communicate()
            os.killpg(server.pgid, signal.SIGKILL)
            _, stderr = process.communicate(timeout=240)
        finally:
            process.kill()
    finally:
        server.stop()
    # The transfer failed within the limits: the image's object fails, and the step goes on to the end.
    assert process.returncode == 0, stderr
    assert "could not fetch dying/data/big.fits" in stderr, stderr
    assert (tmp_path / "run" / "failed" / "0").read_text().startswith("7\tsync.sh\tcould not fetch"), stderr
    assert not list((tmp_path / "run" / "images").glob("*.fits"))


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def descendant_named(pid: int, name: str) -> int | None:
    for child in children(pid):
        try:
            if (Path("/proc") / str(child) / "comm").read_text().strip() == name:
                return child
        except OSError:
            continue
        found = descendant_named(child, name)
        if found is not None:
            return found
    return None


def bytes_written(pid: int) -> int:
    """What the process has written so far (its uploads go out through write(2) on a socket)."""
    try:
        fields = dict(line.split(": ") for line in (Path("/proc") / str(pid) / "io").read_text().splitlines())
    except OSError:
        return 0
    return int(fields["wchar"])


def test_an_upload_killed_half_way_leaves_no_multipart_upload(scripts_dir: Path, shim_state: ShimState,
                                                              s3_server: S3Server, s3_bucket: str,
                                                              tmp_path: Path) -> None:
    # 260 MiB is above rclone's upload and multi-thread cut-offs (200 and 256 MiB): by default a
    # multipart upload, which a killed rclone cannot abort.
    out = tmp_path / "out"
    (out / s3_bucket).mkdir(parents=True)
    with (out / s3_bucket / "big_crop.fits").open("wb") as fh:
        for _ in range(260):
            fh.write(os.urandom(1 << 20))
    (tmp_path / "list").write_text(f"{s3_bucket}/big_crop.fits\n")
    env = shim_state.env(s3_server.env(env_extra={"RCLONE_BWLIMIT": "20M"}))
    process = subprocess.Popen(["bash", str(scripts_dir / "sync.sh"), str(out), "ceph:", str(tmp_path / "list")],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rclone: list[int] = []

        def uploading() -> bool:
            if process.poll() is not None:
                return True
            if rclone and not Path(f"/proc/{rclone[0]}").exists():
                rclone.clear()
            if not rclone:
                found = descendant_named(process.pid, "rclone")
                if found is None:
                    return False
                rclone.append(found)
            return bytes_written(rclone[0]) > 40 << 20

        wait_until(uploading, "uploading 40 MiB")
        assert process.poll() is None, process.communicate()
        os.kill(rclone[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 7, stderr
    assert "rclone copy failed (rclone exit" in stderr
    uploads = s3_server.rclone("backend", "list-multipart-uploads", f"ceph:{s3_bucket}").stdout
    assert json.loads(uploads) == {s3_bucket: []}, uploads
    assert s3_server.list_objects(s3_bucket) == {}


# Files of 5 GiB or more still go up in parts. The environment lowers rclone's cut-off and part size
# (RCLONE_CONFIG_CEPH_* wins over the spec) so that a few MiB do the same.
IN_PARTS = {"RCLONE_CONFIG_CEPH_UPLOAD_CUTOFF": "5M", "RCLONE_CONFIG_CEPH_CHUNK_SIZE": "5M"}


def pending_uploads(server: S3Server, bucket: str) -> list[str]:
    """The keys of the bucket's unfinished multipart uploads."""
    listing = json.loads(server.rclone("backend", "list-multipart-uploads", f"ceph:{bucket}").stdout)[bucket]
    return [upload["Key"] for upload in listing]


def test_an_upload_in_parts_stopped_as_slurm_stops_a_job_leaves_no_parts(
        scripts_dir: Path, shim_state: ShimState, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    """Slurm ends a job (scancel, its time limit) with SIGTERM to every process of the step, and SIGKILL
    only KillWait (30 s by default) later: rclone aborts its multipart upload on SIGTERM, so nothing is
    left in the bucket. (SIGKILL alone, or a node lost, leaves parts: the bucket's lifecycle rule
    AbortIncompleteMultipartUpload removes those; see the README.)"""
    out = tmp_path / "out"
    (out / s3_bucket).mkdir(parents=True)
    (out / s3_bucket / "big.fits").write_bytes(os.urandom(16 << 20))
    (tmp_path / "list").write_text(f"{s3_bucket}/big.fits\n")
    env = shim_state.env(s3_server.env(env_extra={**IN_PARTS, "RCLONE_BWLIMIT": "4M"}))
    process = subprocess.Popen(["bash", str(scripts_dir / "sync.sh"), str(out), "ceph:", str(tmp_path / "list")],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        wait_until(lambda: "big.fits" in pending_uploads(s3_server, s3_bucket) or process.poll() is not None,
                   "the upload in parts to begin")
        assert process.poll() is None, process.communicate()
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0, stderr
    assert pending_uploads(s3_server, s3_bucket) == [], stderr
    assert s3_server.list_objects(s3_bucket) == {}
