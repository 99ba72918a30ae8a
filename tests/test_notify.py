"""fixtures/specs/notify.yaml: the crop workflow and a notify step, compiled with no change to the
compiler. Once sync out has ended, however it ended (`afterany`), notify.sh puts the run's notice,
its results and its result, into the bucket as one object, where a front end reads it.

The end-to-end runs go under the fake Slurm with the real rclone, S3 server and tools; the spec's
checks of `with.to` and notify.sh's own behaviour (a remote that is down, an object it must not
replace, JSON that needs escaping) are tested on their own.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from compiler.diagnostics import SpecError
from compiler.load import load_spec
from compiler.spec import Spec
from compiler.validate import validate_spec
from tests.chain import RA, DEC, Run, assert_crop_in_bucket, crop_key, step_of
from tests.fitsimages import make_image
from tests.s3server import DEFAULT_REMOTE, S3Server
from tests.shimlib import ShimState

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "fixtures" / "specs" / "notify.yaml"
NOTICES = "lts-notices/runs/"  # the spec's with.to
STEPS = ["sync_in", "world_to_pixel", "crop", "sync_out", "notify"]


# ----------------------------------------------------------------- the spec's checks of with.to


def problems(text: str) -> list[tuple[str, str]]:
    """Each problem validate finds in `text`: the line it points at (stripped) and its message."""
    with pytest.raises(SpecError) as raised:
        validate_spec(load_spec(text, "notify.yaml"))
    lines = text.splitlines()
    return [(lines[d.line - 1].strip(), d.message) for d in raised.value.diagnostics]


def edited(old: str, new: str) -> str:
    text = SPEC.read_text()
    assert text.count(old) == 1, old
    return text.replace(old, new)


@pytest.mark.parametrize(("to", "message"), [
    ("Lts-Notices/runs/", 'must be BUCKET or BUCKET/PREFIX/, got "Lts-Notices/runs/"'),
    ("lts-notices//runs/", 'must be BUCKET or BUCKET/PREFIX/, got "lts-notices//runs/"'),
    ("xn--notices/runs/", 'starts with "xn--notices", which is not an S3 bucket name: S3 keeps the prefix "xn--"'),
    ("192.168.1.10/runs/", 'starts with "192.168.1.10", which is not an S3 bucket name: it is formatted as an IP '
                           'address'),
    ("lts..notices/", 'starts with "lts..notices", which is not an S3 bucket name: it has two periods in a row'),
])
def test_a_bad_place_for_the_notices_is_refused_at_its_line(to: str, message: str) -> None:
    text = edited(f"to: {NOTICES}", f"to: {to}")
    assert problems(text) == [(f"to: {to}", f'"steps.notify.with.to" {message}')]
    # The JSON Schema refuses what breaks the pattern (S3's other rules are for `ltsflow check`).
    data = json.loads(json.dumps(load_spec(text, "notify.yaml").data))
    errors = list(Draft202012Validator(Spec.model_json_schema()).iter_errors(data))
    assert bool(errors) == message.startswith("must be")


def test_a_notify_step_needs_its_place_a_remote_and_sync_out_before_it() -> None:
    text = edited("""    remote: ceph
    with:
      to: lts-notices/runs/
""", "    with:\n      format: json\n").replace("      sync_out: afterany\n", "      crop: afterany\n")
    assert sorted(problems(text)) == sorted([
        ("with:", 'missing required key "to" for "steps.notify.with" section'),
        ("format: json", 'unexpected key "format" for "steps.notify.with" section. expected one of "to"'),
        ("notify:", 'step "notify" (action "notify") needs a "remote". expected one of "ceph"'),
        ("notify:", 'step "notify" (notify) reads what step "sync_out" (sync-out) writes, so it must depend on it'),
    ])
    after_sync_out = "    depends_on:\n      sync_out: afterany\n"
    container = edited(f"    modules: [rclone]\n{after_sync_out}",
                       f"    container:\n      image: docker://rclone/rclone\n{after_sync_out}")
    assert problems(container) == [("container:", 'a "notify" step runs notify.sh itself: it takes no container')]


# ----------------------------------------------------------------- end to end, under the fake Slurm


@pytest.fixture
def notices(s3_server: S3Server):
    """The spec's notice bucket, emptied afterwards."""
    bucket = NOTICES.split("/", 1)[0]
    s3_server.make_bucket(bucket)
    yield bucket
    s3_server.rclone("purge", f"{DEFAULT_REMOTE}:{bucket}", check=False)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "frame.fits"
    make_image(path, nx=300, ny=200, ra=RA, dec=DEC)
    return path


