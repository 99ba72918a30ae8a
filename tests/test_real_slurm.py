"""The generated scripts on a real Slurm: one cluster, a zeus+magnus federation, and
the same two clusters without a federation (relay mode, and the hazard it avoids).

`sbatch --clusters` needs slurmdbd (without it: "Problem talking to database"), and
every sbatch here names its cluster, so the one-cluster spec runs on magnus of the
accounted zeus+magnus setup.

Everything is real but the container runtime: slurmctld/slurmd (and slurmdbd with
MariaDB for two clusters) on loopback, rclone against SeaweedFS, sky2xy and astcrop
run by the singularity shim. Jobs get only the variables schedule.sh keeps for them, so
the specs here name the shim's state and rclone's settings (`exports`), as a site would
name what its jobs need; PATH (the shims, the venv's rclone) is part of the base.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.waiting import wait_until
from tests.chain import DEC, RA, assert_crop_in_bucket, compile_for_slurm, crop_key, real_slurm_environment
from tests.fitsimages import make_image
from tests.s3server import DEFAULT_REMOTE, S3Server
from tests.slurmlib import FINAL_STATES, SlurmSetup

pytestmark = [pytest.mark.s3, pytest.mark.slurm, pytest.mark.tools]

EXPORTS = "\nexports: [PATH, SLURM_CONF, LTSFLOW_SHIM_STATE, LTSFLOW_SHIM_MISSING, RCLONE_BWLIMIT, RCLONE_CONFIG]\n"


class RealRun:
    """schedule.sh against a real Slurm setup and the S3 server."""

    def __init__(self, setup: SlurmSetup, s3: S3Server, spec: str, tmp_path: Path, *, remote: str = "ceph",
                 renames: tuple[tuple[str, str], ...] = (), **extra: str) -> None:
        self.setup = setup
        self.scripts = compile_for_slurm(spec, tmp_path, EXPORTS, renames)
        self.workdir = tmp_path / "cwd"
        self.workdir.mkdir()
        self.env = real_slurm_environment(setup, s3, tmp_path, remote)
        self.env.update(MYSCRATCH=str(tmp_path / "scratch"), **extra)
        self.result: subprocess.CompletedProcess[str] | None = None

    def message(self, **fields: object) -> str:
        (self.workdir / "message.json").write_text(json.dumps(fields))
        return "message.json"

    def schedule(self, *inputs: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        self.result = subprocess.run(["bash", str(self.scripts / "schedule.sh"), *inputs], cwd=self.workdir,
                                     env=env or self.env, capture_output=True, text=True, check=False, timeout=120)
        return self.result

    @property
    def run_dir(self) -> Path:
        assert self.result is not None and self.result.returncode == 0, self.result and self.result.stderr
        return Path(self.result.stdout.strip())

    def jobs(self) -> dict[str, str]:
        """{step: "ID;CLUSTER"} of every job submitted so far (relay jobs add theirs as they go)."""
        rows = [line.split("\t") for line in (self.run_dir / "jobs.tsv").read_text().splitlines()[1:]]
        return {step: f"{job_id};{cluster}" for step, cluster, job_id, _name in rows}

    def wait(self, steps: list[str], timeout: float = 240) -> dict[str, str]:
        """Wait until every one of `steps` was submitted and every submitted job ended: {step: state}."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            states = self.setup.job_states(*jobs.values())
            by_step = {step: states[ref] for step, ref in jobs.items()}
            if set(steps) <= set(jobs) and all(state in FINAL_STATES for state in by_step.values()):
                return by_step
            if time.monotonic() > deadline:
                logs = {p.name: p.read_text(errors="replace")[-800:] for p in (self.run_dir / "logs").iterdir()}
                raise AssertionError(f"run not finished after {timeout} s: {by_step}\n{logs}\n{self.setup.log_tail()}")
            time.sleep(0.5)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted((self.run_dir / "logs").iterdir()))


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "frame.fits"
    make_image(path, nx=600, ny=400, ra=RA, dec=DEC)
    return path


@pytest.fixture
def bucket(s3_server: S3Server, s3_bucket: str, image: Path) -> str:
    s3_server.put(image, f"{s3_bucket}/data/frame.fits")
    return s3_bucket


STEPS = ["sync_in", "world_to_pixel", "crop", "sync_out"]


