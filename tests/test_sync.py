"""sync.sh against the real S3 server: it copies, never deletes, and checks that what it copied arrived.

The bats tests (tests/bats/sync.bats) point the remote at the local filesystem; these run the same
script against SeaweedFS, up and down, with and without a list, and with an rclone that lies.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.s3server import RCLONE, S3Server
from tests.shimlib import ShimState

pytestmark = pytest.mark.s3


def sync(scripts_dir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(scripts_dir / "sync.sh"), *args], env=env, capture_output=True, text=True,
                          check=False, timeout=120)


def environment(shim_state: ShimState, s3_server: S3Server) -> dict[str, str]:
    return shim_state.env(s3_server.env(), RCLONE_RETRIES="1", RCLONE_LOW_LEVEL_RETRIES="1")


@pytest.mark.parametrize("listed", [True, False], ids=["list", "everything"])
def test_a_download_never_deletes_what_the_destination_has(scripts_dir: Path, shim_state: ShimState,
                                                           s3_server: S3Server, s3_bucket: str, tmp_path: Path,
                                                           listed: bool) -> None:
    """`rclone sync` in place of `rclone copy` deletes at the destination what the source lacks: with
    a list, a listed file that the bucket lacks (--skip-missing); without one, every other file."""
    s3_server.put_bytes(b"new a", f"{s3_bucket}/data/a.fits")
    local = tmp_path / "scratch"
    (local / "data").mkdir(parents=True)
    (local / "data" / "stale.fits").write_bytes(b"stale, not listed")
    (local / "data" / "missing.fits").write_bytes(b"listed, not in the bucket")
    (tmp_path / "list").write_text("data/a.fits\ndata/missing.fits\n")
    args = ["--skip-missing", f"ceph:{s3_bucket}", str(local), str(tmp_path / "list")] if listed else \
        [f"ceph:{s3_bucket}", str(local)]
    result = sync(scripts_dir, environment(shim_state, s3_server), *args)
    assert result.returncode == 0, result.stderr
    assert {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()} == {
        "data/a.fits": b"new a", "data/stale.fits": b"stale, not listed",
        "data/missing.fits": b"listed, not in the bucket"}


@pytest.mark.parametrize("listed", [True, False], ids=["list", "everything"])
def test_an_upload_never_deletes_what_the_bucket_has(scripts_dir: Path, shim_state: ShimState, s3_server: S3Server,
                                                     s3_bucket: str, tmp_path: Path, listed: bool) -> None:
    s3_server.put_bytes(b"stale, not listed", f"{s3_bucket}/out/data/stale.fits")
    before = s3_server.snapshot()
    local = tmp_path / "out"
    (local / "data").mkdir(parents=True)
    (local / "data" / "a.fits").write_bytes(b"new a")
    (tmp_path / "list").write_text("data/a.fits\n")
    args = [str(local), f"ceph:{s3_bucket}/out", *([str(tmp_path / "list")] if listed else [])]
    result = sync(scripts_dir, environment(shim_state, s3_server), *args)
    assert result.returncode == 0, result.stderr
    after = s3_server.snapshot()
    assert {k: v for k, v in after.items() if k != f"{s3_bucket}/out/data/a.fits"} == before
    assert s3_server.get_bytes(f"{s3_bucket}/out/data/a.fits") == b"new a"


def lying_rclone(directory: Path) -> Path:
    """A directory with an `rclone` whose `copy` exits 0 and copies nothing; the rest is the real rclone."""
    directory.mkdir()
    (directory / "rclone").write_text(f"""#!/bin/bash
if [[ "$1" == copy ]]; then
  echo "rclone (lying): copied nothing" >&2
  exit 0
fi
exec {RCLONE} "$@"
""")
    (directory / "rclone").chmod(0o755)
    return directory


def test_an_upload_that_rclone_reports_done_but_did_not_arrive_fails_with_exit_7(
        scripts_dir: Path, shim_state: ShimState, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "out"
    (local / "data").mkdir(parents=True)
    (local / "data" / "a.fits").write_bytes(b"crop")
    (tmp_path / "list").write_text("data/a.fits\n")
    env = environment(shim_state, s3_server)
    env["PATH"] = f"{lying_rclone(tmp_path / 'lying')}:{env['PATH']}"
    before = s3_server.snapshot()
    result = sync(scripts_dir, env, str(local), f"ceph:{s3_bucket}", str(tmp_path / "list"))
    assert (result.returncode, s3_server.snapshot()) == (7, before), result.stderr
    assert "rclone (lying): copied nothing" in result.stderr
    assert "transfer incomplete" in result.stderr and str(tmp_path / "list") in result.stderr


def test_a_download_that_rclone_reports_done_but_did_not_arrive_fails_with_exit_4(
        scripts_dir: Path, shim_state: ShimState, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    s3_server.put_bytes(b"image", f"{s3_bucket}/data/a.fits")
    (tmp_path / "list").write_text("data/a.fits\n")
    env = environment(shim_state, s3_server)
    env["PATH"] = f"{lying_rclone(tmp_path / 'lying')}:{env['PATH']}"
    result = sync(scripts_dir, env, f"ceph:{s3_bucket}", str(tmp_path / "scratch"), str(tmp_path / "list"))
    assert result.returncode == 4, result.stderr
    assert f"no such file: ceph:{s3_bucket}/data/a.fits" in result.stderr
