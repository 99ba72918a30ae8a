"""The whole chain under the fake Slurm, with the real tools and a real S3 server.

A message goes in, schedule.sh submits, `drain` runs the jobs as Slurm would
(sync in with the real rclone against SeaweedFS, sky2xy and astcrop behind the
singularity shim, sync out), and the crop in the bucket must equal astropy's
cutout. The faults fail at the right step, with the right exit code, and leave
the bucket as it was.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from compiler.build import build
from tests.chain import RA, DEC, Run, assert_crop_in_bucket, crop_key, step_of
from tests.plugins.build import DEFAULT_SPEC
from tests.fitsimages import make_image, make_not_fits
from tests.s3server import S3Server
from tests.shimlib import ShimState

pytestmark = [pytest.mark.s3, pytest.mark.tools]


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "frame.fits"
    make_image(path, nx=300, ny=200, ra=RA, dec=DEC, zero_block=(140, 90, 160, 110))
    return path


@pytest.fixture
def bucket(s3_server: S3Server, s3_bucket: str, image: Path) -> str:
    s3_server.put(image, f"{s3_bucket}/data/frame.fits")
    s3_server.put_bytes(b"unrelated", f"{s3_bucket}/data/other.txt")
    s3_server.put_bytes(b"an older crop", f"{s3_bucket}/data/frame_old_crop.fits")
    return s3_bucket


def test_a_message_becomes_a_crop_in_the_bucket(scripts_dir: Path, shim_state: ShimState, s3_server: S3Server,
                                                bucket: str, image: Path, tmp_path: Path) -> None:
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    before = s3_server.snapshot()
    ra, dec = RA + 0.002, DEC - 0.001
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=str(ra), dec=str(dec))).returncode == 0, \
        run.result.stderr
    jobs = run.drain()
    assert {name: job["state"] for name, job in jobs.items()} == dict.fromkeys(
        ["sync_in", "world_to_pixel", "crop", "sync_out"], "COMPLETED"), {n: run.log(j) for n, j in jobs.items()}
    key = crop_key(f"{bucket}/data/frame.fits", "galaxy_1", str(ra), str(dec))
    assert_crop_in_bucket(s3_server, key, image, run.run_dir / "xy" / "0.xy", ra, dec, 20, tmp_path)
    after = s3_server.snapshot()
    assert run.results_key == f"{bucket}/results/{run.run_dir.name}.json"
    assert {k: v for k, v in after.items() if k not in (key, run.results_key)} == before
    assert json.loads(s3_server.get_bytes(run.results_key)) == run.results()
    assert run.results()["results"] == [{"index": 0, "messages": ["message.json"], "file": f"{bucket}/data/frame.fits",
                                         "ra": str(ra), "dec": str(dec), "label": "galaxy_1", "key": key,
                                         "error": None}]
    # The run's own copy is a hard link to the one cache entry, named by a digest, not by the key.
    pinned = run.run_dir / "images" / "0.fits"
    [entry] = (run.scratch / "lts-template" / "data" / "images").glob("*.fits")
    assert pinned.read_bytes() == image.read_bytes() and pinned.stat().st_ino == entry.stat().st_ino
    assert re.fullmatch(r"[0-9a-f]{64}\.fits", entry.name)
    assert (run.run_dir / "images" / "0.version").read_text().split("\t")[0] == f"{bucket}/data/frame.fits"
    assert [c["image"] for c in shim_state.calls("singularity")] == ["docker://curtinfop/wcstools",
                                                                     "docker://curtinfop/gnuastro"]


def test_the_original_files_txt_form_gives_the_same_crop(scripts_dir: Path, shim_state: ShimState,
                                                         s3_server: S3Server, bucket: str, image: Path,
                                                         tmp_path: Path) -> None:
    run = Run(scripts_dir, shim_state, s3_server, tmp_path, RA_OBJECT="10:00:00.5", DEC_OBJECT="+02:00:03",
              LABEL_OBJECT="ngc123")
    (run.workdir / "files.txt").write_text(f"{bucket}/data/frame.fits\n")
    assert run.schedule("files.txt").returncode == 0, run.result.stderr
    jobs = run.drain()
    assert all(job["state"] == "COMPLETED" for job in jobs.values()), {n: run.log(j) for n, j in jobs.items()}
    ra, dec = 150.0 + 0.5 / 240, 2.0 + 3 / 3600
    key = crop_key(f"{bucket}/data/frame.fits", "ngc123", "10:00:00.5", "+02:00:03")
    assert_crop_in_bucket(s3_server, key, image, run.run_dir / "xy" / "0.xy", ra, dec, 20, tmp_path)


def test_many_objects_fetch_each_image_once_in_four_jobs_and_two_tool_runs_per_image(scripts_dir: Path, shim_state: ShimState,
                                                          s3_server: S3Server, bucket: str, image: Path,
                                                          tmp_path: Path) -> None:
    second = tmp_path / "second.fits"
    make_image(second, nx=120, ny=90, ra=200.0, dec=-30.0, rotation_deg=-10.0)
    s3_server.put(second, f"{bucket}/other dir/second 'image'.fits")
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    objects = [(f"{bucket}/data/frame.fits", RA + 0.001 * i, DEC, f"obj{i}") for i in range(3)]
    objects.append((f"{bucket}/other dir/second 'image'.fits", 200.0, -30.0, "obj3"))
    inputs = [run.message(f"m{i}.json", file=f, ra=ra, dec=dec, label=label)
              for i, (f, ra, dec, label) in enumerate(objects)]
    assert run.schedule(*inputs).returncode == 0, run.result.stderr
    jobs = run.drain()
    assert len(shim_state.sbatch_calls()) == 4
    assert all(job["state"] == "COMPLETED" for job in jobs.values()), {n: run.log(j) for n, j in jobs.items()}
    assert (run.run_dir / "sync_in.list").read_text().splitlines() == [objects[0][0], objects[3][0]]
    for index, (file, ra, dec, label) in enumerate(objects):
        source = image if "frame" in file else second
        key = crop_key(file, label, ra, dec)
        assert_crop_in_bucket(s3_server, key, source, run.run_dir / "xy" / f"{index}.xy", ra, dec, 20, tmp_path)
    calls = shim_state.calls("singularity")
    assert [(c["command"][0], c["image"]) for c in calls] == [
        ("sky2xy", "docker://curtinfop/wcstools"), ("sky2xy", "docker://curtinfop/wcstools"),
        ("astcrop", "docker://curtinfop/gnuastro"), ("astcrop", "docker://curtinfop/gnuastro")]


def only_results_uploaded(s3: S3Server, run: Run, before: dict[str, str]) -> dict:
    """The bucket gained nothing but the run's results; they are returned."""
    after = s3.snapshot()
    assert {k: v for k, v in after.items() if k != run.results_key} == before
    uploaded = json.loads(s3.get_bytes(run.results_key))
    assert uploaded == run.results()
    return uploaded