def test_one_cluster_turns_a_message_into_the_crop(slurm_multicluster: SlurmSetup, s3_server: S3Server, bucket: str,
                                                   image: Path, tmp_path: Path) -> None:
    run = RealRun(slurm_multicluster, s3_server, "single-cluster", tmp_path)
    ra, dec = RA + 0.003, DEC - 0.002
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=ra, dec=dec)).returncode == 0, \
        run.result.stderr
    states = run.wait([*STEPS, "report"])
    assert states == dict.fromkeys([*STEPS, "report"], "COMPLETED"), run.logs()
    assert_crop_in_bucket(s3_server, crop_key(f"{bucket}/data/frame.fits", "galaxy_1", ra, dec), image,
                          run.run_dir / "xy" / "0.xy", ra, dec, 20, tmp_path)
    assert (run.run_dir / "report.txt").read_text().splitlines()[-1] == "result: succeeded"


def test_the_notify_spec_puts_the_runs_notice_in_the_bucket(slurm_multicluster: SlurmSetup, s3_server: S3Server,
                                                           bucket: str, tmp_path: Path) -> None:
    """notify.yaml: once sync out has ended, the notify job (afterany on it) puts the run's notice, its
    results and its result, where the spec's `with.to` says."""
    s3_server.make_bucket("lts-notices")
    try:
        run = RealRun(slurm_multicluster, s3_server, "notify", tmp_path)
        ra, dec = RA + 0.002, DEC + 0.001
        assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=ra, dec=dec)).returncode == 0, \
            run.result.stderr
        assert run.wait([*STEPS, "notify"]) == dict.fromkeys([*STEPS, "notify"], "COMPLETED"), run.logs()
        notice = json.loads(s3_server.get_bytes(f"lts-notices/runs/{run.run_dir.name}.json"))
        results = json.loads((run.run_dir / "results.json").read_text())
        key = (run.run_dir / "results.key").read_text().strip()
        assert notice == {**results, "result": "succeeded", "results_key": key}
        assert notice["results"][0]["key"] == crop_key(f"{bucket}/data/frame.fits", "galaxy_1", ra, dec)
    finally:
        s3_server.rclone("purge", f"{DEFAULT_REMOTE}:lts-notices", check=False)


# Setonix's names, as the real Slurm here has them: one cluster, magnus, with copyq and debugq.
SETONIX_HERE = (("clusters:\n  setonix:", "clusters:\n  magnus:"), ("[copy, work, debug]", "[copyq, debugq]"),
                ("cluster: setonix", "cluster: magnus"), ("partition: copy\n", "partition: copyq\n"),
                ("partition: work\n", "partition: debugq\n"))


