"""The fake Slurm shims behave like Slurm 22.05 where the pipeline can tell the difference.

Expected texts marked "measured" were taken from a real sbatch/squeue/scancel 22.05.8 on a
loopback cluster (tests/slurm/start_cluster.sh).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from tests.shimlib import SHIMS_DIR, ShimState

ECHO_ARGS = """#!/bin/bash
echo "job=${SLURM_JOB_ID} name=${SLURM_JOB_NAME} cluster=${SLURM_CLUSTER_NAME}"
for a in "$@"; do printf '<%s>\\n' "$a"; done
echo "to-stderr" >&2
"""
EXIT_WITH = """#!/bin/bash
exit "$1"
"""


def script(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(0o755)
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    script(d / "echo.sh", ECHO_ARGS)
    script(d / "exit.sh", EXIT_WITH)
    return d


def sbatch(state: ShimState, work: Path, *args: str, env=None):
    return state.run("sbatch", *args, cwd=work, env=env)


def submit(state: ShimState, work: Path, *args: str, env=None) -> int:
    """Submit with --parsable and return the id (asserting success)."""
    result = sbatch(state, work, "--parsable", *args, env=env)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().split(";")[0])


# --------------------------------------------------------------------------- basics


def test_state_directory_is_required(work: Path, shim_state: ShimState):
    env = shim_state.env()
    del env["LTSFLOW_SHIM_STATE"]
    for tool in ("sbatch", "drain", "singularity"):  # the three entry points
        result = shim_state.run(tool, "x", env=env, cwd=work)
        assert result.returncode == 1, tool
        assert "LTSFLOW_SHIM_STATE is not set" in result.stderr, tool
    assert shim_state.calls() == []


def test_sbatch_output_forms_are_byte_exact(work: Path, shim_state: ShimState):
    # measured: "1", "1;zeus" (TESTING.md), "Submitted batch job 2", "... on cluster zeus"
    assert sbatch(shim_state, work, "--parsable", "echo.sh").stdout == "1001\n"
    assert sbatch(shim_state, work, "--parsable", "-M", "zeus", "echo.sh").stdout == "1002;zeus\n"
    assert sbatch(shim_state, work, "echo.sh").stdout == "Submitted batch job 1003\n"
    result = sbatch(shim_state, work, "-M", "zeus", "echo.sh")
    assert (result.stdout, result.stderr, result.returncode) == (
        "Submitted batch job 1004 on cluster zeus\n", "", 0)
    assert [(j["id"], j["cluster"]) for j in shim_state.jobs()] == [
        (1001, "cluster"), (1002, "zeus"), (1003, "cluster"), (1004, "zeus")]


def test_default_cluster_comes_from_the_environment(work: Path, shim_state: ShimState):
    env = shim_state.env(LTSFLOW_SHIM_DEFAULT_CLUSTER="magnus")
    assert sbatch(shim_state, work, "echo.sh", env=env).stdout == "Submitted batch job 1001\n"
    assert shim_state.jobs()[0]["cluster"] == "magnus"


@pytest.mark.parametrize("form", [
    ["--partition=copyq", "--clusters=zeus", "--job-name=fetch", "--time=00:10:00",
     "--mem=2G", "--cpus-per-task=2", "--account=pawsey1", "--qos=high", "--comment=c x"],
    ["--partition", "copyq", "--clusters", "zeus", "--job-name", "fetch", "--time",
     "00:10:00", "--mem", "2G", "--cpus-per-task", "2", "--account", "pawsey1", "--qos",
     "high", "--comment", "c x"],
    ["-p", "copyq", "-M", "zeus", "-J", "fetch", "-t", "00:10:00", "--mem=2G", "-c", "2",
     "-A", "pawsey1", "-q", "high", "--comment=c x"],
    ["-pcopyq", "-Mzeus", "-Jfetch", "-t00:10:00", "--mem=2G", "-c2", "-Apawsey1", "-qhigh",
     "--comment", "c x"],
])
def test_option_forms_are_equivalent(work: Path, shim_state: ShimState, form: list[str]):
    assert sbatch(shim_state, work, *form, "echo.sh", "arg").returncode == 0
    (job,) = shim_state.jobs()
    assert (job["partition"], job["cluster"], job["name"], job["time"], job["mem"],
            job["cpus_per_task"], job["account"], job["qos"], job["comment"],
            job["script_args"]) == (
        "copyq", "zeus", "fetch", "00:10:00", "2G", 2, "pawsey1", "high", "c x", ["arg"])
    assert shim_state.sbatch_calls()[0]["argv"] == [*form, "echo.sh", "arg"]


# measured on sbatch 22.05.8
UNKNOWN_OR_MALFORMED_OPTIONS = [
    (["--foo", "echo.sh"], "sbatch: unrecognized option '--foo'"),
    (["--foo=1", "echo.sh"], "sbatch: unrecognized option '--foo=1'"),
    (["-Z", "echo.sh"], "sbatch: invalid option -- 'Z'"),
    (["--nodes=1", "echo.sh"], "sbatch: unrecognized option '--nodes=1'"),
    (["--parsable=1", "echo.sh"], "sbatch: option '--parsable' doesn't allow an argument"),
    (["-p"], "sbatch: option requires an argument -- 'p'"),
    (["--partition"], "sbatch: option '--partition' requires an argument"),
]


def test_unknown_or_malformed_options_are_refused(work: Path, shim_state: ShimState):
    for args, message in UNKNOWN_OR_MALFORMED_OPTIONS:
        result = sbatch(shim_state, work, *args)
        assert (result.returncode, result.stdout, result.stderr) == (
            255, "", f'{message}\nTry "sbatch --help" for more information\n'), args
    assert shim_state.jobs() == []
    assert [(c["argv"], c["job_id"], c["cluster"], c["rc"]) for c in shim_state.sbatch_calls()] == [
        (args, None, None, 255) for args, _ in UNKNOWN_OR_MALFORMED_OPTIONS]


# measured on sbatch 22.05.8
BAD_VALUES_AND_SCRIPTS = [
    (["-t", "abc", "echo.sh"], ["sbatch: error: Invalid --time specification"], 255),
    (["--mem=abc", "echo.sh"], ["sbatch: error: Invalid --mem specification"], 255),
    (["-c", "x", "echo.sh"], ['sbatch: error: Invalid numeric value "x" for --cpus-per-task.'], 1),
    (["--kill-on-invalid-dep=maybe", "echo.sh"],
     ["sbatch: error: Invalid --kill-on-invalid-dep specification"], 255),
    (["-a", "x", "echo.sh"],
     ["sbatch: error: Batch job submission failed: Invalid job array specification"], 1),
    (["missing.sh"], ["sbatch: error: Unable to open file missing.sh"], 1),
    (["noshebang.sh"], [
        "sbatch: error: This does not look like a batch script.  The first",
        "sbatch: error: line must start with #! followed by the path to an interpreter.",
        "sbatch: error: For instance: #!/bin/sh"], 1),
]


def test_bad_values_and_scripts_are_refused(work: Path, shim_state: ShimState):
    (work / "noshebang.sh").write_text("echo hi\n")
    for args, lines, code in BAD_VALUES_AND_SCRIPTS:
        result = sbatch(shim_state, work, *args)
        assert (result.returncode, result.stdout, result.stderr) == (
            code, "", "\n".join(lines) + "\n"), args
    assert shim_state.jobs() == []


def test_script_is_copied_at_submission_and_args_pass_exactly(work: Path, shim_state: ShimState):
    args = ["a b", "", "$(touch pwned)", "`id`", "it's", "-x", "line1\nline2", "*"]
    job_id = submit(shim_state, work, "echo.sh", *args)
    (work / "echo.sh").write_text("#!/bin/bash\necho EDITED\n")  # too late: job has a copy
    shim_state.drain()
    log = (work / f"slurm-{job_id}.out").read_text()
    expected = "".join(f"<{a}>\n" for a in args)
    assert log == f"job={job_id} name=echo.sh cluster=cluster\n{expected}to-stderr\n"
    assert not (work / "pwned").exists()
    assert "EDITED" not in shim_state.script_copy(shim_state.jobs()[0]).read_text()


def test_sbatch_directives_in_script_apply_and_command_line_wins(work, shim_state):
    script(work / "d.sh", "#!/bin/bash\n#SBATCH --job-name=from-script\n"
                          "#SBATCH -o d-%j.log  # trailing comment\n#SBATCH -p copyq\necho hi\n"
                          "#SBATCH -p ignored-after-first-command\n")
    job_id = submit(shim_state, work, "-J", "from-cli", "d.sh")
    job = shim_state.jobs()[0]
    assert (job["name"], job["partition"], job["output"]) == ("from-cli", "copyq", "d-%j.log")
    shim_state.drain()
    assert (work / f"d-{job_id}.log").read_text() == "hi\n"


def test_script_can_come_from_stdin(work: Path, shim_state: ShimState):
    result = shim_state.run("sbatch", "--parsable", cwd=work, input="#!/bin/sh\necho piped\n")
    assert result.stdout == "1001\n"
    shim_state.drain()
    assert (work / "slurm-1001.out").read_text() == "piped\n"
    empty = shim_state.run("sbatch", cwd=work, input="")
    assert (empty.returncode, empty.stderr) == (1, "sbatch: error: Batch script is empty!\n")


# --------------------------------------------------------------------------- dependencies


MALFORMED_DEPENDENCIES = [
    "afterok:abc", "afterok:", "afterok:1001;zeus", "afterok:1001:zeus", "afterok:1001@zeus",
    "afterfoo:1001", "afterok:1001,", "afterok:1001 ", "singleton:1001", "afterok:1001+5",
]


def test_malformed_dependencies_are_refused(work: Path, shim_state: ShimState):
    submit(shim_state, work, "echo.sh")
    for spec in MALFORMED_DEPENDENCIES:
        result = sbatch(shim_state, work, "--parsable", "-d", spec, "echo.sh")
        # measured on sbatch 22.05.8 (the cluster-suffixed forms too)
        assert (result.returncode, result.stdout, result.stderr) == (
            1, "", "sbatch: error: Batch job submission failed: Job dependency problem\n"), spec
        assert shim_state.sbatch_calls()[-1]["job_id"] is None
    assert len(shim_state.jobs()) == 1


WELL_FORMED_DEPENDENCIES = [
    "afterok:1001:1002", "afterany:1001?afternotok:1002", "afterok:1001,afterany:1002",
    "after:1001+5", "singleton", "AFTEROK:1001",
]


def test_well_formed_dependencies_are_accepted(work: Path, shim_state: ShimState):
    submit(shim_state, work, "echo.sh")
    submit(shim_state, work, "echo.sh")
    for job_id, spec in enumerate(WELL_FORMED_DEPENDENCIES, start=1003):
        assert submit(shim_state, work, f"--dependency={spec}", "echo.sh") == job_id
    assert [j["dependency"] for j in shim_state.jobs()[2:]] == WELL_FORMED_DEPENDENCIES


def test_unknown_job_id_counts_as_satisfied_at_once(work: Path, shim_state: ShimState):
    first = submit(shim_state, work, "exit.sh", "1")
    blocked = submit(shim_state, work, "-d", f"afterok:{first}", "echo.sh")
    free = submit(shim_state, work, "-d", "afterok:999999", "echo.sh")
    listing = shim_state.run("squeue", "-h", "-o", "%i %r").stdout
    assert listing == f"{first} None\n{blocked} Dependency\n{free} None\n"
    shim_state.drain()
    states = {j["id"]: j["state"] for j in shim_state.jobs()}
    assert states == {first: "FAILED", blocked: "PENDING", free: "COMPLETED"}


def chain_across_clusters(state: ShimState, work: Path, env: dict[str, str]):
    """zeus job that fails, then a magnus job afterok on it (the seed's pattern)."""
    parent = sbatch(state, work, "--parsable", "-M", "zeus", "exit.sh", "1", env=env).stdout
    parent_id = int(parent.split(";")[0])
    child = sbatch(state, work, "--parsable", "-M", "magnus", "--kill-on-invalid-dep=yes",
                   "-d", f"afterok:{parent_id}", "echo.sh", env=env).stdout
    return parent.strip(), child.strip()


def test_federated_dependency_crosses_clusters(work: Path, shim_state: ShimState):
    env = shim_state.env()  # LTSFLOW_SHIM_FEDERATED defaults to "1"
    assert chain_across_clusters(shim_state, work, env) == ("1001;zeus", "1002;magnus")
    shim_state.drain(env)
    parent, child = shim_state.jobs()
    assert (parent["state"], child["state"], child["reason"]) == (
        "FAILED", "CANCELLED", "DependencyNeverSatisfied")
    assert child["run_order"] is None


def test_without_federation_a_foreign_id_does_not_wait(work: Path, shim_state: ShimState):
    env = shim_state.env(LTSFLOW_SHIM_FEDERATED="0")
    # each cluster counts from 1001, so magnus's first job is 1001 too
    assert chain_across_clusters(shim_state, work, env) == ("1001;zeus", "1001;magnus")
    listing = shim_state.run("squeue", "-M", "magnus", "-h", "-o", "%i %r", env=env).stdout
    assert listing == "CLUSTER: magnus\n1001 None\n"  # not waiting for anything
    shim_state.drain(env)
    parent, child = shim_state.jobs()
    assert child["dependencies"]["items"][0]["ids"][0]["ref"] is None
    assert (parent["state"], child["state"]) == ("FAILED", "COMPLETED")  # ran regardless


def test_without_federation_an_id_means_the_own_clusters_job(work, shim_state):
    env = shim_state.env(LTSFLOW_SHIM_FEDERATED="0")
    sbatch(shim_state, work, "-M", "magnus", "exit.sh", "1", env=env)   # magnus 1001 fails
    sbatch(shim_state, work, "-M", "zeus", "exit.sh", "0", env=env)     # zeus 1001 succeeds
    sbatch(shim_state, work, "-M", "magnus", "-d", "afterok:1001", "echo.sh", env=env)
    shim_state.drain(env)
    assert [(j["cluster"], j["id"], j["state"]) for j in shim_state.jobs()] == [
        ("magnus", 1001, "FAILED"), ("zeus", 1001, "COMPLETED"), ("magnus", 1002, "PENDING")]


# --------------------------------------------------------------------------- fault injection


def test_connect_failure_queues_nothing(work: Path, shim_state: ShimState):
    env = shim_state.env(LTSFLOW_SHIM_SBATCH_FAIL_AT="2")
    assert sbatch(shim_state, work, "--foo", env=env).returncode == 255  # call 1 counts too
    result = sbatch(shim_state, work, "--parsable", "echo.sh", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "sbatch: error: Batch job submission failed: Unable to contact slurm "
               "controller (connect failure)\n")
    assert shim_state.jobs() == []
    assert submit(shim_state, work, "echo.sh", env=env) == 1001
    calls = shim_state.sbatch_calls()
    assert [(c["call"], c["fault"], c["job_id"]) for c in calls] == [
        (1, None, None), (2, "connect", None), (3, None, 1001)]


def test_timeout_queues_the_job_but_reports_failure(work: Path, shim_state: ShimState):
    env = shim_state.env(LTSFLOW_SHIM_SBATCH_TIMEOUT_AT="2")
    assert submit(shim_state, work, "echo.sh", env=env) == 1001
    result = sbatch(shim_state, work, "--parsable", "echo.sh", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (
        1, "", "sbatch: error: Batch job submission failed: Socket timed out on send/recv "
               "operation\n")
    assert [j["id"] for j in shim_state.queued()] == [1001, 1002]  # the job exists anyway
    assert shim_state.sbatch_calls()[1]["fault"] == "timeout"
    assert submit(shim_state, work, "echo.sh", env=env) == 1003


# --------------------------------------------------------------------------- drain


def test_drain_follows_dependency_types(work: Path, shim_state: ShimState):
    a = submit(shim_state, work, "-J", "a", "exit.sh", "0")
    b = submit(shim_state, work, "-J", "b", "-d", f"afterok:{a}", "exit.sh", "3")
    c = submit(shim_state, work, "-J", "c", "-d", f"afterok:{b}", "exit.sh", "0")
    d = submit(shim_state, work, "-J", "d", "-d", f"afterany:{b}", "exit.sh", "0")
    e = submit(shim_state, work, "-J", "e", "-d", f"afternotok:{b}", "exit.sh", "0")
    f = submit(shim_state, work, "-J", "f", "-d", f"afternotok:{a}", "exit.sh", "0")
    g = submit(shim_state, work, "-J", "g", "-d", f"afterok:{c}?afterok:{e}", "exit.sh", "0")
    h = submit(shim_state, work, "-J", "h", "-d", f"after:{a}", "exit.sh", "0")
    result = shim_state.drain()
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"{a}\tcluster\ta\tCOMPLETED\t0:0",
        f"{b}\tcluster\tb\tFAILED\t3:0",
        f"{d}\tcluster\td\tCOMPLETED\t0:0",
        f"{e}\tcluster\te\tCOMPLETED\t0:0",
        f"{g}\tcluster\tg\tCOMPLETED\t0:0",
        f"{h}\tcluster\th\tCOMPLETED\t0:0",
        f"{c}\tcluster\tc\tPENDING\t-",
        f"{f}\tcluster\tf\tPENDING\t-",
    ]
    jobs = {j["name"]: j for j in shim_state.jobs()}
    assert [jobs[n]["run_order"] for n in "abdegh"] == [1, 2, 3, 4, 5, 6]
    assert [(j["name"], j["reason"]) for j in shim_state.queued()] == [
        ("c", "DependencyNeverSatisfied"), ("f", "DependencyNeverSatisfied")]
    assert (jobs["b"]["exit_code"], jobs["b"]["state"]) == (3, "FAILED")


def test_kill_on_invalid_dep_cancels_the_whole_downstream(work: Path, shim_state: ShimState):
    a = submit(shim_state, work, "exit.sh", "1")
    b = submit(shim_state, work, "--kill-on-invalid-dep=yes", "-d", f"afterok:{a}", "exit.sh", "0")
    c = submit(shim_state, work, "--kill-on-invalid-dep=yes", "-d", f"afterok:{b}", "exit.sh", "0")
    notify = submit(shim_state, work, "-d", f"afternotok:{b}", "exit.sh", "0")
    shim_state.drain()
    states = [(j["id"], j["state"], j["reason"]) for j in shim_state.jobs()]
    assert states == [(a, "FAILED", "NonZeroExitCode"),
                      (b, "CANCELLED", "DependencyNeverSatisfied"),
                      (c, "CANCELLED", "DependencyNeverSatisfied"),
                      (notify, "COMPLETED", "None")]
    assert shim_state.queued() == []


def test_cluster_wide_kill_invalid_depend_and_job_override(work, shim_state):
    env = shim_state.env(LTSFLOW_SHIM_KILL_INVALID_DEPEND="1")
    a = submit(shim_state, work, "exit.sh", "1", env=env)
    submit(shim_state, work, "-d", f"afterok:{a}", "exit.sh", "0", env=env)
    submit(shim_state, work, "--kill-on-invalid-dep=no", "-d", f"afterok:{a}", "exit.sh", "0",
           env=env)
    shim_state.drain(env)
    assert [j["state"] for j in shim_state.jobs()] == ["FAILED", "CANCELLED", "PENDING"]
    assert [j["kill_on_invalid_dep"] for j in shim_state.jobs()] == [None, None, False]


def test_jobs_submitted_by_a_running_job_join_the_queue(work: Path, shim_state: ShimState):
    script(work / "parent.sh", """#!/bin/bash
next=$(sbatch --parsable -J child -d "afterok:${SLURM_JOB_ID}" child.sh "from ${SLURM_JOB_ID}")
echo "submitted ${next}"
""")
    script(work / "child.sh", "#!/bin/bash\necho \"child got: $1\"\n")
    parent = submit(shim_state, work, "-J", "parent", "parent.sh")
    late = submit(shim_state, work, "-J", "late", "exit.sh", "0")
    shim_state.drain()
    child = late + 1
    assert (work / f"slurm-{parent}.out").read_text() == f"submitted {child}\n"
    assert (work / f"slurm-{child}.out").read_text() == f"child got: from {parent}\n"
    order = sorted((j["run_order"], j["name"]) for j in shim_state.jobs())
    assert order == [(1, "parent"), (2, "late"), (3, "child")]


def test_drain_is_bounded(work: Path, shim_state: ShimState):
    script(work / "forever.sh", "#!/bin/bash\nsbatch forever.sh >/dev/null\n")
    submit(shim_state, work, "forever.sh")
    result = shim_state.drain(max_jobs=5)
    assert result.returncode == 0
    assert "stopped after 5 jobs" in result.stderr
    assert [j["state"] for j in shim_state.jobs()] == ["COMPLETED"] * 5 + ["PENDING"]


def test_drain_times_out_a_hung_job(work: Path, shim_state: ShimState):
    script(work / "hang.sh", "#!/bin/bash\nsleep 30\n")
    submit(shim_state, work, "hang.sh")
    after = submit(shim_state, work, "exit.sh", "0")
    result = shim_state.drain(job_timeout=0.5, timeout=20)
    assert [j["state"] for j in shim_state.jobs()] == ["TIMEOUT", "COMPLETED"]
    assert f"{after}\tcluster\texit.sh\tCOMPLETED\t0:0" in result.stdout


def test_script_shebang_is_honoured(work: Path, shim_state: ShimState):
    script(work / "py.sh", "#!/usr/bin/env python3\nimport sys\nprint('py', sys.argv[1:])\n")
    job_id = submit(shim_state, work, "py.sh", "x")
    shim_state.drain()
    assert (work / f"slurm-{job_id}.out").read_text() == "py ['x']\n"


# --------------------------------------------------------------------------- arrays and logs


def test_array_tasks_get_their_environment(work: Path, shim_state: ShimState):
    script(work / "task.sh", """#!/bin/bash
env | grep -E '^SLURM_(JOB_ID|ARRAY_[A-Z_]+|JOB_NAME|JOB_PARTITION|CLUSTER_NAME)=' | sort
exit $(( SLURM_ARRAY_TASK_ID == 1 ? 4 : 0 ))
""")
    array_id = submit(shim_state, work, "-a", "0-2%1", "-J", "arr", "-p", "copyq", "task.sh")
    result = shim_state.drain()
    assert result.stdout.splitlines() == [
        f"{array_id}_0\tcluster\tarr\tCOMPLETED\t0:0",
        f"{array_id}_1\tcluster\tarr\tFAILED\t4:0",
        f"{array_id}_2\tcluster\tarr\tCOMPLETED\t0:0",
    ]
    (job,) = shim_state.jobs()
    assert (job["state"], job["array"]["indices"], job["array"]["throttle"]) == (
        "FAILED", [0, 1, 2], 1)
    # as measured: every task but the last gets a fresh job id
    assert [t["id"] for t in job["tasks"]] == [array_id + 1, array_id + 2, array_id]
    log = (work / f"slurm-{array_id}_1.out").read_text()
    assert log.splitlines() == [
        f"SLURM_ARRAY_JOB_ID={array_id}", "SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_ID=1",
        "SLURM_ARRAY_TASK_MAX=2", "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_STEP=1",
        "SLURM_CLUSTER_NAME=cluster", f"SLURM_JOB_ID={array_id + 2}", "SLURM_JOB_NAME=arr",
        "SLURM_JOB_PARTITION=copyq",
    ]
    assert job["logs"] == [str(work / f"slurm-{array_id}_{i}.out") for i in range(3)]


def test_array_lists_and_all_ok(work: Path, shim_state: ShimState):
    array_id = submit(shim_state, work, "--array=1,3,5", "-o", "t-%a.log", "exit.sh", "0")
    shim_state.drain()
    (job,) = shim_state.jobs()
    assert job["state"] == "COMPLETED"
    assert [t["index"] for t in job["tasks"]] == [1, 3, 5]
    assert sorted(p.name for p in work.glob("t-*.log")) == ["t-1.log", "t-3.log", "t-5.log"]
    sacct = shim_state.run("sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", str(array_id))
    assert sacct.stdout == "".join(f"{array_id}_{i}|COMPLETED\n" for i in (1, 3, 5))


def test_output_patterns_and_separate_error(work: Path, shim_state: ShimState):
    (work / "logs").mkdir()
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    job_id = submit(shim_state, work, "-J", "crop", "-o", "logs/%x_%j_%u_%%_%A_%a_%7j.out",
                    "-e", "logs/%x_%j.err", "echo.sh", "z")
    shim_state.drain()
    out = work / "logs" / f"crop_{job_id}_{user}_%_{job_id}_4294967294_000{job_id}.out"
    err = work / "logs" / f"crop_{job_id}.err"
    assert out.read_text() == f"job={job_id} name=crop cluster=cluster\n<z>\n"
    assert err.read_text() == "to-stderr\n"
    assert shim_state.jobs()[0]["logs"] == [str(out), str(err)]


def test_missing_log_directory_fails_the_job(work: Path, shim_state: ShimState):
    job_id = submit(shim_state, work, "-o", "nope/x.out", "exit.sh", "0")
    shim_state.drain()
    job = shim_state.jobs()[0]
    # measured: JobState=FAILED Reason=JobLaunchFailure ExitCode=0:53
    assert (job["state"], job["reason"], job["exit_code"], job["signal"]) == (
        "FAILED", "JobLaunchFailure", 0, 53)
    sacct = shim_state.run("sacct", "-X", "-n", "-P", "-o", "JobID,State,ExitCode")
    assert sacct.stdout == f"{job_id}|FAILED|0:53\n"
    assert not (work / "nope").exists()


def test_chdir_sets_job_cwd_and_log_base(work: Path, shim_state: ShimState):
    (work / "sub").mkdir()
    script(work / "where.sh", "#!/bin/bash\npwd\necho \"submit=${SLURM_SUBMIT_DIR}\"\n")
    job_id = submit(shim_state, work, "-D", "sub", "where.sh")
    shim_state.drain()
    assert (work / "sub" / f"slurm-{job_id}.out").read_text() == (
        f"{work / 'sub'}\nsubmit={work}\n")


# --------------------------------------------------------------------------- exports


ENV_PROBE = """#!/bin/bash
for n in SECRET_A UNSET_B SUBMIT_ONLY LOGIN_ONLY; do echo "$n=${!n-<unset>}"; done
"""


def test_export_names_are_recorded_and_values_kept_out_of_calls(work: Path, shim_state):
    script(work / "probe.sh", ENV_PROBE)
    submit_env = shim_state.env(SECRET_A="s3cr3t-value", SUBMIT_ONLY="submit-value")
    submit_env.pop("UNSET_B", None)
    job_id = submit(shim_state, work, "--export=SECRET_A,UNSET_B", "probe.sh", env=submit_env)
    (call,) = shim_state.sbatch_calls()
    assert call["exports"] == [{"name": "SECRET_A", "set": True},
                               {"name": "UNSET_B", "set": False}]
    assert call["export_mode"] == "LIST"
    job = shim_state.jobs()[0]
    assert job["exports"] == call["exports"]
    drain_env = shim_state.env(LOGIN_ONLY="login-value")  # the login environment
    shim_state.drain(drain_env)
    assert (work / f"slurm-{job_id}.out").read_text() == (
        "SECRET_A=s3cr3t-value\nUNSET_B=<unset>\nSUBMIT_ONLY=<unset>\nLOGIN_ONLY=login-value\n")
    assert "s3cr3t-value" not in shim_state.calls_text()
    assert "s3cr3t-value" not in (shim_state.path / "state.json").read_text()
    stored = shim_state.path / "jobs" / str(job["seq"]) / "environment"
    assert json.loads(stored.read_text()) == {"SECRET_A": "s3cr3t-value"}
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_export_all_and_none(work: Path, shim_state: ShimState):
    script(work / "probe.sh", ENV_PROBE)
    submit_env = shim_state.env(SECRET_A="s3cr3t-value", SUBMIT_ONLY="submit-value")
    all_id = submit(shim_state, work, "probe.sh", env=submit_env)            # default: ALL
    none_id = submit(shim_state, work, "--export=NONE", "probe.sh", env=submit_env)
    assert [c["export_mode"] for c in shim_state.sbatch_calls()] == ["ALL", "NONE"]
    shim_state.drain(shim_state.env(LOGIN_ONLY="login-value"))
    assert (work / f"slurm-{all_id}.out").read_text() == (
        "SECRET_A=s3cr3t-value\nUNSET_B=<unset>\nSUBMIT_ONLY=submit-value\n"
        "LOGIN_ONLY=login-value\n")
    assert (work / f"slurm-{none_id}.out").read_text() == (
        "SECRET_A=<unset>\nUNSET_B=<unset>\nSUBMIT_ONLY=<unset>\nLOGIN_ONLY=login-value\n")
    assert "s3cr3t-value" not in shim_state.calls_text()


# --------------------------------------------------------------------------- partitions


def test_configured_partitions_are_enforced(work: Path, shim_state: ShimState):
    env = shim_state.env(LTSFLOW_SHIM_PARTITIONS="zeus:copyq,magnus:debugq,magnus:workq")
    wrong = sbatch(shim_state, work, "-M", "zeus", "-p", "debugq", "echo.sh", env=env)
    # measured on sbatch 22.05.8
    assert (wrong.returncode, wrong.stderr) == (1, (
        "sbatch: error: invalid partition specified: debugq\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n"))
    nocluster = sbatch(shim_state, work, "-M", "pluto", "echo.sh", env=env)
    assert nocluster.returncode == 1
    assert nocluster.stderr == (
        "sbatch: error: 'pluto' can't be reached now, or it is an invalid entry for --cluster."
        "  Use 'sacctmgr list clusters' to see available clusters.\n")
    assert shim_state.jobs() == []
    submit(shim_state, work, "-M", "magnus", "-p", "workq", "echo.sh", env=env)
    submit(shim_state, work, "-M", "zeus", "echo.sh", env=env)
    assert [(j["cluster"], j["partition"]) for j in shim_state.jobs()] == [
        ("magnus", "workq"), ("zeus", "copyq")]


# --------------------------------------------------------------------------- scancel


def test_scancel_by_id_and_by_name(work: Path, shim_state: ShimState):
    a = submit(shim_state, work, "-J", "keep", "exit.sh", "0")
    b = submit(shim_state, work, "-J", "drop", "exit.sh", "0")
    c = submit(shim_state, work, "-J", "drop", "exit.sh", "0")
    d = submit(shim_state, work, "-J", "other", "-d", f"afterok:{a}", "exit.sh", "0")
    e = submit(shim_state, work, "-J", "notify", "-d", f"afternotok:{d}", "exit.sh", "0")
    by_name = shim_state.run("scancel", "-n", "drop")
    assert (by_name.returncode, by_name.stdout, by_name.stderr) == (0, "", "")
    assert shim_state.run("scancel", str(d)).returncode == 0
    assert shim_state.run("scancel", "999999").returncode == 0  # measured: silent, exit 0
    bad = shim_state.run("scancel", "abc")
    assert (bad.returncode, bad.stderr) == (1, "scancel: error: Invalid job id abc\n")
    assert [c["cancelled"] for c in shim_state.calls("scancel")] == [
        [{"id": str(b), "cluster": "cluster"}, {"id": str(c), "cluster": "cluster"}],
        [{"id": str(d), "cluster": "cluster"}], [], []]
    assert shim_state.run("squeue", "-h", "-o", "%i").stdout == f"{a}\n{e}\n"
    shim_state.drain()
    assert [j["state"] for j in shim_state.jobs()] == [
        "COMPLETED", "CANCELLED", "CANCELLED", "CANCELLED", "COMPLETED"]
    uid = os.getuid()
    sacct = shim_state.run("sacct", "-X", "-n", "-P", "--name", "drop", "-o", "JobID,State")
    assert sacct.stdout == f"{b}|CANCELLED by {uid}\n{c}|CANCELLED by {uid}\n"


def test_scancel_of_a_running_job_stops_it(work: Path, shim_state: ShimState):
    # A job that survived its cancel would sleep far past the deadline (a generous one: a loaded
    # machine must not fail this), which fails the test; a cancelled one ends at once.
    script(work / "self.sh", "#!/bin/bash\nscancel \"$SLURM_JOB_ID\"\nsleep 300\necho survived\n")
    job_id = submit(shim_state, work, "self.sh")
    result = shim_state.drain(timeout=120)
    assert result.stdout == f"{job_id}\tcluster\tself.sh\tCANCELLED\t0:15\n"
    assert "survived" not in (work / f"slurm-{job_id}.out").read_text()


def test_scancel_respects_clusters_without_federation(work: Path, shim_state: ShimState):
    env = shim_state.env(LTSFLOW_SHIM_FEDERATED="0")
    sbatch(shim_state, work, "-M", "zeus", "echo.sh", env=env)
    sbatch(shim_state, work, "-M", "magnus", "echo.sh", env=env)
    shim_state.run("scancel", "-M", "magnus", "1001", env=env)
    assert [(j["cluster"], j["state"]) for j in shim_state.jobs()] == [
        ("zeus", "PENDING"), ("magnus", "CANCELLED")]


# --------------------------------------------------------------------------- squeue / sacct


def test_squeue_default_format_is_byte_exact(work: Path, shim_state: ShimState):
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    a = submit(shim_state, work, "-p", "copyq", "-J", "a-very-long-name", "exit.sh", "0")
    b = submit(shim_state, work, "-d", f"afterok:{a}", "exit.sh", "0")
    listing = shim_state.run("squeue").stdout
    header = ("             JOBID PARTITION     NAME     USER ST       TIME  NODES "
              "NODELIST(REASON)")  # measured
    row = "{:>18} {:>9} {:>8} {:>8} {:>2} {:>10} {:>6} {}"
    assert listing.splitlines() == [
        header,
        row.format(a, "copyq", "a-very-l", user[:8], "PD", "0:00", "1", "(None)"),
        row.format(b, "debug", "exit.sh", user[:8], "PD", "0:00", "1", "(Dependency)"),
    ]
    missing = shim_state.run("squeue", "-j", "424242")
    assert (missing.returncode, missing.stderr) == (
        1, "slurm_load_jobs error: Invalid job id specified\n")  # measured


def test_squeue_and_sacct_agree_with_the_state(work: Path, shim_state: ShimState):
    env = shim_state.env()
    z = submit(shim_state, work, "-M", "zeus", "-p", "copyq", "-J", "sync", "exit.sh", "0")
    m = submit(shim_state, work, "-M", "magnus", "-J", "crop", "-d", f"afterok:{z}",
               "exit.sh", "2")
    last = submit(shim_state, work, "-M", "zeus", "-J", "back", "-d", f"afterok:{m}",
                  "exit.sh", "0")
    shim_state.drain(env, max_jobs=1)
    squeue = shim_state.run("squeue", "-M", "all", "-h", "-o", "%i|%j|%T|%P|%r").stdout
    assert squeue == ("CLUSTER: cluster\n\n"  # the local cluster is always there
                      f"CLUSTER: magnus\n{m}|crop|PENDING|debug|None\n\n"
                      f"CLUSTER: zeus\n{last}|back|PENDING|debug|Dependency\n")
    shim_state.drain(env)
    sacct = shim_state.run("sacct", "-M", "all", "-P", "-X",
                           "-o", "JobID,JobName,State,ExitCode,Cluster,Partition").stdout
    assert sacct == ("JobID|JobName|State|ExitCode|Cluster|Partition\n"
                     f"{z}|sync|COMPLETED|0:0|zeus|copyq\n"
                     f"{m}|crop|FAILED|2:0|magnus|debug\n"
                     f"{last}|back|PENDING|0:0|zeus|debug\n")
    assert [j["state"] for j in shim_state.jobs()] == ["COMPLETED", "FAILED", "PENDING"]
    local = shim_state.run("sacct", "-P", "-X", "-n", "-o", "JobID").stdout
    assert local == ""  # without -M: only the default cluster ("cluster")
    per_cluster = shim_state.run("sacct", "-M", "zeus", "-n", "-P", "-o", "JobID,State").stdout
    assert per_cluster == f"{z}|COMPLETED\n{z}.batch|COMPLETED\n{last}|PENDING\n"


def test_sacct_fixed_width_layout(work: Path, shim_state: ShimState):
    a = submit(shim_state, work, "-J", "averyveryverylongname", "exit.sh", "0")
    shim_state.drain()
    text = shim_state.run("sacct", "-j", str(a)).stdout
    assert text.splitlines() == [
        "JobID           JobName  Partition    Account  AllocCPUS      State ExitCode ",
        "------------ ---------- ---------- ---------- ---------- ---------- -------- ",
        f"{a:<12} averyvery+      debug                     1  COMPLETED      0:0 ",
        f"{str(a) + '.batch':<12}      batch                                1  COMPLETED      0:0 ",
    ]
    bad = shim_state.run("sacct", "-o", "JobID,Bogus")
    assert (bad.returncode, bad.stderr) == (1, 'sacct: error: Invalid field requested: "Bogus"\n')


# --------------------------------------------------------------------------- calls.jsonl


def test_every_call_is_recorded_with_exact_argv_and_cwd(work: Path, shim_state: ShimState):
    submit(shim_state, work, "-J", "x y", "echo.sh", "  spaced  ")
    shim_state.run("squeue", "-h", cwd=work)
    shim_state.run("sacct", "-n", cwd=work)
    shim_state.run("scancel", "-n", "x y", cwd=work)
    shim_state.run("module", "load", "singularity/4.1", cwd=work)
    shim_state.run("singularity", "exec", "docker://busybox", "true", cwd=work)
    shim_state.drain(cwd=work)
    records = [(c["tool"], c["argv"], c["cwd"]) for c in shim_state.calls()]
    assert records == [
        ("sbatch", ["--parsable", "-J", "x y", "echo.sh", "  spaced  "], str(work)),
        ("squeue", ["-h"], str(work)),
        ("sacct", ["-n"], str(work)),
        ("scancel", ["-n", "x y"], str(work)),
        ("module", ["load", "singularity/4.1"], str(work)),
        ("singularity", ["exec", "docker://busybox", "true"], str(work)),
        ("drain", [], str(work)),
    ]


def test_module_prints_nothing(work: Path, shim_state: ShimState):
    result = shim_state.run("module", "load", "rclone")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert shim_state.calls("module")[0]["argv"] == ["load", "rclone"]


def test_concurrent_submissions_get_distinct_ids(work: Path, shim_state: ShimState):
    env = shim_state.env()
    results: list[str] = []

    def one() -> None:
        results.append(sbatch(shim_state, work, "--parsable", "echo.sh", env=env).stdout.strip())

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(r) for r in results) == list(range(1001, 1009))
    assert len(shim_state.sbatch_calls()) == 8
    assert sorted(j["id"] for j in shim_state.jobs()) == list(range(1001, 1009))


