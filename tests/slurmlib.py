"""Real Slurm 22.05 daemons on loopback for the tests: start, drive, inspect, stop.

The daemons are started by the shell scripts in ``tests/slurm/`` (adapted from the
recipes tried on this kind of machine); this module wraps them:

    setup = SlurmSetup.start("single", Path("/tmp/x/s"))       # or "federated" / "plain"
    job = setup.sbatch("--wrap", "true")                        # "12" (or "12;zeus" with -M)
    setup.wait_for_jobs(job, timeout=30)                        # {"12": "COMPLETED"}
    setup.stop()                                                # raises if a daemon survives

Kinds:
  single     one cluster ``magnus`` (munged + slurmctld + slurmd), no accounting
             database: job states come from ``scontrol`` (MinJobAge=3600) and the
             jobcomp file.
  federated  clusters ``zeus`` and ``magnus`` with MariaDB + slurmdbd, in federation
             ``fed1``: cross-cluster dependencies work, job ids are federation ids.
  plain      the same daemons, both clusters registered in slurmdbd, NO federation.

Every kind has partitions ``debugq`` (default) and ``copyq``, and none sets
``DependencyParameters=kill_invalid_depend``: a dependant of a failed job is
cancelled only if it was submitted with ``--kill-on-invalid-dep=yes``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

SCRIPTS = Path(__file__).resolve().parent / "slurm"
KINDS = ("single", "federated", "plain")

#: Job states after which nothing more happens to a job.
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)

# Variables of the calling environment that would change what the Slurm clients do
# (e.g. SLURM_CLUSTERS is a default for -M, SBATCH_* are defaults for options).
_CLIENT_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SACCT_", "SINFO_", "SCONTROL_")


class SlurmError(RuntimeError):
    """A Slurm setup failed to start or to stop, or a client command failed."""


class SlurmTimeout(AssertionError):
    """Jobs did not reach the wanted states in time (a test failure, not an error)."""


def parse_job_ref(job: object) -> tuple[str, str | None]:
    """``"12"``, ``12``, ``"12;zeus"`` (sbatch --parsable) or ``("12", "zeus")`` -> (id, cluster)."""
    if isinstance(job, tuple):
        jid, cluster = job
        return str(jid), cluster
    text = str(job).strip()
    if ";" in text:
        jid, cluster = text.split(";", 1)
        return jid, cluster or None
    return text, None


def job_id(job: object) -> str:
    """The numeric id of a job reference (``"12;zeus"`` -> ``"12"``)."""
    return parse_job_ref(job)[0]


def _pid_alive(pid: int) -> bool:
    """True for a running process; False for none or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def processes_under(directory: Path | str) -> dict[int, str]:
    """Running processes (no zombies, not this one) whose command line names a path
    in ``directory`` or that hold a file in it open: {pid: command name}.  For a
    directory of a Slurm setup these are its daemons and job steps, nothing else."""
    d = str(Path(directory).resolve())
    ours = {os.getpid(), os.getppid()}
    found: dict[int, str] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) in ours:
            continue
        pid = int(p.name)
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        hit = f"{d}/" in cmd or cmd.rstrip().endswith(d)
        if not hit:
            try:
                for fd in (p / "fd").iterdir():
                    try:
                        if os.readlink(fd).startswith(f"{d}/"):
                            hit = True
                            break
                    except OSError:
                        continue
            except OSError:
                pass
        if hit and _pid_alive(pid):
            found[pid] = _comm(pid)
    return found


def terminate(pids: Mapping[int, str], grace: float = 5) -> dict[int, str]:
    """TERM the given {pid: command name} (only while /proc/PID/comm still matches),
    KILL what is left after ``grace`` seconds; return those that survived even that."""
    def still(pid: int, comm: str) -> bool:
        return _pid_alive(pid) and _comm(pid) == comm

    for sig, wait in ((15, grace), (9, 2.0)):
        for pid, comm in pids.items():
            if still(pid, comm):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(still(p, c) for p, c in pids.items()):
            time.sleep(0.05)
    return {p: c for p, c in pids.items() if still(p, c)}


