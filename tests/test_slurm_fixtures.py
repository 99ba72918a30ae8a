"""The Slurm facts ltsflow's generated scripts rely on, proved against real daemons.

Uses the session fixtures of tests/plugins/slurm.py (real slurmctld/slurmd/slurmdbd
on 127.0.0.1).  Every job writes its evidence (timestamps, environment) to files
under the test's own tmp_path.  A job that must still be running while the test
looks at the others waits at a gate the test opens (``stamp_job(gate=True)``,
``open_gate``), never for a time; the tests assert orders, never durations (the
bench, tests/bench/, measures those).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.waiting import wait_until
from tests.slurmlib import (
    FINAL_STATES,
    SlurmError,
    SlurmSetup,
    job_id,
    parse_job_ref,
    processes_under,
    read_timestamps,
)

pytestmark = pytest.mark.slurm


GATE_SECONDS = 120
"""How long a gated job waits for its gate before it gives up (exit 99): a test that never opens it."""


def stamp_job(out: Path, name: str, *, gate: bool = False, exit_code: int = 0) -> list[str]:
    """sbatch arguments for a job that appends "NAME_start T" / "NAME_end T" (epoch
    seconds) to OUT/NAME.t, then exits with exit_code. With `gate`, it waits between the
    two until OUT/NAME.go exists (open_gate), polling; after GATE_SECONDS it exits 99."""
    f = shlex.quote(str(out / f"{name}.t"))
    body = f'echo "{name}_start $(date +%s.%N)" >> {f}; '
    if gate:
        go = shlex.quote(str(out / f"{name}.go"))
        body += (f"for _ in $(seq {GATE_SECONDS * 10}); do [ -e {go} ] && break; sleep 0.1; done; "
                 f"[ -e {go} ] || exit 99; ")
    body += f'echo "{name}_end $(date +%s.%N)" >> {f}; exit {exit_code}'
    return ["-J", name, "-o", str(out / f"{name}-%j.out"), "--wrap", body]


def open_gate(out: Path, name: str) -> None:
    """Let the gated job NAME (stamp_job(gate=True)) go on."""
    (out / f"{name}.go").touch()


def scheduler_cycles(s: SlurmSetup) -> int:
    """How many cycles slurmctld's main scheduler has run (sdiag: "Main schedule statistics")."""
    main = s.run("sdiag").stdout.split("Main schedule statistics", 1)[1]
    return int(re.search(r"Total cycles:\s+(\d+)", main).group(1))