def test_an_image_missing_from_the_bucket_fails_its_object_with_exit_4_naming_the_key(
        scripts_dir: Path, shim_state: ShimState, s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    before = s3_server.snapshot()
    assert run.schedule(run.message(file=f"{bucket}/data/absent.fits", ra=RA, dec=DEC)).returncode == 0
    jobs = run.drain()
    assert f"{bucket}/data/absent.fits" in run.log(jobs["sync_in"])
    assert [jobs[n]["state"] for n in ("sync_in", "world_to_pixel", "crop")] == ["COMPLETED"] * 3
    assert (jobs["sync_out"]["state"], jobs["sync_out"]["exit_code"]) == ("FAILED", 4)
    results = only_results_uploaded(s3_server, run, before)
    assert (results["succeeded"], results["failed"]) == (0, 1)
    error = results["results"][0]["error"]
    assert (error["code"], error["step"]) == (4, "sync.sh")
    assert "no such image" in error["message"] and "absent.fits" in error["message"]


@pytest.mark.parametrize(("ra", "dec"), [(RA + 0.5, DEC), (330.0, -2.0)], ids=["off-image", "offscale"])
def test_an_object_off_the_image_fails_with_exit_5_and_uploads_only_the_results(
        scripts_dir: Path, shim_state: ShimState, s3_server: S3Server, bucket: str, tmp_path: Path,
        ra: float, dec: float) -> None:
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    before = s3_server.snapshot()
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=ra, dec=dec)).returncode == 0
    jobs = run.drain()
    assert [jobs[n]["state"] for n in ("sync_in", "world_to_pixel", "crop")] == ["COMPLETED"] * 3
    assert (jobs["sync_out"]["state"], jobs["sync_out"]["exit_code"]) == ("FAILED", 5), run.log(jobs["sync_out"])
    error = only_results_uploaded(s3_server, run, before)["results"][0]["error"]
    assert (error["code"], error["step"]) == (5, "get_world_2_pix.sh")
    assert "off the image" in error["message"] or "cannot be projected" in error["message"]


def test_an_image_that_is_not_fits_fails_its_object_with_exit_6(scripts_dir: Path, shim_state: ShimState,
                                                               s3_server: S3Server, s3_bucket: str,
                                                               tmp_path: Path) -> None:
    s3_server.put(make_not_fits(tmp_path / "fake.fits"), f"{s3_bucket}/fake.fits")
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    assert run.schedule(run.message(file=f"{s3_bucket}/fake.fits", ra=RA, dec=DEC)).returncode == 0
    jobs = run.drain()
    assert (jobs["sync_out"]["state"], jobs["sync_out"]["exit_code"]) == ("FAILED", 6)
    assert "not a FITS file" in run.log(jobs["world_to_pixel"])
    assert run.results()["results"][0]["error"]["code"] == 6