def _parse_exports(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
        elif words:
            raise SlurmError(f"unexpected line on the start script's stdout: {line!r}")
    return env


def _parse_scontrol_one_line(line: str) -> dict[str, str]:
    """``scontrol -o show job`` output -> {field: value}; values may contain spaces
    only in a few fields (Command, WorkDir...) we do not rely on."""
    fields: dict[str, str] = {}
    for m in re.finditer(r"(\S+?)=(\S*)", line):
        fields.setdefault(m.group(1), m.group(2))
    return fields


class SlurmSetup:
    """One running Slurm setup (a single cluster, or zeus+magnus) inside ``dir``."""

    def __init__(self, kind: str, directory: Path, env: Mapping[str, str], startup_seconds: float):
        self.kind = kind
        self.dir = Path(directory)
        #: What Slurm clients need besides the ordinary environment: SLURM_CONF (the
        #: first cluster's configuration) and SLURM_CONF_<cluster> for each cluster.
        self.env: dict[str, str] = {k: v for k, v in env.items() if k.startswith("SLURM_CONF")}
        self.clusters: tuple[str, ...] = tuple(env["LTSFLOW_SLURM_CLUSTERS"].split())
        self.federated = kind == "federated"
        self.accounting = kind != "single"
        self.startup_seconds = startup_seconds
        self.stop_seconds: float | None = None
        #: the start and stop scripts' stderr (step timings, VERBOSE=1)
        self.start_log = ""
        self.stop_log = ""
        self.workdir = self.dir / "work"
        self.workdir.mkdir(parents=True, exist_ok=True)
        #: {pid file relative to dir: pid} of every daemon, read right after start,
        #: and {pid file: command name} of the same (what /proc/PID/comm said then)
        self.daemon_names: dict[str, str] = {}
        self.pids = self._recorded_pids()
        self.stopped = False

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(cls, kind: str, directory: Path | str, *, timeout: float = 180) -> "SlurmSetup":
        """Start a setup of ``kind`` in ``directory`` (created; keep its path short:
        the munge socket lives in it).  Raises SlurmError, with the daemons' log
        tails, if it does not come up; whatever was started is stopped again."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        directory = Path(directory)
        if kind == "single":
            cmd = [str(SCRIPTS / "start_cluster.sh"), str(directory), "magnus"]
        else:
            cmd = [str(SCRIPTS / "start_multicluster.sh"), str(directory), kind, "zeus", "magnus"]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env=_clean_environ(VERBOSE="1"),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            msg = f"{kind} Slurm setup did not start in {timeout} s\n{_text(exc.stderr)}"
            raise SlurmError(_with_tails(msg, directory) + _clean_up(directory)) from None
        elapsed = time.monotonic() - t0
        if proc.returncode != 0:
            msg = f"{kind} Slurm setup failed to start (exit {proc.returncode}):\n{proc.stderr}"
            raise SlurmError(_with_tails(msg, directory) + _clean_up(directory))
        try:
            setup = cls(kind, directory, _parse_exports(proc.stdout), elapsed)
            setup.start_log = proc.stderr
            return setup
        except Exception:
            _clean_up(directory)
            raise

    def stop(self) -> None:
        """Stop every daemon of this setup (only the PIDs recorded in its directory)
        and the job processes they left; raise SlurmError if any survives."""
        if self.stopped:
            return
        t0 = time.monotonic()
        try:
            proc = _stop_dir(self.dir)
            self.stop_log, rc = proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            self.stop_log, rc = f"stop_cluster.sh timed out\n{_text(exc.stderr)}", "timeout"
        self.stopped = True
        survivors = self.alive()
        # second line of defence: anything still running from this directory
        leftovers = {**processes_under(self.dir), **{pid: self.daemon_names[n] for n, pid in survivors.items()}}
        unkillable = terminate(leftovers) if leftovers else {}
        self.stop_seconds = time.monotonic() - t0
        if leftovers or rc != 0:
            raise SlurmError(
                f"{self.kind} Slurm setup in {self.dir} not stopped cleanly by stop_cluster.sh "
                f"(exit {rc}): left running {leftovers}, killed now except {unkillable}\n{self.stop_log}"
            )

    def alive(self) -> dict[str, int]:
        """The daemons recorded at start that still run (same PID, same command
        name, not a zombie): {pid file relative to dir: pid}."""
        return {
            name: pid
            for name, pid in self.pids.items()
            if _pid_alive(pid) and _comm(pid) == self.daemon_names[name]
        }

    def _recorded_pids(self) -> dict[str, int]:
        pids, self.daemon_names = {}, {}
        for f in sorted(self.dir.rglob("*.pid")):
            try:
                pid = int(f.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            name = str(f.relative_to(self.dir))
            pids[name], self.daemon_names[name] = pid, _comm(pid)
        return pids

    # ------------------------------------------------------------------ running clients
    def conf_for(self, cluster: str | None = None) -> Path:
        """The slurm.conf of ``cluster`` (default: the first one)."""
        if cluster is None:
            return Path(self.env["SLURM_CONF"])
        if cluster not in self.clusters:
            raise KeyError(f"no cluster {cluster!r} in this {self.kind} setup ({', '.join(self.clusters)})")
        return Path(self.env.get(f"SLURM_CONF_{cluster}", self.env["SLURM_CONF"]))

    def environ(self, cluster: str | None = None, **extra: str) -> dict[str, str]:
        """A full environment for a client of this setup: os.environ without any
        inherited SLURM_*/SBATCH_*... variables, plus ``env`` (SLURM_CONF pointing at
        ``cluster``'s configuration when given) and ``extra``."""
        env = _clean_environ()
        env.update(self.env)
        if cluster is not None:
            env["SLURM_CONF"] = str(self.conf_for(cluster))
        env.update(extra)
        return env

    def run(
        self,
        *cmd: str | os.PathLike,
        cluster: str | None = None,
        check: bool = True,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a client command against this setup; text output captured.  ``env``
        is added to ``environ(cluster)``.  ``cwd`` defaults to a scratch directory
        of the setup (so jobs' default slurm-%j.out never land in the repository).
        With check=True a non-zero exit raises SlurmError with the output."""
        full_env = self.environ(cluster)
        if env:
            full_env.update(env)
        args = [str(c) for c in cmd]
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=str(cwd or self.workdir),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise SlurmError(
                f"{shlex.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def sbatch(self, *args: str | os.PathLike, cluster: str | None = None, **kw) -> str:
        """``sbatch --parsable ARGS`` (with ``-M cluster`` when given); returns what
        it prints: ``"ID"``, or ``"ID;CLUSTER"`` with -M.  (-M needs slurmdbd: on the
        single setup sbatch -M fails.)  ``kw`` go to ``run`` (env, cwd, check...)."""
        m = ["-M", cluster] if cluster else []
        return self.run("sbatch", "--parsable", *m, *args, **kw).stdout.strip()

    def cancel(self, *jobs: object) -> None:
        for job in jobs:
            jid, cluster = parse_job_ref(job)
            self.run("scancel", *(["-M", cluster] if cluster and self.accounting else []), jid, check=False)

    # ------------------------------------------------------------------ job states
    def job_info(self, job: object) -> dict[str, str]:
        """``scontrol show job`` fields of a job the controller still knows, else {}."""
        jid, cluster = parse_job_ref(job)
        proc = self.run("scontrol", "-o", "show", "job", jid, cluster=cluster, check=False)
        for line in proc.stdout.splitlines():
            fields = _parse_scontrol_one_line(line)
            if fields.get("JobId") == jid:
                return fields
        return {}

    def sacct(self, *jobs: object, fields: str = "JobIDRaw,Cluster,State,ExitCode,Start,End") -> list[dict[str, str]]:
        """Accounting records (one per job allocation, -X) of ``jobs`` on every
        cluster (-M all), as dicts; [] on a setup without accounting."""
        if not self.accounting:
            return []
        ids = ",".join(job_id(j) for j in jobs)
        proc = self.run("sacct", "-M", "all", "-X", "-n", "-P", "-o", fields, "-j", ids, check=False)
        names = fields.split(",")
        return [dict(zip(names, line.split("|"))) for line in proc.stdout.splitlines() if line.strip()]

    def _jobcomp_states(self) -> dict[str, str]:
        states = {}
        for f in self.dir.rglob("jobcomp.txt"):
            for line in f.read_text(errors="replace").splitlines():
                fields = _parse_scontrol_one_line(line)
                if "JobId" in fields and "JobState" in fields:
                    states[fields["JobId"]] = fields["JobState"]
        return states

    def job_states(self, *jobs: object) -> dict[str, str]:
        """{str(job): state} for each job reference, e.g. {"12;zeus": "COMPLETED"}.
        The controller's view (scontrol) wins while it remembers the job; after
        that accounting (sacct) or the jobcomp file; "UNKNOWN" if nobody knows it.
        States are the bare words (``CANCELLED``, not ``CANCELLED by 0``)."""
        result: dict[str, str] = {}
        missing = []
        for job in jobs:
            info = self.job_info(job)
            if info.get("JobState"):
                result[str(job)] = info["JobState"]
            else:
                missing.append(job)
        if missing and self.accounting:
            records = {}
            for rec in self.sacct(*missing):
                records.setdefault(rec["JobIDRaw"], []).append(rec)
            for job in missing:
                jid, cluster = parse_job_ref(job)
                recs = [r for r in records.get(jid, []) if cluster is None or r["Cluster"] == cluster]
                if recs:
                    result[str(job)] = recs[0]["State"].split()[0]
        elif missing:
            comp = self._jobcomp_states()
            for job in missing:
                if job_id(job) in comp:
                    result[str(job)] = comp[job_id(job)]
        for job in missing:
            result.setdefault(str(job), "UNKNOWN")
        return result

    def wait_for_jobs(
        self, *jobs: object, timeout: float = 60, states: Iterable[str] = FINAL_STATES, poll: float = 0.25
    ) -> dict[str, str]:
        """Poll until every job is in one of ``states`` (default: a final state);
        return {str(job): state}.  Raises SlurmTimeout after ``timeout`` seconds with
        the last states, the jobs' scontrol records and the controllers' log tails."""
        wanted = frozenset(states)
        deadline = time.monotonic() + timeout
        while True:
            current = self.job_states(*jobs)
            if all(s in wanted for s in current.values()):
                return current
            if time.monotonic() > deadline:
                details = "\n".join(f"{j}: {self.job_info(j)}" for j in jobs)
                raise SlurmTimeout(
                    f"jobs not in {sorted(wanted)} after {timeout} s: {current}\n{details}\n{self.log_tail()}"
                )
            time.sleep(poll)

    def wait_for_accounting(self, *jobs: object, timeout: float = 30) -> list[dict[str, str]]:
        """Poll sacct until it has a final record of every job (slurmdbd learns of a
        job's end a moment after the controller); return the records."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.sacct(*jobs)
            done = {r["JobIDRaw"] for r in recs if r["State"].split()[0] in FINAL_STATES}
            if all(job_id(j) in done for j in jobs):
                return recs
            if time.monotonic() > deadline:
                raise SlurmTimeout(f"sacct has no final record of {list(jobs)} after {timeout} s: {recs}")
            time.sleep(0.25)

    # ------------------------------------------------------------------ diagnostics
    def log_tail(self, lines: int = 20) -> str:
        return _log_tails(self.dir, lines)

    def __repr__(self) -> str:
        return f"SlurmSetup({self.kind!r}, {str(self.dir)!r}, clusters={self.clusters})"


#: The single-cluster setup is a SlurmSetup too.
SlurmCluster = SlurmSetup


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def _clean_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV_PREFIXES)}
    env.update(extra)
    return env


def _stop_dir(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPTS / "stop_cluster.sh"), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_environ(VERBOSE="1"),
        stdin=subprocess.DEVNULL,
    )


def _clean_up(directory: Path) -> str:
    """Stop whatever a failed start left in ``directory``; a note for the error message."""
    try:
        proc = _stop_dir(directory)
        note = "" if proc.returncode == 0 else f"\nstop_cluster.sh exit {proc.returncode}: {proc.stderr}"
    except subprocess.TimeoutExpired:
        note = "\nstop_cluster.sh timed out"
    left = processes_under(directory)
    if left:
        note += f"\nprocesses left running, killed now: {left} (unkillable: {terminate(left)})"
    return note


def _with_tails(message: str, directory: Path) -> str:
    """message plus the daemon log tails, unless the script already printed them."""
    return message if "\n----- " in message else message + _log_tails(directory)


def _log_tails(directory: Path, lines: int = 20) -> str:
    out = []
    for f in sorted(Path(directory).rglob("*")):
        if f.suffix in (".log", ".err") and "data" not in f.relative_to(directory).parts and f.is_file():
            try:
                tail = f.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"----- {f}\n" + "\n".join(tail))
    return "\n" + "\n".join(out) if out else f"\n(no daemon logs under {directory})"


def read_timestamps(path: Path | str) -> dict[str, float]:
    """Parse a file of ``NAME EPOCH_SECONDS`` lines (written by test jobs) into a dict."""
    stamps: dict[str, float] = {}
    for line in Path(path).read_text().splitlines():
        name, _, value = line.partition(" ")
        if value.strip():
            stamps[name] = float(value)
    return stamps


__all__: Sequence[str] = (
    "FINAL_STATES",
    "KINDS",
    "SlurmCluster",
    "SlurmError",
    "SlurmSetup",
    "SlurmTimeout",
    "job_id",
    "parse_job_ref",
    "processes_under",
    "read_timestamps",
    "terminate",
)