def run_notify_spec(built_spec, shim_state: ShimState, s3: S3Server, tmp_path: Path, bucket: str, image: Path,
                    ra: float, dec: float, **extra: str) -> tuple[Run, dict[str, dict], dict]:
    """One run of the notify spec, drained: the run, its jobs by step, and the notice in the bucket."""
    s3.put(image, f"{bucket}/data/frame.fits")
    run = Run(built_spec("notify"), shim_state, s3, tmp_path, **extra)
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=str(ra), dec=str(dec))).returncode == 0, \
        run.result.stderr
    run.drain()
    jobs = {step_of(job, "lts-notify"): job for job in shim_state.jobs()}
    assert jobs["notify"]["state"] == "COMPLETED", {name: run.log(job) for name, job in jobs.items()}
    return run, jobs, json.loads(s3.get_bytes(f"{NOTICES}{run.run_dir.name}.json"))


def with_notice_fields(results: dict, result: str, results_key: str | None) -> dict:
    return {**results, "result": result, "results_key": results_key}


@pytest.mark.s3
@pytest.mark.tools
def test_a_run_that_succeeds_sends_its_results_as_its_notice(built_spec, shim_state: ShimState, s3_server: S3Server,
                                                             s3_bucket: str, notices: str, image: Path,
                                                             tmp_path: Path) -> None:
    ra, dec = RA + 0.002, DEC - 0.001
    run, jobs, notice = run_notify_spec(built_spec, shim_state, s3_server, tmp_path, s3_bucket, image, ra, dec)
    assert {name: job["state"] for name, job in jobs.items()} == dict.fromkeys(STEPS, "COMPLETED")
    key = crop_key(f"{s3_bucket}/data/frame.fits", "galaxy_1", str(ra), str(dec))
    assert_crop_in_bucket(s3_server, key, image, run.run_dir / "xy" / "0.xy", ra, dec, 20, tmp_path)
    assert notice == with_notice_fields(run.results(), "succeeded", run.results_key)
    assert (notice["run"], notice["succeeded"], notice["failed"]) == (run.run_dir.name, 1, 0)
    assert notice["results"][0]["key"] == key
    # The notice is the one object in the notice bucket, and it went up once, by one copyto.
    assert list(s3_server.list_objects(notices)) == [f"runs/{run.run_dir.name}.json"]
    uploads = [call["argv"] for call in shim_state.calls("rclone") if call["argv"][0] == "copyto"
               and call["argv"][-1].startswith(f"ceph:{NOTICES}")]
    assert [argv[-1] for argv in uploads] == [f"ceph:{NOTICES}{run.run_dir.name}.json"]


@pytest.mark.s3
@pytest.mark.tools
def test_an_object_off_the_image_fails_sync_out_and_the_notice_says_so(built_spec, shim_state: ShimState,
                                                                       s3_server: S3Server, s3_bucket: str,
                                                                       notices: str, image: Path,
                                                                       tmp_path: Path) -> None:
    run, jobs, notice = run_notify_spec(built_spec, shim_state, s3_server, tmp_path, s3_bucket, image, RA + 0.5, DEC)
    assert (jobs["sync_out"]["state"], jobs["sync_out"]["exit_code"]) == ("FAILED", 5)
    assert notice == with_notice_fields(run.results(), "failed", run.results_key)
    assert (notice["succeeded"], notice["failed"]) == (0, 1)
    error = notice["results"][0]["error"]
    assert (notice["results"][0]["key"], error["code"], error["step"]) == (None, 5, "get_world_2_pix.sh")