# --------------------------------------------------------------------------- containers


@pytest.mark.parametrize("tool", ["singularity", "apptainer"])
def test_container_runs_the_host_tool_exactly(work: Path, shim_state: ShimState, tool: str):
    result = shim_state.run(tool, "run", "-B", f"{work}:{work}", f"--bind={work}", "--cleanenv",
                            "-e", "docker://curtinfop/wcstools", "printf", "<%s>", "a  b",
                            "$(id)", "", cwd=work)
    assert (result.returncode, result.stdout, result.stderr) == (0, "<a  b><$(id)><>", "")
    (call,) = shim_state.calls(tool)
    assert (call["subcommand"], call["image"], call["command"]) == (
        "run", "docker://curtinfop/wcstools", ["printf", "<%s>", "a  b", "$(id)", ""])
    piped = shim_state.run(tool, "exec", "docker://x/y", "sh", "-c", "cat; exit 7",
                           cwd=work, input="through stdin\n")
    assert (piped.returncode, piped.stdout) == (7, "through stdin\n")


def test_container_hides_the_shims_and_keeps_cwd(work: Path, shim_state: ShimState):
    (work / "img.sif").write_bytes(b"")
    result = shim_state.run("singularity", "exec", "img.sif", "sh", "-c",
                            'pwd; command -v sbatch || echo "no sbatch"', cwd=work)
    lines = result.stdout.splitlines()
    assert lines[0] == str(work)
    assert lines[1] != str(SHIMS_DIR / "sbatch")
    pwd = shim_state.run("singularity", "exec", "--pwd", "/", "img.sif", "pwd", cwd=work)
    assert pwd.stdout == "/\n"
    missing = shim_state.run("singularity", "exec", "nothere.sif", "true", cwd=work)
    assert missing.returncode == 255
    assert missing.stderr.startswith(f"FATAL:   could not open image {work / 'nothere.sif'}")