def test_setonix_acacia_runs_on_one_cluster_and_its_copies_keep_the_time_they_were_made(
        slurm_multicluster: SlurmSetup, s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    """setonix-acacia.yaml, its cluster and partitions renamed to this Slurm's: the crop, and the
    run's copy of an image uploaded with a 2001 time has the time of the copy (--local-no-set-modtime
    reached rclone in the sync-in job, through slurmd)."""
    image = tmp_path / "frame.fits"
    make_image(image, nx=600, ny=400, ra=RA, dec=DEC)
    os.utime(image, (1_000_000_000, 1_000_000_000))
    s3_server.put(image, f"{s3_bucket}/data/frame.fits")
    run = RealRun(slurm_multicluster, s3_server, "setonix-acacia", tmp_path, remote="acacia", renames=SETONIX_HERE)
    started = time.time()
    ra, dec = RA + 0.003, DEC - 0.002
    assert run.schedule(run.message(file=f"{s3_bucket}/data/frame.fits", ra=ra, dec=dec)).returncode == 0, \
        run.result.stderr
    assert run.wait(STEPS) == dict.fromkeys(STEPS, "COMPLETED"), run.logs()
    assert_crop_in_bucket(s3_server, crop_key(f"{s3_bucket}/data/frame.fits", "galaxy_1", ra, dec), image,
                          run.run_dir / "xy" / "0.xy", ra, dec, 20, tmp_path)
    assert (run.run_dir / "images" / "0.fits").stat().st_mtime >= started - 1


def test_the_checksum_spec_puts_each_images_checksum_beside_it(slurm_multicluster: SlurmSetup, s3_server: S3Server,
                                                              s3_bucket: str, image: Path, tmp_path: Path) -> None:
    """checksum.yaml, a workflow that is not astronomy, renamed to this Slurm's cluster and partitions:
    sync in, sha256sum once for the image (a command step), sync out of the checksum beside the image."""
    s3_server.put(image, f"{s3_bucket}/data/frame.fits")
    run = RealRun(slurm_multicluster, s3_server, "checksum", tmp_path, remote="acacia", renames=SETONIX_HERE)
    assert run.schedule(run.message(file=f"{s3_bucket}/data/frame.fits")).returncode == 0, run.result.stderr
    steps = ["sync_in", "checksum", "sync_out"]
    assert run.wait(steps) == dict.fromkeys(steps, "COMPLETED"), run.logs()
    line = s3_server.get_bytes(f"{s3_bucket}/data/frame.fits.sha256").decode()
    assert line.split()[0] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert json.loads((run.run_dir / "results.json").read_text())["succeeded"] == 1


def test_a_job_holds_its_variables_by_value_and_nothing_of_the_login_environment(
        slurm_multicluster: SlurmSetup, s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    """The environment a step starts in: the credentials, the spec's exports, the base (PATH,
    HOME, USER, LOGNAME, LANG), SLURM_*, and what slurmstepd (ENVIRONMENT, HOSTNAME, TMPDIR) and
    bash (PWD, SHLVL, _) add. Not NOT_KEPT, set where schedule.sh ran; not the login environment,
    which slurmd marks with SLURM_GET_USER_ENV (set here too, as a shell inside such a job has it)."""
    run = RealRun(slurm_multicluster, s3_server, "single-cluster", tmp_path, NOT_KEPT="marker-3f0a",
                  SLURM_GET_USER_ENV="1", SLURM_EXPORT_ENV="NONE")
    dumps = tmp_path / "environments"
    dumps.mkdir()
    real = run.scripts / "sync.real.sh"
    (run.scripts / "sync.sh").rename(real)
    (run.scripts / "sync.sh").write_text(f'#!/bin/bash\n/usr/bin/env -0 >{shlex.quote(str(dumps))}/"$SLURM_JOB_ID"\n'
                                         f'exec bash {shlex.quote(str(real))} "$@"\n')
    (run.scripts / "sync.sh").chmod(0o755)
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0, \
        run.result.stderr
    assert run.wait([*STEPS, "report"]) == dict.fromkeys([*STEPS, "report"], "COMPLETED"), run.logs()
    environments = [dict(e.split("=", 1) for e in p.read_text().split("\0") if e) for p in sorted(dumps.iterdir())]
    assert len(environments) == 2  # sync_in and sync_out
    spec_exports = {"SLURM_CONF", "LTSFLOW_SHIM_STATE", "RCLONE_BWLIMIT", "RCLONE_CONFIG"}
    allowed = ({"PATH", "HOME", "USER", "LOGNAME", "LANG"} | spec_exports | {"ENVIRONMENT", "HOSTNAME", "TMPDIR"}
               | {"PWD", "SHLVL", "_"} | {name for name in run.env if name.startswith("RCLONE_CONFIG_CEPH_")})
    for environment in environments:
        assert environment["RCLONE_CONFIG_CEPH_ACCESS_KEY_ID"] == s3_server.access_key
        assert environment["RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY"] == s3_server.secret_key
        assert environment["PATH"] == run.env["PATH"]
        assert sorted(n for n in environment if not n.startswith(("SLURM_", "SLURMD_")) and n not in allowed) == []
        assert "SLURM_GET_USER_ENV" not in environment and "SLURM_EXPORT_ENV" not in environment


def test_a_failing_step_cancels_what_waits_and_the_report_records_it(slurm_multicluster: SlurmSetup, s3_server: S3Server,
                                                                     bucket: str, tmp_path: Path) -> None:
    # The step itself fails (no sky2xy in its container), not one of its objects.
    run = RealRun(slurm_multicluster, s3_server, "single-cluster", tmp_path, LTSFLOW_SHIM_MISSING="sky2xy")
    before = s3_server.snapshot()
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0
    states = run.wait([*STEPS, "report"])
    assert states == {"sync_in": "COMPLETED", "world_to_pixel": "FAILED", "crop": "CANCELLED",
                      "sync_out": "CANCELLED", "report": "COMPLETED"}, run.logs()
    assert "world_to_pixel: FAILED exit 3:0" in (run.run_dir / "report.txt").read_text()
    assert s3_server.snapshot() == before
    queued = slurm_multicluster.run("squeue", "--clusters=all", "--noheader", check=False).stdout
    assert "lts-template" not in queued


def test_the_federation_runs_the_seed_topology_on_the_named_clusters(slurm_federation: SlurmSetup,
                                                                      s3_server: S3Server, bucket: str,
                                                                      image: Path, tmp_path: Path) -> None:
    run = RealRun(slurm_federation, s3_server, "federated-report", tmp_path)
    ra, dec = RA - 0.004, DEC + 0.001
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=ra, dec=dec)).returncode == 0, \
        run.result.stderr
    states = run.wait([*STEPS, "report"], timeout=300)
    assert states == dict.fromkeys([*STEPS, "report"], "COMPLETED"), run.logs()
    assert_crop_in_bucket(s3_server, crop_key(f"{bucket}/data/frame.fits", "galaxy_1", ra, dec), image,
                          run.run_dir / "xy" / "0.xy", ra, dec, 20, tmp_path)
    jobs = run.jobs()
    records = slurm_federation.wait_for_accounting(*jobs.values())
    ran_on = {step: next(r["Cluster"] for r in records if r["JobIDRaw"] == ref.split(";")[0])
              for step, ref in jobs.items()}
    assert ran_on == {"sync_in": "zeus", "world_to_pixel": "magnus", "crop": "magnus", "sync_out": "zeus",
                      "report": "zeus"}
    # credentials reach the jobs by name only
    secrets = [s3_server.access_key, s3_server.secret_key]
    files = [p for root in (run.run_dir, run.scripts) for p in root.rglob("*") if p.is_file()]
    assert [p for p in files if any(s.encode() in p.read_bytes() for s in secrets)] == []