@pytest.mark.s3
@pytest.mark.tools
def test_a_step_that_fails_cancels_sync_out_and_the_notice_still_goes(built_spec, shim_state: ShimState,
                                                                      s3_server: S3Server, s3_bucket: str,
                                                                      notices: str, image: Path,
                                                                      tmp_path: Path) -> None:
    # The step itself fails (no sky2xy in its container), not one of its objects: nothing is uploaded.
    run, jobs, notice = run_notify_spec(built_spec, shim_state, s3_server, tmp_path, s3_bucket, image, RA, DEC,
                                        LTSFLOW_SHIM_MISSING="sky2xy")
    assert {name: job["state"] for name, job in jobs.items()} == {
        "sync_in": "COMPLETED", "world_to_pixel": "FAILED", "crop": "CANCELLED", "sync_out": "CANCELLED",
        "notify": "COMPLETED"}
    assert not (run.run_dir / "results.json").exists()
    assert (notice["run"], notice["result"], notice["results_key"]) == (run.run_dir.name, "failed", None)
    assert (notice["objects"], notice["succeeded"], notice["failed"]) == (1, 0, 1)
    [outcome] = notice["results"]
    assert {k: outcome[k] for k in ("index", "messages", "file", "label", "key")} == {
        "index": 0, "messages": ["message.json"], "file": f"{s3_bucket}/data/frame.fits", "label": "galaxy_1",
        "key": None}
    assert (outcome["error"]["code"], outcome["error"]["step"]) == (7, "notify.sh")
    assert outcome["error"]["message"] == (f"no crop in the bucket: sync out did not upload it (status.sh "
                                           f"{run.run_dir} says which step failed)")
    # The notice changed nothing in the run directory.
    assert not (run.run_dir / "failed" / "0").exists()


# ----------------------------------------------------------------- notify.sh on its own


def run_dir_of(tmp_path: Path, run_id: str, *, uploaded: bool) -> Path:
    """A run directory of two objects as sync out leaves it: object 0 cropped, object 1 failed, with
    text that JSON must escape (quotes, a backslash, a control character, non-ASCII)."""
    run_dir = tmp_path / "runs" / run_id
    (run_dir / "failed").mkdir(parents=True)
    (run_dir / "out").mkdir()
    (run_dir / "objects.tsv").write_text(
        "index\tfile\tra\tdec\tlabel\tkey\tmessages\n"
        "0\tb/data/frame.fits\t150.0\t2.0\tgalaxy_1\tb/data/frame_galaxy_1_crop.fits\tsay \"hi\".json:1\n"
        "1\tb/data/é \\ frame.fits\t151.0\t2.0\tngc.1\tb/data/other_crop.fits\tm1.json\tm2.json\n")
    (run_dir / "out" / "0.fits").write_bytes(b"crop")
    (run_dir / "failed" / "1").write_text("5\tget_world_2_pix.sh\tRA 151.0 is \x1b off the \"image\"\n")
    (run_dir / "results.key").write_text(f"b/results/{run_id}.json\n")
    if uploaded:
        (run_dir / "uploaded.list").write_text(f"b/results/{run_id}.json\nb/data/frame_galaxy_1_crop.fits\n")
    return run_dir


def notify(scripts: Path, env: dict[str, str], run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(scripts / "notify.sh"), str(run_dir), f"ceph:{NOTICES}"], env=env,
                          capture_output=True, text=True, check=False, timeout=120)


EXPECTED = [
    {"index": 0, "messages": ['say "hi".json:1'], "file": "b/data/frame.fits", "ra": "150.0", "dec": "2.0",
     "label": "galaxy_1", "key": "b/data/frame_galaxy_1_crop.fits", "error": None},
    {"index": 1, "messages": ["m1.json", "m2.json"], "file": "b/data/é \\ frame.fits", "ra": "151.0", "dec": "2.0",
     "label": "ngc.1", "key": None,
     "error": {"code": 5, "step": "get_world_2_pix.sh", "message": 'RA 151.0 is \x1b off the "image"'}},
]


@pytest.mark.s3
def test_the_notice_is_json_that_says_exactly_what_the_run_directory_does(built_spec, s3_server: S3Server,
                                                                        notices: str, tmp_path: Path) -> None:
    scripts = built_spec("notify")
    run_dir = run_dir_of(tmp_path, "20261201T101500Z-a1B2c3", uploaded=True)
    result = notify(scripts, s3_server.env(), run_dir)
    assert result.returncode == 0, result.stderr
    notice = json.loads(s3_server.get_bytes(f"{NOTICES}20261201T101500Z-a1B2c3.json"))
    assert notice == {"run": "20261201T101500Z-a1B2c3", "result": "failed", "objects": 2, "succeeded": 1,
                      "failed": 1, "results_key": "b/results/20261201T101500Z-a1B2c3.json", "results": EXPECTED}
    # Without sync out's word that it uploaded every crop, the crop made is not delivered.
    (run_dir / "uploaded.list").unlink()
    assert notify(scripts, s3_server.env(), run_dir).returncode == 0
    notice = json.loads(s3_server.get_bytes(f"{NOTICES}20261201T101500Z-a1B2c3.json"))
    assert (notice["results_key"], notice["succeeded"], notice["failed"]) == (None, 0, 2)
    assert notice["results"][1] == EXPECTED[1]
    assert (notice["results"][0]["key"], notice["results"][0]["error"]["step"]) == (None, "notify.sh")