def test_container_cleanenv_and_injected_variables(work: Path, shim_state: ShimState):
    env = shim_state.env(SECRET_A="hidden", SINGULARITYENV_INSIDE="yes")
    probe = ["sh", "-c", 'echo "${SECRET_A-unset} ${INSIDE-unset}"']
    plain = shim_state.run("singularity", "exec", "docker://x/y", *probe, env=env)
    clean = shim_state.run("singularity", "exec", "--cleanenv", "docker://x/y", *probe, env=env)
    assert (plain.stdout, clean.stdout) == ("hidden yes\n", "unset yes\n")


def test_missing_tool_in_container(work: Path, shim_state: ShimState):
    env = shim_state.env(LTSFLOW_SHIM_MISSING="sky2xy,astcrop")
    result = shim_state.run("singularity", "run", "docker://curtinfop/wcstools", "sky2xy",
                            "img.fits", "0.1", "0.25", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (
        255, "", 'FATAL:   "sky2xy": executable file not found in $PATH\n')
    assert shim_state.calls("singularity")[0]["missing"] is True
    ok = shim_state.run("singularity", "run", "docker://x/y", "true", env=env)
    assert ok.returncode == 0


@pytest.mark.parametrize("tool", ["singularity", "apptainer"])
def test_container_sees_only_bound_directories_and_its_default_binds(work: Path, shim_state: ShimState,
                                                                      tmp_path: Path, tool: str):
    data = tmp_path / "scratch" / "images"
    data.mkdir(parents=True)
    (data / "frame.fits").write_text("pixels\n")
    (work / "image.fits").symlink_to(data / "frame.fits")
    site = shim_state.env(LTSFLOW_SHIM_NO_MOUNT="tmp")  # the tests' scratch is under /tmp: as /scratch

    def run(*args: str, env=site):
        return shim_state.run(tool, "run", *args, cwd=work, env=env)

    for argument in (str(data / "frame.fits"), "image.fits", f"--in={data}/frame.fits", f"@{data}/frame.fits"):
        refused = run("docker://x/y", "cat", argument)
        assert (refused.returncode, refused.stdout) == (1, ""), argument
        assert refused.stderr.startswith(f"cat: {argument}: No such file or directory (not under a directory bound")
        assert shim_state.calls(tool)[-1]["unseen"] == [argument]
    seen = run("--bind", str(tmp_path / "scratch"), "docker://x/y", "cat", "image.fits", str(data / "frame.fits"))
    assert (seen.returncode, seen.stdout) == (0, "pixels\npixels\n"), seen.stderr
    assert run("-B", f"{data},{work}", "docker://x/y", "cat", "image.fits").returncode == 0
    assert run("docker://x/y", "cat", "image.fits", env=site | {f"{tool.upper()}_BIND": str(data)}).returncode == 0
    # The working directory, $HOME and (by default) /tmp are bound; the image has its own /usr, /etc ...
    assert run("docker://x/y", "ls", "-d", ".", "/etc", "/usr/bin").returncode == 0
    assert shim_state.run(tool, "run", "docker://x/y", "cat", "image.fits", cwd=work).returncode == 0
    contained = shim_state.run(tool, "run", "--no-mount", "cwd", "docker://x/y", "cat", "image.fits", cwd=work,
                               env=site | {"HOME": str(tmp_path)})
    assert contained.returncode == 0  # $HOME holds it
    assert run("--containall", "docker://x/y", "cat", "image.fits", env=site | {"HOME": str(tmp_path)}).returncode == 1
    # A bind that cannot be made fails before the tool runs, as the runtime does.
    gone = run("--bind", str(tmp_path / "nowhere"), "docker://x/y", "true")
    assert (gone.returncode, gone.stderr.startswith("FATAL:   container creation failed: mount ")) == (255, True)
    elsewhere = run("--bind", f"{data}:/data", "docker://x/y", "true")
    assert (elsewhere.returncode, "at its own path only" in elsewhere.stderr) == (255, True)


# --------------------------------------------------------------------------- rclone


def test_rclone_records_its_argv_and_runs_the_real_one_exactly(work: Path, shim_state: ShimState):
    real = work / "real"
    real.mkdir()
    script(real / "rclone", '#!/bin/bash\nfor a in "$@"; do printf "<%s>\\n" "$a"; done\necho err >&2\nexit 3\n')
    env = shim_state.env()
    shims_and_python = env["PATH"].split(os.pathsep)[:2]  # the shims, then the python3 they run with
    env["PATH"] = os.pathsep.join([*shims_and_python, str(real)])
    result = shim_state.run("rclone", "copy", "--files-from-raw", "a list", "--", "x:", "$(id)", env=env, cwd=work)
    assert (result.returncode, result.stdout, result.stderr) == (3, "<copy>\n<--files-from-raw>\n<a list>\n<-->\n"
                                                                   "<x:>\n<$(id)>\n", "err\n")
    (call,) = shim_state.calls("rclone")
    assert (call["argv"], call["cwd"], call["executable"]) == (
        ["copy", "--files-from-raw", "a list", "--", "x:", "$(id)"], str(work), str(real / "rclone"))
    env["PATH"] = os.pathsep.join(shims_and_python)
    missing = shim_state.run("rclone", "version", env=env, cwd=work)
    assert (missing.returncode, missing.stderr) == (127, "rclone: command not found\n")
