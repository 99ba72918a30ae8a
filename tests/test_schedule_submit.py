"""schedule.sh submitting for real, against the fake Slurm (tests/shims/).

What it submits, in what order and with which dependencies; that a failure or an
interruption at any point leaves nothing queued; that bad input submits nothing.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from tests.chain import crop_key
from tests.shimlib import ShimState

IMAGE = "lts-template/data/frame-z-004874-4-0422.fits"
SECRETS = {"RCLONE_CONFIG_CEPH_ACCESS_KEY_ID": "id-5f1e0c", "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY": "secret-9a7b3d"}
STEPS = ["sync_in", "world_to_pixel", "crop", "sync_out"]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    directory = tmp_path / "cwd"
    directory.mkdir()
    return directory


def environment(state: ShimState, scratch: Path, **extra: str) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("RCLONE_CONFIG_")}
    return state.env(base, MYSCRATCH=str(scratch), **SECRETS, **extra)


def schedule(scripts: Path, state: ShimState, cwd: Path, *inputs: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(scripts / "schedule.sh"), *inputs], cwd=cwd, capture_output=True, text=True,
                          env=environment(state, cwd.parent / "scratch", **extra), check=False, timeout=120)


def write_message(directory: Path, name: str = "message.json", **fields: object) -> str:
    (directory / name).write_text(json.dumps(fields))
    return name


def test_submits_the_chain_with_each_job_waiting_for_the_one_before(scripts_dir: Path, shim_state: ShimState,
                                                                    workdir: Path) -> None:
    result = schedule(scripts_dir, shim_state, workdir, write_message(workdir, file=IMAGE, ra="0.1", dec="0.25"))
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip())
    calls = shim_state.sbatch_calls()
    assert [c["argv"][0] for c in calls] == ["--parsable"] * 4
    ids = [str(c["job_id"]) for c in calls]
    clusters = [c["cluster"] for c in calls]
    assert clusters == ["zeus", "magnus", "magnus", "zeus"]
    dependencies = [next((a for a in c["argv"] if a.startswith("--dependency=")), None) for c in calls]
    assert dependencies == [None, f"--dependency=afterok:{ids[0]}", f"--dependency=afterok:{ids[1]}",
                            f"--dependency=afterok:{ids[2]}"]
    assert all("--kill-on-invalid-dep=yes" in c["argv"] for c in calls)
    # every job is submitted with --export=ALL from a pruned environment (see the test below);
    # the credentials reach only the jobs that use the remote
    assert [c["export_mode"] for c in calls] == ["ALL"] * 4
    assert [set(SECRETS) <= set(c["environment"]) for c in calls] == [True, False, False, True]
    # the run directory records every job as it is submitted
    rows = [line.split("\t") for line in (run_dir / "jobs.tsv").read_text().splitlines()[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == list(zip(STEPS, clusters, ids))
    assert (run_dir / "sync_in.list").read_text() == IMAGE + "\n"
    key = crop_key(IMAGE, "galaxy_1", "0.1", "0.25")
    assert (run_dir / "results.key").read_text() == f"{IMAGE.split('/')[0]}/results/{run_dir.name}.json\n"
    assert (run_dir / "objects.tsv").read_text().splitlines()[1:] == [
        f"0\t{IMAGE}\t0.1\t0.25\tgalaxy_1\t{key}\tmessage.json"]
    assert (run_dir / "tasks" / "crop.tsv").read_text().split("\n") == ["\t".join([
        f"{run_dir}/failed/0", f"{run_dir}/images/0.fits", f"{run_dir}/out/0.fits", f"{run_dir}/xy/0.xy",
        "galaxy_1", "20"]), ""]
    assert sorted(p.name for p in workdir.iterdir()) == ["message.json"]


def assert_one_job_per_step(state: ShimState) -> None:
    names = [j["name"] for j in state.jobs()]
    assert len(names) == len(STEPS) == len(set(names)), names
    assert [j["state"] for j in state.jobs()] == ["PENDING"] * len(STEPS)


@pytest.mark.parametrize("position", [1, 2, 3, 4])
def test_sbatch_that_could_not_reach_slurmctld_is_retried(scripts_dir: Path, shim_state: ShimState,
                                                           workdir: Path, position: int) -> None:
    message = write_message(workdir, file=IMAGE, ra="0.1", dec="0.25")
    result = schedule(scripts_dir, shim_state, workdir, message, LTSFLOW_SHIM_SBATCH_FAIL_AT=str(position),
                      LTSFLOW_SUBMIT_DELAY="0")
    assert result.returncode == 0, result.stderr
    assert "Unable to contact slurm controller" in result.stderr
    assert f"sbatch failed for step {STEPS[position - 1]} on cluster" in result.stderr
    # nothing was queued by the failed call: the look-up finds no job of its name, and sbatch runs again
    assert len(shim_state.sbatch_calls()) == len(STEPS) + 1
    assert_one_job_per_step(shim_state)
    lookups = [c["argv"] for c in shim_state.calls("squeue")]
    assert len(lookups) == 1 and f"--name={shim_state.jobs()[position - 1]['name']}" in lookups[0]


@pytest.mark.parametrize("position", [1, 2, 3, 4])
def test_sbatch_that_timed_out_after_queueing_is_not_submitted_twice(scripts_dir: Path, shim_state: ShimState,
                                                                     workdir: Path, position: int) -> None:
    message = write_message(workdir, file=IMAGE, ra="0.1", dec="0.25")
    result = schedule(scripts_dir, shim_state, workdir, message, LTSFLOW_SHIM_SBATCH_TIMEOUT_AT=str(position),
                      LTSFLOW_SUBMIT_DELAY="0")
    assert result.returncode == 0, result.stderr
    assert "Socket timed out" in result.stderr
    assert len(shim_state.sbatch_calls()) == len(STEPS)
    assert_one_job_per_step(shim_state)
    run_dir = Path(result.stdout.strip())
    rows = [line.split("\t") for line in (run_dir / "jobs.tsv").read_text().splitlines()[1:]]
    assert [int(r[2]) for r in rows] == [j["id"] for j in shim_state.jobs()]
    # the dependants wait for the job that was queued
    assert shim_state.jobs()[-1]["dependency"] == f"afterok:{shim_state.jobs()[-2]['id']}"


@pytest.mark.parametrize("position", [1, 2, 3, 4])
def test_a_submission_that_keeps_failing_leaves_nothing_queued(scripts_dir: Path, shim_state: ShimState,
                                                               workdir: Path, position: int) -> None:
    # sbatch fails on every attempt for one step: a time-out (queued) is looked up and found, so
    # only "could not contact" failures can keep a step from being submitted
    message = write_message(workdir, file=IMAGE, ra="0.1", dec="0.25")
    failing = ",".join(str(position + n) for n in range(3))
    result = schedule(scripts_dir, shim_state, workdir, message, LTSFLOW_SHIM_SBATCH_FAIL_AT=failing,
                      LTSFLOW_SUBMIT_DELAY="0", LTSFLOW_SUBMIT_ATTEMPTS="3")
    assert result.returncode == 8, result.stderr
    assert f"sbatch failed for step {STEPS[position - 1]} on cluster" in result.stderr
    assert "3 times" in result.stderr
    assert len(shim_state.sbatch_calls()) == position + 2
    assert shim_state.queued() == []
    assert [j["state"] for j in shim_state.jobs()] == ["CANCELLED"] * (position - 1)


def test_a_failure_that_is_not_transient_is_not_retried(scripts_dir: Path, shim_state: ShimState,
                                                        workdir: Path) -> None:
    message = write_message(workdir, file=IMAGE, ra="0.1", dec="0.25")
    result = schedule(scripts_dir, shim_state, workdir, message, LTSFLOW_SHIM_PARTITIONS="zeus:copyq,magnus:workq",
                      LTSFLOW_SUBMIT_DELAY="0")
    assert result.returncode == 8, result.stderr
    assert "Invalid partition name specified" in result.stderr
    assert "sbatch failed for step world_to_pixel on cluster magnus" in result.stderr
    assert len(shim_state.sbatch_calls()) == 2
    assert shim_state.calls("squeue") == []
    assert shim_state.queued() == []


@pytest.mark.parametrize("value", ["-1", "x", "0"])
def test_bad_retry_settings_are_refused_before_any_submission(scripts_dir: Path, shim_state: ShimState,
                                                              workdir: Path, value: str) -> None:
    message = write_message(workdir, file=IMAGE, ra="0.1", dec="0.25")
    result = schedule(scripts_dir, shim_state, workdir, message, LTSFLOW_SUBMIT_ATTEMPTS=value)
    assert result.returncode == 2, result.stderr
    assert "LTSFLOW_SUBMIT_ATTEMPTS" in result.stderr
    assert shim_state.sbatch_calls() == []
    assert not (workdir.parent / "scratch").exists()


def test_interrupted_between_submissions_leaves_nothing_queued(scripts_dir: Path, shim_state: ShimState,
                                                               workdir: Path, tmp_path: Path) -> None:
    # An sbatch that submits, then sends TERM to schedule.sh (its nearest ancestor running it) on its second call.
    wrapper = tmp_path / "interrupting"
    wrapper.mkdir()
    (wrapper / "sbatch").write_text(f"""#!/bin/bash