@pytest.mark.s3
def test_a_notice_never_replaces_an_object_no_run_wrote(built_spec, s3_server: S3Server, notices: str,
                                                        tmp_path: Path) -> None:
    scripts = built_spec("notify")
    run_dir = run_dir_of(tmp_path, "20261201T101600Z-d4E5f6", uploaded=True)
    key = f"{NOTICES}20261201T101600Z-d4E5f6.json"
    s3_server.put_bytes(b"the front end's own", key)
    result = notify(scripts, s3_server.env(), run_dir)
    assert result.returncode == 2, result.stderr
    assert f"not sending: ceph:{key} already holds an object this run did not write" in result.stderr
    assert s3_server.get_bytes(key) == b"the front end's own"
    # The run's own notice, sent again (a requeued job), is replaced.
    s3_server.rclone("deletefile", f"{DEFAULT_REMOTE}:{key}")
    assert notify(scripts, s3_server.env(), run_dir).returncode == 0
    (run_dir / "uploaded.list").unlink()
    assert notify(scripts, s3_server.env(), run_dir).returncode == 0
    assert json.loads(s3_server.get_bytes(key))["results_key"] is None


@pytest.mark.s3
def test_a_notify_on_a_remote_that_is_down_exits_7_naming_the_remote(built_spec, s3_server: S3Server, notices: str,
                                                                     tmp_path: Path) -> None:
    # A port nothing listens on: every connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = s3_server.env(env_extra={"RCLONE_CONFIG_CEPH_ENDPOINT": endpoint, "RCLONE_RETRIES": "1",
                                   "RCLONE_LOW_LEVEL_RETRIES": "1"})
    run_dir = run_dir_of(tmp_path, "20261201T101700Z-g7H8i9", uploaded=True)
    result = notify(built_spec("notify"), env, run_dir)
    assert result.returncode == 7, result.stderr
    assert f"rclone lsf (looking for {NOTICES}20261201T101700Z-g7H8i9.json at ceph:) failed" in result.stderr
    assert f"with remote ceph at {endpoint}: 1 tries" in result.stderr, result.stderr
    # The remote answers the look-up, then fails the upload: an rclone whose copyto fails, as an upload can.
    wrapper = tmp_path / "wrapper"
    wrapper.mkdir()
    (wrapper / "rclone").write_text(f'#!/bin/bash\n[ "$1" != copyto ] || {{ echo "upload refused" >&2; exit 1; }}\n'
                                    f'exec {shutil.which("rclone", path=s3_server.env()["PATH"])} "$@"\n')
    (wrapper / "rclone").chmod(0o755)
    env = s3_server.env()
    env["PATH"] = f"{wrapper}{os.pathsep}{env['PATH']}"
    result = notify(built_spec("notify"), env, run_dir)
    assert result.returncode == 7, result.stderr
    assert "upload refused" in result.stderr
    assert f"rclone copyto (the notice {NOTICES}20261201T101700Z-g7H8i9.json) failed (rclone exit 1) with remote " \
           f"ceph at {s3_server.endpoint}" in result.stderr, result.stderr


def test_notify_sh_answers_help_and_refuses_what_is_not_a_run(built_spec, tmp_path: Path) -> None:
    scripts = built_spec("notify")
    shown = subprocess.run(["bash", str(scripts / "notify.sh"), "--help"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and shown.stdout.startswith("Usage: notify.sh RUN_DIR REMOTE:BUCKET/PREFIX/\n")
    assert "  7  a tool failed" in shown.stdout
    run_dir = run_dir_of(tmp_path, "20261201T101800Z-j1K2l3", uploaded=True)
    env = {**os.environ, "RCLONE_CONFIG_CEPH_ACCESS_KEY_ID": "id", "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY": "secret"}
    for arguments, message in (
            ((str(tmp_path), f"ceph:{NOTICES}"), "is not a run directory"),
            ((str(run_dir), "ceph:lts-notices/runs"), "the notice goes to REMOTE:BUCKET/PREFIX/"),
            ((str(run_dir), f"other:{NOTICES}"), "names none of the spec's remotes"),
            ((str(run_dir),), "expected RUN_DIR REMOTE:BUCKET/PREFIX/, got 1 arguments")):
        refused = subprocess.run(["bash", str(scripts / "notify.sh"), *arguments], env=env, capture_output=True,
                                 text=True, check=False)
        assert (refused.returncode, message in refused.stderr) == (2, True), refused.stderr