def stamps(out: Path, *names: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for n in names:
        result.update(read_timestamps(out / f"{n}.t"))
    return result


# ---------------------------------------------------------------------------- single cluster


def test_single_cluster_setup(slurm_single: SlurmSetup):
    s = slurm_single
    assert s.clusters == ("magnus",)
    conf = s.conf_for("magnus")
    assert conf == Path(s.env["SLURM_CONF"]) and conf.is_relative_to(s.dir)
    text = conf.read_text()
    assert "/etc/" not in text
    assert re.search(r"^SlurmctldHost=localhost$", text, re.M)
    # partitions the generated scripts use
    parts = s.run("sinfo", "-h", "-o", "%P %a").stdout.split("\n")
    assert {"debugq* up", "copyq up"} <= set(parts)
    # kill_invalid_depend is NOT a global default here: the scripts must pass the flag
    config = s.run("scontrol", "show", "config").stdout
    dep = re.search(r"^DependencyParameters\s*=\s*(.*)$", config, re.M)
    assert dep is None or "kill_invalid_depend" not in dep.group(1)
    # without -M, --parsable prints the bare id
    jid = s.sbatch("-o", "/dev/null", "--wrap", "true")
    assert re.fullmatch(r"\d+", jid)
    assert s.wait_for_jobs(jid, timeout=30) == {jid: "COMPLETED"}
    # every recorded daemon is running
    assert {Path(n).name for n in s.alive()} >= {"munged.pid", "slurmctld.pid", "slurmd.pid"}


def test_single_afterok_chain_runs_in_order(slurm_single: SlurmSetup, tmp_path: Path):
    s = slurm_single
    a = s.sbatch(*stamp_job(tmp_path, "a", gate=True))
    b = s.sbatch("--kill-on-invalid-dep=yes", f"--dependency=afterok:{a}", "-p", "copyq", *stamp_job(tmp_path, "b"))
    c = s.sbatch("--kill-on-invalid-dep=yes", f"--dependency=afterok:{b}", *stamp_job(tmp_path, "c"))
    # while a runs (held at its gate), b and c wait on their dependency
    s.wait_for_jobs(a, states={"RUNNING"}, timeout=30)
    for job in (b, c):
        info = s.job_info(job)
        assert info["JobState"] == "PENDING" and info["Reason"] == "Dependency", info
    open_gate(tmp_path, "a")
    assert s.wait_for_jobs(a, b, c, timeout=60) == {a: "COMPLETED", b: "COMPLETED", c: "COMPLETED"}
    t = stamps(tmp_path, "a", "b", "c")
    assert t["a_end"] <= t["b_start"] and t["b_end"] <= t["c_start"], t


def test_single_kill_on_invalid_dep_decides_fate_of_dependants(slurm_single: SlurmSetup, tmp_path: Path):
    s = slurm_single
    parent = s.sbatch(*stamp_job(tmp_path, "parent", gate=True, exit_code=3))
    killed = s.sbatch("--kill-on-invalid-dep=yes", f"--dependency=afterok:{parent}", *stamp_job(tmp_path, "killed"))
    stuck = s.sbatch(f"--dependency=afterok:{parent}", *stamp_job(tmp_path, "stuck"))
    open_gate(tmp_path, "parent")  # it fails only once both dependants wait for it
    assert s.wait_for_jobs(parent, killed, timeout=60) == {parent: "FAILED", killed: "CANCELLED"}
    assert s.job_info(parent)["ExitCode"] == "3:0"
    # without the flag the dependant stays PENDING for ever, reason DependencyNeverSatisfied
    info = wait_until(
        lambda: (i := s.job_info(stuck)).get("Reason") == "DependencyNeverSatisfied" and i,
        "DependencyNeverSatisfied",
        timeout=15,
        poll=0.2,
    )
    assert info["JobState"] == "PENDING"
    # three scheduling passes later (sched_interval=1: one a second): still there, still pending
    cycles = scheduler_cycles(s)
    wait_until(lambda: scheduler_cycles(s) >= cycles + 3, "three more scheduler cycles", 30, 0.2)
    assert s.job_states(stuck) == {stuck: "PENDING"}
    assert not (tmp_path / "killed.t").exists() and not (tmp_path / "stuck.t").exists()
    s.cancel(stuck)
    assert s.wait_for_jobs(stuck, timeout=30) == {stuck: "CANCELLED"}


def test_export_named_variable_but_login_path(slurm_single: SlurmSetup, tmp_path: Path):
    """What a job sees with ``sbatch --export=NAME[,NAME...]`` (observed, Slurm 22.05.8):

    * each NAME with the submitting shell's value, byte for byte;
    * no other variable of the submitting shell: PATH, and anything prepended to it
      (a shim directory), is NOT passed; neither is e.g. AWS_CA_BUNDLE;
    * the user's *login* environment instead: sbatch sets SLURM_GET_USER_ENV=1 and
      slurmd runs ``su - USER`` to get it, so PATH (as root here) is exactly what
      ``su - root -c 'echo $PATH'`` prints, plus HOME, USER, SHELL, LOGNAME, MAIL...;
    * SLURM_* variables, including SLURM_EXPORT_ENV=the list and SLURM_CONF pointing
      at the cluster's configuration (so sbatch inside a job reaches the same cluster);
    * the working directory is sbatch's (PWD = SLURM_SUBMIT_DIR).
    With the default --export=ALL the job gets the submitting shell's PATH (shim
    included) and everything else.  (--export=NONE: the same as NAME minus NAME.)"""
    s = slurm_single
    shim = tmp_path / "shim"
    shim.mkdir()
    sub_path = f"{shim}:{os.environ['PATH']}"
    value = "a value with spaces, $dollar and 'quotes'"
    dump = 'env -0 > "$OUT"'
    env = {"PATH": sub_path, "LTSF_NAME": value, "LTSF_OTHER": "not exported"}
    named = s.sbatch(
        "--export=LTSF_NAME,OUT", "-o", "/dev/null", "--wrap", dump, env={**env, "OUT": str(tmp_path / "named.env")}
    )
    everything = s.sbatch("-o", "/dev/null", "--wrap", dump, env={**env, "OUT": str(tmp_path / "all.env")})
    assert s.wait_for_jobs(named, everything, timeout=30) == {named: "COMPLETED", everything: "COMPLETED"}

    def read_env(p: Path) -> dict[str, str]:
        return dict(kv.split("=", 1) for kv in p.read_text().split("\0") if "=" in kv)

    job = read_env(tmp_path / "named.env")
    assert job["LTSF_NAME"] == value
    assert "LTSF_OTHER" not in job
    assert job["SLURM_EXPORT_ENV"] == "LTSF_NAME,OUT" and job["SLURM_GET_USER_ENV"] == "1"
    assert str(shim) not in job["PATH"].split(":")
    assert job["PATH"] != sub_path
    assert job["SLURM_CONF"] == str(s.conf_for("magnus"))
    assert job["PWD"] == job["SLURM_SUBMIT_DIR"] == str(s.workdir)
    if os.geteuid() == 0:
        # slurmd builds the environment from a login shell of the user (su - USER)
        login = subprocess.run(
            ["su", "-", "root", "-c", 'printf %s "$PATH"'], capture_output=True, text=True, check=True
        ).stdout
        assert job["PATH"] == login
        assert job["HOME"] == "/root" and job["USER"] == "root"
    # the default (--export=ALL) passes the submitting shell's PATH, shim included
    job_all = read_env(tmp_path / "all.env")
    assert job_all["PATH"] == sub_path and job_all["LTSF_OTHER"] == "not exported"


# ---------------------------------------------------------------------------- federation


def test_federation_cross_cluster_afterok_waits(slurm_federation: SlurmSetup, tmp_path: Path):
    s = slurm_federation
    assert s.clusters == ("zeus", "magnus")
    fed = s.run("scontrol", "show", "federation").stdout
    assert "Federation: fed1" in fed and "Synced:Yes" in fed, fed
    up = s.sbatch(*stamp_job(tmp_path, "up", gate=True), cluster="zeus")
    assert re.fullmatch(r"\d+;zeus", up), up
    down = s.sbatch(
        "--kill-on-invalid-dep=yes", f"--dependency=afterok:{job_id(up)}", *stamp_job(tmp_path, "down"), cluster="magnus"
    )
    assert re.fullmatch(r"\d+;magnus", down), down
    # a failed zeus parent cancels its magnus dependant (--kill-on-invalid-dep=yes)
    bad = s.sbatch(*stamp_job(tmp_path, "bad", exit_code=1), cluster="zeus")
    orphan = s.sbatch(
        "--kill-on-invalid-dep=yes", f"--dependency=afterok:{job_id(bad)}", *stamp_job(tmp_path, "orphan"), cluster="magnus"
    )
    stuck = s.sbatch(f"--dependency=afterok:{job_id(bad)}", *stamp_job(tmp_path, "stuck"), cluster="magnus")
    s.wait_for_jobs(up, states={"RUNNING"}, timeout=30)
    info = s.job_info(down)
    assert info["JobState"] == "PENDING" and info["Reason"] == "Dependency", info
    open_gate(tmp_path, "up")
    states = s.wait_for_jobs(up, down, bad, orphan, timeout=60)
    assert states == {up: "COMPLETED", down: "COMPLETED", bad: "FAILED", orphan: "CANCELLED"}
    t = stamps(tmp_path, "up", "down")
    assert t["down_start"] >= t["up_end"], t
    assert not (tmp_path / "orphan.t").exists()
    # ... and without the flag the remote dependant is left pending for ever
    info = wait_until(
        lambda: (i := s.job_info(stuck)).get("Reason") == "DependencyNeverSatisfied" and i, "DependencyNeverSatisfied", 15, 0.2
    )
    assert info["JobState"] == "PENDING"
    s.cancel(stuck)
    assert s.wait_for_jobs(stuck, timeout=30) == {stuck: "CANCELLED"}
    assert not (tmp_path / "stuck.t").exists()
    # accounting shows which cluster each job ran on, with -M all and -M zeus,magnus
    ids = [job_id(j) for j in (up, down)]
    s.wait_for_accounting(up, down)
    for clusters in ("all", "zeus,magnus"):
        out = s.run("sacct", "-M", clusters, "-X", "-n", "-P", "-o", "JobID,Cluster,State", "-j", ",".join(ids)).stdout
        rows = {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines()}
        assert rows == {ids[0]: ["zeus", "COMPLETED"], ids[1]: ["magnus", "COMPLETED"]}, out


# ---------------------------------------------------------------------------- no federation


def test_multicluster_parsable_prints_id_and_cluster(slurm_multicluster: SlurmSetup):
    s = slurm_multicluster
    z = s.run("sbatch", "--parsable", "-M", "zeus", "-o", "/dev/null", "--wrap", "true").stdout
    m = s.run("sbatch", "--parsable", "-M", "magnus", "-o", "/dev/null", "--wrap", "true").stdout
    assert re.fullmatch(r"\d+;zeus\n", z) and re.fullmatch(r"\d+;magnus\n", m), (z, m)
    plain = s.run("sbatch", "-M", "zeus", "-o", "/dev/null", "--wrap", "true").stdout
    assert re.fullmatch(r"Submitted batch job \d+ on cluster zeus\n", plain), plain
    z, m, p = z.strip(), m.strip(), f"{plain.split()[3]};zeus"
    assert s.wait_for_jobs(z, m, p, timeout=30) == {z: "COMPLETED", m: "COMPLETED", p: "COMPLETED"}
    # not federated: ids are the clusters' own counters (no 67108864*k offsets)
    assert int(job_id(z)) < 67108864 and int(job_id(m)) < 67108864


def test_multicluster_cross_cluster_afterok_does_not_wait(slurm_multicluster: SlurmSetup, tmp_path: Path):
    """The hazard: without a federation, magnus does not know zeus's job id, accepts
    afterok on it and treats it as satisfied, so the dependant starts at once."""
    s = slurm_multicluster
    assert "fed1" not in s.run("sacctmgr", "-n", "-P", "show", "federation").stdout
    up = s.sbatch(*stamp_job(tmp_path, "up", gate=True), cluster="zeus")
    wait_until(lambda: (tmp_path / "up.t").exists(), "the zeus job to start", 20, 0.2)
    down = s.sbatch(
        "--kill-on-invalid-dep=yes", f"--dependency=afterok:{job_id(up)}", *stamp_job(tmp_path, "down"), cluster="magnus"
    )
    # the dependant runs to its end while its "parent" is still held at its gate
    assert s.wait_for_jobs(down, timeout=60) == {down: "COMPLETED"}
    assert s.job_states(up) == {up: "RUNNING"}
    open_gate(tmp_path, "up")
    assert s.wait_for_jobs(up, timeout=60) == {up: "COMPLETED"}
    t = stamps(tmp_path, "up", "down")
    assert t["up_start"] < t["down_start"] < t["down_end"] < t["up_end"], t
    recs = {r["JobIDRaw"]: r["Cluster"] for r in s.wait_for_accounting(up, down)}
    assert recs == {job_id(up): "zeus", job_id(down): "magnus"}


# ---------------------------------------------------------------------------- the fixtures themselves


def test_stop_leaves_no_process(slurm_base_dir: Path):
    """stop() kills only the recorded daemons and the job steps they left; none survives."""
    setup = SlurmSetup.start("single", slurm_base_dir / "t")
    try:
        job = setup.sbatch("-o", "/dev/null", "--wrap", "sleep 300")
        setup.wait_for_jobs(job, states={"RUNNING"}, timeout=30)
        daemons = dict(setup.pids)
        assert sorted(Path(n).name for n in setup.alive()) == ["munged.pid", "slurmctld.pid", "slurmd.pid"]
        # the job's own processes (batch script, sleep) as slurmd tracks them: until the step has
        # registered them, listpids fails or lists only -1
        def job_processes() -> list[int]:
            listed = setup.run("scontrol", "listpids", job_id(job), check=False).stdout.splitlines()[1:]
            pids = [int(line.split()[0]) for line in listed if line.split() and line.split()[0].isdigit()]
            return pids if len(pids) >= 2 else []  # the script and its sleep

        job_pids = wait_until(job_processes, "scontrol listpids to list the script and its sleep", 30, 0.2)
    finally:
        setup.stop()
    assert setup.alive() == {}
    dead = lambda pid: not Path(f"/proc/{pid}").exists() or " Z " in Path(f"/proc/{pid}/stat").read_text()  # noqa: E731
    assert all(dead(pid) for pid in daemons.values()), daemons
    assert all(dead(pid) for pid in job_pids), job_pids
    assert processes_under(setup.dir) == {}


def test_failed_start_is_an_error_with_log_tails(slurm_base_dir: Path, monkeypatch):
    """A setup that cannot start raises SlurmError carrying the daemons' own words,
    and leaves nothing running (here: a configuration slurmctld refuses)."""
    monkeypatch.setenv("EXTRA_SLURM_CONF", "SchedulerParameters=")  # a fatal parse error
    with pytest.raises(SlurmError) as err:
        SlurmSetup.start("single", slurm_base_dir / "bad")
    msg = str(err.value)
    assert "Parse error" in msg and "SchedulerParameters=" in msg, msg
    assert "munged.log" in msg  # the log tails
    munged = slurm_base_dir / "bad" / "munge" / "munged.pid"
    assert not munged.exists()  # stop_cluster.sh stopped munged and removed its pid file
    assert processes_under(slurm_base_dir / "bad") == {}


def test_job_refs():
    assert parse_job_ref("12;zeus") == ("12", "zeus")
    assert parse_job_ref(12) == ("12", None)
    assert job_id("67108865;magnus") == "67108865"
    assert "COMPLETED" in FINAL_STATES and "PENDING" not in FINAL_STATES