def test_status_and_cancel_act_on_every_cluster_of_the_federation(slurm_federation: SlurmSetup,
                                                                  s3_server: S3Server, bucket: str,
                                                                  tmp_path: Path) -> None:
    run = RealRun(slurm_federation, s3_server, "federated-report", tmp_path, RCLONE_BWLIMIT="20k")
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0
    status = subprocess.run(["bash", str(run.scripts / "status.sh"), str(run.run_dir)], env=run.env,
                            capture_output=True, text=True, check=True)
    rows = [line.split() for line in status.stdout.splitlines()[1:-2]]
    assert [(r[0], r[1]) for r in rows] == [("sync_in", "zeus"), ("world_to_pixel", "magnus"), ("crop", "magnus"),
                                            ("sync_out", "zeus"), ("report", "zeus")]
    assert all(r[3] in {"PENDING", "RUNNING", "COMPLETED"} for r in rows), status.stdout
    cancelled = subprocess.run(["bash", str(run.scripts / "cancel.sh"), str(run.run_dir)], env=run.env,
                               capture_output=True, text=True, check=False)
    assert cancelled.returncode == 0, cancelled.stderr
    states = slurm_federation.wait_for_jobs(*run.jobs().values(), timeout=60)
    assert set(states.values()) == {"CANCELLED"}, states


def test_relay_without_a_federation_gives_the_same_crop(slurm_multicluster: SlurmSetup, s3_server: S3Server,
                                                        bucket: str, image: Path, tmp_path: Path) -> None:
    run = RealRun(slurm_multicluster, s3_server, "relay", tmp_path)
    ra, dec = RA + 0.001, DEC + 0.003
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=ra, dec=dec)).returncode == 0, \
        run.result.stderr
    states = run.wait([*STEPS, "report"], timeout=300)
    assert states == dict.fromkeys([*STEPS, "report"], "COMPLETED"), run.logs()
    assert_crop_in_bucket(s3_server, crop_key(f"{bucket}/data/frame.fits", "galaxy_1", ra, dec), image,
                          run.run_dir / "xy" / "0.xy", ra, dec, 20, tmp_path)
    assert [ref.split(";")[1] for ref in run.jobs().values()] == ["zeus", "magnus", "magnus", "zeus", "zeus"]