count_file="$0.count"
n=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$count_file"
{shlex.quote(str(Path("tests/shims/sbatch").resolve()))} "$@"
status=$?
if [ "$n" = 2 ]; then
  pid=$PPID
  runs_it() {{ tr '\\0' ' ' <"/proc/$1/cmdline" | grep -q schedule.sh; }}
  until runs_it "$pid"; do pid=$(awk '{{print $4}}' "/proc/$pid/stat"); done
  # the $(...) subshell runs schedule.sh too: go up to the script itself
  while parent=$(awk '{{print $4}}' "/proc/$pid/stat") && runs_it "$parent"; do pid=$parent; done
  kill -TERM "$pid"
fi
exit "$status"
""")
    (wrapper / "sbatch").chmod(0o755)
    message = write_message(workdir, file=IMAGE, ra="0.1", dec="0.25")
    env = environment(shim_state, workdir.parent / "scratch")
    env["PATH"] = f"{wrapper}{os.pathsep}{env['PATH']}"
    result = subprocess.run(["bash", str(scripts_dir / "schedule.sh"), message], cwd=workdir, env=env,
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert len(shim_state.sbatch_calls()) == 2
    assert shim_state.queued() == []
    assert [j["state"] for j in shim_state.jobs()] == ["CANCELLED", "CANCELLED"]
    assert "cancelling the 1 job(s) submitted for this run, and any job named" in result.stderr


def test_missing_credentials_submit_nothing(scripts_dir: Path, shim_state: ShimState, workdir: Path) -> None:
    message = write_message(workdir, file=IMAGE, ra="0.1", dec="0.25")
    env = environment(shim_state, workdir.parent / "scratch")
    del env["RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY"]
    result = subprocess.run(["bash", str(scripts_dir / "schedule.sh"), message], cwd=workdir, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY" in result.stderr
    assert shim_state.sbatch_calls() == []


def test_secret_values_never_reach_argv_files_or_output(scripts_dir: Path, shim_state: ShimState,
                                                        workdir: Path) -> None:
    result = schedule(scripts_dir, shim_state, workdir, write_message(workdir, file=IMAGE, ra="0.1", dec="0.25"))
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip())
    texts = [result.stdout, result.stderr, shim_state.calls_text()]
    texts += [p.read_bytes().decode(errors="replace") for p in run_dir.rglob("*") if p.is_file()]
    for secret in SECRETS.values():
        assert not any(secret in text for text in texts)


REFUSED = [
    ({"file": "bucket/a\nb.fits", "ra": "1", "dec": "1"}, 'field "file"'),
    ({"file": "bucket/../../etc/x.fits", "ra": "1", "dec": "1"}, 'field "file"'),
    ({"file": "/abs/path.fits", "ra": "1", "dec": "1"}, 'field "file"'),
    ({"file": "-bucket/x.fits", "ra": "1", "dec": "1"}, 'field "file"'),
    ({"file": "", "ra": "1", "dec": "1"}, 'field "file"'),
    ({"file": "bucket/x\u0001.fits", "ra": "1", "dec": "1"}, 'field "file"'),
    ({"file": "bucket/x.txt", "ra": "1", "dec": "1"}, 'field "file"'),
    ({"file": "bucket/x.fits", "ra": "", "dec": "1"}, 'field "ra"'),
    ({"file": "bucket/x.fits", "ra": "nan", "dec": "1"}, 'field "ra"'),
    ({"file": "bucket/x.fits", "ra": "inf", "dec": "1"}, 'field "ra"'),
    ({"file": "bucket/x.fits", "ra": "360", "dec": "1"}, 'field "ra"'),
    ({"file": "bucket/x.fits", "ra": -0.5, "dec": "1"}, 'field "ra"'),
    ({"file": "bucket/x.fits", "ra": "25:00:00", "dec": "1"}, 'field "ra"'),
    ({"file": "bucket/x.fits", "ra": "1", "dec": "90.01"}, 'field "dec"'),
    ({"file": "bucket/x.fits", "ra": "1", "dec": -91}, 'field "dec"'),
    ({"file": "bucket/x.fits", "ra": "1", "dec": "-inf"}, 'field "dec"'),
    ({"file": "bucket/x.fits", "ra": "1", "dec": "$(reboot)"}, 'field "dec"'),
    ({"file": "bucket/x.fits", "ra": "1", "dec": "1", "label": "a b"}, 'field "label"'),
    ({"file": "bucket/x.fits", "ra": "1", "dec": "1", "label": "`id`"}, 'field "label"'),
    ({"file": "bucket/x.fits", "ra": "1", "dec": "1", "label": "x;rm"}, 'field "label"'),
    ({"file": "bucket/x.fits", "ra": "1", "dec": "1", "label": "-x"}, 'field "label"'),
    ({"file": "bucket/x.fits", "ra": "1"}, 'field "dec" is missing'),
    ({"file": "bucket/x.fits", "ra": "1", "dec": "1", "width": 5}, 'unknown field width'),
    ({"file": ["bucket/x.fits"], "ra": "1", "dec": "1"}, "nested object or array"),
]


@pytest.mark.parametrize(("fields", "expected"), REFUSED, ids=[repr(f) for f, _ in REFUSED])
def test_hostile_message_is_refused_before_any_submission(scripts_dir: Path, shim_state: ShimState, workdir: Path,
                                                          fields: dict, expected: str) -> None:
    result = schedule(scripts_dir, shim_state, workdir, write_message(workdir, **fields))
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert shim_state.sbatch_calls() == []
    assert sorted(p.name for p in workdir.iterdir()) == ["message.json"]
    assert not (workdir.parent / "scratch").exists()


@pytest.mark.parametrize("raw", [
    b'{"file": "bucket/caf\xe9.fits", "ra": "1", "dec": "1"}',
    b'{"file": "bucket/x.fits", "ra": "1", "dec": "1"',
    b'{"file": "bucket/x.fits", "ra": "1", "dec": "1"} trailing',
    b'{"file": "bucket/x.fits", "file": "bucket/y.fits", "ra": "1", "dec": "1"}',
    b'{"file": "bucket/\\ud800.fits", "ra": "1", "dec": "1"}',
    b'{"file": "bucket/x\x00.fits", "ra": "1", "dec": "1"}',
])
def test_malformed_message_is_refused_before_any_submission(scripts_dir: Path, shim_state: ShimState, workdir: Path,
                                                            raw: bytes) -> None:
    (workdir / "message.json").write_bytes(raw)
    result = schedule(scripts_dir, shim_state, workdir, "message.json")
    assert result.returncode == 2, result.stderr
    assert "message.json" in result.stderr
    assert shim_state.sbatch_calls() == []


@pytest.mark.parametrize("key", [
    "bucket/with space/and 'single' \"double\".fits",
    "bucket/$(touch pwned)/`touch pwned2`;x.fits",
    "bucket/caf\u00e9/\u65e5\u672c \U0001F600.fits",
    "bucket/#hash/-dash/x.FITS",
])
def test_odd_but_legal_key_reaches_every_tool_as_one_exact_argument(scripts_dir: Path, shim_state: ShimState,
                                                                    workdir: Path, key: str) -> None:
    escaped = json.dumps({"file": key, "ra": "00:00:24.0", "dec": "-00:15:00.5", "label": "obj.1"})
    (workdir / "message.json").write_text(escaped)
    result = schedule(scripts_dir, shim_state, workdir, "message.json")
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip())
    assert (run_dir / "sync_in.list").read_text(encoding="utf-8") == key + "\n"
    # The key reaches rclone (sync_in.list) and results (objects.tsv) exactly; the tools read the run's
    # own copy, named by the image's index.
    w2p = (run_dir / "tasks" / "world_to_pixel.tsv").read_text(encoding="utf-8")
    assert w2p == "\t".join([f"{run_dir}/failed/0", f"{run_dir}/images/0.fits", "00:00:24.0", "-00:15:00.5",
                             f"{run_dir}/xy/0.xy"]) + "\n"
    crop = (run_dir / "tasks" / "crop.tsv").read_text(encoding="utf-8").split("\t")
    assert crop[2] == f"{run_dir}/out/0.fits"
    assert (run_dir / "objects.tsv").read_text(encoding="utf-8").splitlines()[1].split("\t")[1:6] == [
        key, "00:00:24.0", "-00:15:00.5", "obj.1", crop_key(key, "obj.1", "00:00:24.0", "-00:15:00.5")]
    assert sorted(p.name for p in workdir.iterdir()) == ["message.json"]
    assert not list(workdir.parent.rglob("pwned*"))


def test_each_job_is_submitted_with_exactly_its_variables_and_no_secret_in_argv(scripts_dir: Path,
                                                                                shim_state: ShimState,
                                                                                workdir: Path) -> None:
    """The job's variables, a documented base (PATH, HOME, USER, LOGNAME, LANG, MODULESHOME,
    MODULEPATH), Slurm's SLURM_* and SBATCH_*, and SHLVL (bash's exec sets it): nothing else of the submitting shell, not even
    a variable a function of schedule.sh hides with a local of the same name ("step"), nor an
    exported function, nor SLURM_GET_USER_ENV (it would make slurmd load the login environment)."""
    base = {"PATH": os.environ["PATH"], "HOME": str(workdir), "USER": "alice", "LANG": "C.UTF-8",
            "SLURM_CONF": "/etc/slurm/slurm.conf", "SBATCH_ACCOUNT": "pawsey0001", "SLURM_GET_USER_ENV": "1",
            "SLURM_EXPORT_ENV": "NONE", "NOT_KEPT": "marker-1c9e", "step": "marker-77d0", "RUN_DIR": "marker-5b2a",
            "BASH_FUNC_leak%%": "() { echo marker-e40f; }"}
    env = shim_state.env(base, MYSCRATCH=str(workdir.parent / "scratch"), **SECRETS)
    result = subprocess.run(["bash", str(scripts_dir / "schedule.sh"),
                             write_message(workdir, file=IMAGE, ra="0.1", dec="0.25")],
                            cwd=workdir, env=env, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    calls = shim_state.sbatch_calls()
    common = {"PATH", "HOME", "USER", "LANG", "SLURM_CONF", "SBATCH_ACCOUNT", "SHLVL"}
    assert [set(c["environment"]) for c in calls] == [common | set(SECRETS), common, common, common | set(SECRETS)]
    assert [c["export_mode"] for c in calls] == ["ALL"] * 4
    argv = " ".join(a for c in shim_state.calls() for a in c["argv"])
    assert [v for v in SECRETS.values() if v in argv] == []
    assert [v for v in SECRETS.values() if v in shim_state.calls_text()] == []