def test_a_wrong_secret_fails_sync_in_with_rclones_error_shown(scripts_dir: Path, shim_state: ShimState,
                                                              s3_server: S3Server, bucket: str,
                                                              tmp_path: Path) -> None:
    run = Run(scripts_dir, shim_state, s3_server, tmp_path, RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY="not-the-secret")
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0
    jobs = run.drain()
    assert (jobs["sync_in"]["state"], jobs["sync_in"]["exit_code"]) == ("FAILED", 7)
    log = run.log(jobs["sync_in"])
    assert "SignatureDoesNotMatch" in log or "403" in log
    assert "not-the-secret" not in log


def test_an_upload_of_a_missing_crop_transfers_nothing_and_fails(scripts_dir: Path, shim_state: ShimState,
                                                                 s3_server: S3Server, bucket: str,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / bucket).mkdir(parents=True)
    (tmp_path / "list").write_text(f"{bucket}/data/frame_galaxy_1_crop.fits\n")
    before = s3_server.snapshot()
    result = subprocess.run(["bash", str(scripts_dir / "sync.sh"), str(out), "ceph:", str(tmp_path / "list")],
                            env=shim_state.env(s3_server.env()), capture_output=True, text=True, check=False)
    assert result.returncode == 4, result.stderr
    assert "no such file" in result.stderr
    assert s3_server.snapshot() == before


def test_credentials_never_reach_a_file_a_log_or_an_argv(scripts_dir: Path, shim_state: ShimState,
                                                         s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0
    jobs = run.drain()
    assert all(job["state"] == "COMPLETED" for job in jobs.values())
    secrets = {"RCLONE_CONFIG_CEPH_ACCESS_KEY_ID": s3_server.access_key,
               "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY": s3_server.secret_key}
    texts = {"stdout": run.result.stdout, "stderr": run.result.stderr, "calls": shim_state.calls_text()}
    for root in (run.run_dir, scripts_dir, run.workdir):
        texts.update({str(p): p.read_bytes().decode(errors="replace") for p in root.rglob("*") if p.is_file()})
    assert [name for name, text in texts.items() if any(secret in text for secret in secrets.values())] == []
    # Every rclone call went through the recording shim (tests/shims/rclone): none had a secret in argv.
    rclone_argv = [call["argv"] for call in shim_state.calls("rclone")]
    assert {argv[0] for argv in rclone_argv} >= {"copy", "copyto", "lsf"}
    assert [argv for argv in rclone_argv if any(s in a for a in argv for s in secrets.values())] == []
    # A job's exported environment holds a secret only under its own name, and only if the job uses the remote.
    holders = {}
    for job in shim_state.jobs():
        exported = json.loads((shim_state.path / "jobs" / str(job["seq"]) / "environment").read_text())
        holders[step_of(job)] = sorted(name for name, value in exported.items()
                                       if any(s in value for s in secrets.values()))
        assert all(exported[name] == secrets.get(name) for name in holders[step_of(job)]), step_of(job)
    assert holders == {"sync_in": sorted(secrets), "world_to_pixel": [], "crop": [], "sync_out": sorted(secrets)}


def test_the_tools_see_the_image_only_through_the_binds_the_plan_gives_their_container(
        scripts_dir: Path, shim_state: ShimState, s3_server: S3Server, bucket: str, image: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The image is under scratch, which a container does not see by default (Run turns off the /tmp
    default bind: the tests' scratch stands for a cluster's /scratch). The default build binds scratch
    and the run directory; a build whose plan binds nothing fails every object at its first tool."""
    run = Run(scripts_dir, shim_state, s3_server, tmp_path)
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0
    jobs = run.drain()
    assert all(job["state"] == "COMPLETED" for job in jobs.values()), {n: run.log(j) for n, j in jobs.items()}
    scratch = run.scratch / "lts-template" / "data"
    calls = shim_state.calls("singularity")
    assert [c["options"] for c in calls] == [["--bind", str(scratch), "--bind", str(run.run_dir)]] * 2
    assert [c.get("unseen") for c in calls] == [None, None]

    monkeypatch.setattr("compiler.plan._binds", lambda spec, name: ())
    # No spec plans these scripts, so shellcheck is not asked about them: it would take its 10-20 s each
    # time the templates change (the default build, binds and all, is held to it everywhere else).
    monkeypatch.setattr("compiler.build.verify_scripts", lambda scripts: None)
    unbound = build(DEFAULT_SPEC, tmp_path / "unbound" / "out").graph
    assert [job.binds for job in unbound.jobs] == [()] * 4
    blind = ShimState(tmp_path / "blind-state")
    run = Run(tmp_path / "unbound" / "out", blind, s3_server, tmp_path / "unbound")
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0
    jobs = run.drain()
    assert [jobs[n]["state"] for n in ("sync_in", "world_to_pixel", "crop")] == ["COMPLETED"] * 3
    assert (jobs["sync_out"]["state"], jobs["sync_out"]["exit_code"]) == ("FAILED", 7)
    error = run.results()["results"][0]["error"]
    assert (error["code"], error["step"]) == (7, "get_world_2_pix.sh")
    assert "image.fits: No such file or directory" in error["message"]
    assert [(c["command"][0], c["options"], c["unseen"]) for c in blind.calls("singularity")] == [
        ("sky2xy", [], ["image.fits"])]