def test_afterok_across_clusters_without_a_federation_does_not_wait(slurm_multicluster: SlurmSetup,
                                                                     s3_server: S3Server, bucket: str,
                                                                     tmp_path: Path) -> None:
    """The hazard: the spec claims a federation the clusters do not have (ltsflow check would
    refuse the honest spec). magnus does not know zeus's job id and starts the compute job at once:
    it runs to its end while the sync-in job on zeus is still held at a gate the test opens only then."""
    run = RealRun(slurm_multicluster, s3_server, "lts-template", tmp_path)
    gate = tmp_path / "sync-in.go"
    real = run.scripts / "sync.real.sh"
    (run.scripts / "sync.sh").rename(real)
    # sync in (sync.sh --images ...) waits for the gate (two minutes at most, then exit 99); sync out does not
    go = shlex.quote(str(gate))
    (run.scripts / "sync.sh").write_text(
        f'#!/bin/bash\nif [ "$1" = --images ]; then\n  for _ in $(seq 1200); do [ -e {go} ] && break; sleep 0.1; done\n'
        f'  [ -e {go} ] || exit 99\nfi\nexec bash {shlex.quote(str(real))} "$@"\n')
    (run.scripts / "sync.sh").chmod(0o755)
    assert run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)).returncode == 0, \
        run.result.stderr
    jobs = run.jobs()
    try:
        slurm_multicluster.wait_for_jobs(jobs["world_to_pixel"], timeout=120)
        assert slurm_multicluster.job_states(jobs["sync_in"])[jobs["sync_in"]] in {"PENDING", "RUNNING"}
        [started] = slurm_multicluster.wait_for_accounting(jobs["world_to_pixel"])
        # sacct's times are whole seconds: sync in is to end in a later second than the compute job started in
        after = datetime.fromisoformat(started["Start"]).timestamp() + 1
        wait_until(lambda: time.time() >= after, "the second after the compute job's start", timeout=10, poll=0.05)
    finally:
        gate.touch()
    run.wait(STEPS, timeout=300)
    records = {r["JobIDRaw"]: r for r in slurm_multicluster.wait_for_accounting(*jobs.values())}
    sync_in = records[jobs["sync_in"].split(";")[0]]
    world_to_pixel = records[jobs["world_to_pixel"].split(";")[0]]
    assert world_to_pixel["Start"] < sync_in["End"], (sync_in, world_to_pixel)


@pytest.mark.parametrize("interruption", ["sbatch fails", "TERM"])
def test_schedule_cut_short_between_submissions_leaves_nothing_queued(slurm_multicluster: SlurmSetup,
                                                                      s3_server: S3Server, bucket: str,
                                                                      tmp_path: Path, interruption: str) -> None:
    run = RealRun(slurm_multicluster, s3_server, "single-cluster", tmp_path, RCLONE_BWLIMIT="10k")
    wrapper = tmp_path / "wrapper"
    wrapper.mkdir()
    # On its third call, the wrapper fails as sbatch can, or sends TERM to schedule.sh (going up past
    # the $(...) subshell, which runs schedule.sh too) and returns once schedule.sh has taken it.
    act = ('echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller" >&2; exit 1'
           if interruption == "sbatch fails" else
           'pid=$(top_schedule); kill -TERM "$pid"; taken "$pid" || exit 2; exit 1')
    (wrapper / "sbatch").write_text(f"""#!/bin/bash
runs_it() {{ tr '\\0' ' ' <"/proc/$1/cmdline" | grep -q schedule.sh; }}
parent_of() {{ awk '{{print $4}}' "/proc/$1/stat"; }}
top_schedule() {{
  local pid=$PPID parent
  until runs_it "$pid"; do pid=$(parent_of "$pid"); done
  while parent=$(parent_of "$pid") && runs_it "$parent"; do pid=$parent; done
  echo "$pid"
}}
# taken PID: wait (10 s at most) until TERM is no longer pending at PID: its handler has run.
taken() {{
  local key value pending i
  for ((i = 0; i < 200; i++)); do
    pending=0
    while read -r key value; do
      if [[ "$key" == SigPnd: || "$key" == ShdPnd: ]] && (( 0x$value & 0x4000 )); then pending=1; fi
    done <"/proc/$1/status"
    ((pending == 0)) && return 0
    sleep 0.05
  done
  return 1
}}
n=$(( $(cat "$0.count" 2>/dev/null || echo 0) + 1 )); echo "$n" >"$0.count"
if [ "$n" -ge 3 ]; then {act}; fi
exec /usr/bin/sbatch "$@"
""")
    (wrapper / "sbatch").chmod(0o755)
    # "Unable to contact" is retried (after a look-up by name finds nothing): every try fails here
    env = {**run.env, "PATH": f"{wrapper}{os.pathsep}{run.env['PATH']}", "LTSFLOW_SUBMIT_DELAY": "0"}
    result = run.schedule(run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC), env=env)
    assert result.returncode in (8, 128 + signal.SIGTERM), result.stderr
    rows = (run.workdir.parent / "scratch").rglob("jobs.tsv")
    submitted = [f"{line.split(chr(9))[2]};magnus" for path in rows for line in path.read_text().splitlines()[1:]]
    assert len(submitted) == 2
    states = slurm_multicluster.wait_for_jobs(*submitted, timeout=60)
    assert set(states.values()) == {"CANCELLED"}, (states, result.stderr)
    assert "lts-template" not in slurm_multicluster.run("squeue", "--clusters=all", "--noheader", check=False).stdout


@pytest.mark.parametrize("fault", ["stopped and restarted", "paused"])
def test_slurmctld_that_goes_away_during_a_submission_gets_each_job_once(slurm_multicluster: SlurmSetup,
                                                                         s3_server: S3Server, bucket: str,
                                                                         tmp_path: Path, fault: str) -> None:
    """magnus' slurmctld is stopped (sbatch -M: "'magnus' can't be reached now", nothing queued) or
    paused (sbatch: "Socket timed out", and the job is queued once slurmctld resumes) while schedule.sh
    submits. schedule.sh waits, looks the job up by name, submits again only if it finds none, and
    the run completes with one job per step."""
    run = RealRun(slurm_multicluster, s3_server, "single-cluster", tmp_path, LTSFLOW_SUBMIT_DELAY="1",
                  LTSFLOW_SUBMIT_ATTEMPTS="12")
    conf = slurm_multicluster.conf_for("magnus")
    if fault == "paused":
        # The clients of this run give up on a silent slurmctld after 3 s, not the 10 s of the
        # daemons' MessageTimeout: sbatch fails the same way ("Socket timed out"), sooner.
        client_conf = tmp_path / "slurm.conf"
        client_conf.write_text(Path(run.env["SLURM_CONF"]).read_text() + "MessageTimeout=3\n")
        run.env["SLURM_CONF"] = str(client_conf)
    pid_file = conf.parent / "slurmctld.pid"
    pid = int(pid_file.read_text().split()[0])
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
    ping = lambda: "is UP" in slurm_multicluster.run("scontrol", "ping", cluster="magnus", check=False).stdout  # noqa: E731
    errors = tmp_path / "schedule.err"
    message = run.message(file=f"{bucket}/data/frame.fits", ra=RA, dec=DEC)
    if fault == "paused":
        os.kill(pid, signal.SIGSTOP)
    else:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3],
                    "slurmctld stopped", timeout=120, poll=0.2)
    try:
        with errors.open("w") as stderr:
            process = subprocess.Popen(["bash", str(run.scripts / "schedule.sh"), message], cwd=run.workdir,
                                       env=run.env, stdout=subprocess.PIPE, stderr=stderr, text=True)
            # a stopped slurmctld has left slurmdbd without its address
            expected = "Socket timed out" if fault == "paused" else "'magnus' can't be reached now"
            wait_until(lambda: "looking for job" in errors.read_text() or process.poll() is not None,
                        "retrying", timeout=120, poll=0.2)
            assert expected in errors.read_text(), errors.read_text()
    finally:
        if fault == "paused":
            os.kill(pid, signal.SIGCONT)
        else:
            subprocess.run(["slurmctld", "-f", str(conf), "-i"], env=slurm_multicluster.environ("magnus"),
                           check=True, timeout=60)
        wait_until(ping, "slurmctld answering", timeout=120, poll=0.2)
    stdout, _ = process.communicate(timeout=300)
    run.result = subprocess.CompletedProcess(process.args, process.returncode, stdout, errors.read_text())
    assert process.returncode == 0, run.result.stderr
    if fault == "paused":
        assert "but slurmctld had queued it" in run.result.stderr
    states = run.wait([*STEPS, "report"])
    assert states == dict.fromkeys([*STEPS, "report"], "COMPLETED"), run.logs()
    ours: list[str] = []

    def accounted() -> bool:
        names = slurm_multicluster.run("sacct", "--clusters=magnus", "--allocations", "--noheader", "--parsable2",
                                       "--starttime=now-1hours", "--format=JobName").stdout.split()
        ours[:] = [name for name in names if name.endswith(run.run_dir.name)]
        return len(ours) >= len(STEPS) + 1

    # slurmdbd records jobs in the order slurmctld sent them: a duplicate would come before the report
    wait_until(accounted, "every job in accounting", timeout=60, poll=0.2)
    assert len(ours) == len(set(ours)) == len(STEPS) + 1, ours
