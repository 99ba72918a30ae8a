"""Shared code of the fake Slurm/container shims used by the ltsflow tests (stdlib only).

The executables beside this file (sbatch, scancel, squeue, sacct, drain, module,
singularity, apptainer, rclone) are thin wrappers around the ``*_main`` functions here. Each
executable documents the subset of its real counterpart that it supports.
They start Python with -S: they need the standard library only, and without the site module (and
the .pth files it runs) a shim call takes a third less CPU time.

State lives in the directory named by ``LTSFLOW_SHIM_STATE`` (required):

    calls.jsonl          one JSON object per call of any shim: tool, argv, cwd, rc, ...
                         (never the value of an environment variable; sbatch records
                         the names of its environment's variables, "environment")
    state.json           the queue: every job ever submitted, in submission order
    jobs/<seq>/slurm_script   the copy of the batch script taken at submission
    jobs/<seq>/environment    the exported variables' values (JSON, mode 0600),
                              as slurmctld keeps them in StateSaveLocation
    .lock                flock(2) lock serialising every read-modify-write

Environment knobs (all optional except LTSFLOW_SHIM_STATE):

    LTSFLOW_SHIM_STATE               state directory (required)
    LTSFLOW_SHIM_FEDERATED           "1" (default): one id space, dependencies looked up on
                                     every cluster. "0": one counter per cluster (from
                                     1001), a dependency is looked up on the job's own
                                     cluster only; an unknown id counts as satisfied.
    LTSFLOW_SHIM_DEFAULT_CLUSTER     cluster used without -M (default "cluster")
    LTSFLOW_SHIM_PARTITIONS          "zeus:copyq,magnus:debugq": known clusters/partitions;
                                     when set, anything else is rejected as sbatch does
    LTSFLOW_SHIM_SBATCH_FAIL_AT      "N[,M...]": the Nth sbatch call fails with
                                     "Unable to contact slurm controller", nothing queued
    LTSFLOW_SHIM_SBATCH_TIMEOUT_AT   "N[,M...]": the Nth sbatch call queues the job but
                                     fails with "Socket timed out on send/recv operation"
    LTSFLOW_SHIM_KILL_INVALID_DEPEND "1": as DependencyParameters=kill_invalid_depend in
                                     slurm.conf (read by drain); a job's own
                                     --kill-on-invalid-dep=yes|no wins over it
    LTSFLOW_SHIM_MISSING             "tool1,tool2": singularity/apptainer behave as if the
                                     container lacks these executables
    LTSFLOW_SHIM_NO_MOUNT            "tmp[,home,cwd]": default binds this site's singularity.conf
                                     turns off ("mount tmp = no", ...), as --no-mount does for a call
    LTSFLOW_SHIM_PYCACHE             where the shims keep their compiled Python (default: the
                                     state directory's .pycache); the tests give one directory to
                                     every state of a session, so a fresh state compiles nothing
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import signal
import sys
from collections.abc import Iterator
from typing import Any, NamedTuple

SHIMS_DIR = os.path.dirname(os.path.realpath(__file__))
STATE_ENV = "LTSFLOW_SHIM_STATE"

# The environment the shim was called with, before the knobs are looked up: what sbatch records
# and copies into a job. schedule.sh prunes its environment before it runs sbatch, as a real
# sbatch still finds slurm.conf, so the shims read their LTSFLOW_SHIM_* knobs, when they were not
# given any, from the nearest ancestor process whose initial environment has LTSFLOW_SHIM_STATE.
CALLER_ENVIRONMENT = dict(os.environ)


def _inherit_knobs() -> None:
    if STATE_ENV in os.environ:
        return
    pid = os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                entries = [e.decode("utf-8", "replace").partition("=") for e in fh.read().split(b"\0") if e]
            with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return
        knobs = {name: value for name, _, value in entries if name.startswith("LTSFLOW_SHIM_")}
        if STATE_ENV in knobs:
            os.environ.update(knobs)
            return
        pid = parent


_inherit_knobs()
FIRST_JOB_ID = 1001
NO_VAL = 4294967294  # what Slurm substitutes for %a outside an array
NODE_NAME = "node1"
DEFAULT_PARTITION = "debug"
LAUNCH_FAILURE_SIGNAL = 53  # real Slurm 22.05: ExitCode=0:53 when the log cannot be opened
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


class Exit(Exception):
    """Leave a shim with an exit status and lines for stderr."""

    def __init__(self, code: int, *err: str) -> None:
        super().__init__(code)
        self.code = code
        self.err = list(err)


# --------------------------------------------------------------------------- state


def state_root(prog: str) -> str:
    root = os.environ.get(STATE_ENV, "")
    if not root:
        sys.stderr.write(
            f"{prog}: error: {STATE_ENV} is not set: the ltsflow Slurm shims need a state "
            "directory (see tests/shimlib.py)\n"
        )
        raise SystemExit(1)
    root = os.path.abspath(root)
    os.makedirs(root, exist_ok=True)
    return root


def empty_state() -> dict[str, Any]:
    return {"version": 1, "sbatch_calls": 0, "started": 0, "jobs": []}


class Store:
    """The state directory; every access happens under one exclusive flock."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.state_path = os.path.join(root, "state.json")
        self.calls_path = os.path.join(root, "calls.jsonl")

    @contextlib.contextmanager
    def locked(self, write: bool = True) -> Iterator[dict[str, Any]]:
        with open(os.path.join(self.root, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._load()
                yield state
                if write:
                    self._save(state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.state_path, encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return empty_state()

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.state_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=1, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, self.state_path)

    def append_call(self, record: dict[str, Any]) -> None:
        """Append one call record; the caller holds the lock."""
        line = json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
        with open(self.calls_path, "a", encoding="utf-8") as fh:
            fh.write(line)

    def job_dir(self, seq: int) -> str:
        return os.path.join(self.root, "jobs", str(seq))


def current_dir() -> str:
    try:
        return os.getcwd()
    except FileNotFoundError:
        return os.environ.get("PWD", "/")


def user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def federated() -> bool:
    return os.environ.get("LTSFLOW_SHIM_FEDERATED", "1").strip() not in ("0", "no", "false", "")


def default_cluster() -> str:
    return os.environ.get("LTSFLOW_SHIM_DEFAULT_CLUSTER") or "cluster"


def configured_partitions() -> dict[str, list[str]] | None:
    """LTSFLOW_SHIM_PARTITIONS as {cluster: [partition, ...]}, or None when unset."""
    text = os.environ.get("LTSFLOW_SHIM_PARTITIONS", "").strip()
    if not text:
        return None
    table: dict[str, list[str]] = {}
    for item in text.split(","):
        cluster, _, partition = item.strip().partition(":")
        if cluster:
            table.setdefault(cluster, [])
            if partition:
                table[cluster].append(partition)
    return table


def call_numbers(name: str) -> set[int]:
    numbers = set()
    for part in os.environ.get(name, "").split(","):
        part = part.strip()
        if part.isdigit():
            numbers.add(int(part))
    return numbers


def unknown_cluster_error(prog: str, cluster: str) -> Exit:
    return Exit(
        1,
        f"{prog}: error: '{cluster}' can't be reached now, or it is an invalid entry for "
        "--cluster.  Use 'sacctmgr list clusters' to see available clusters.",
    )


def selected_clusters(prog: str, value: str | None, st: dict[str, Any]) -> list[str]:
    """The clusters a query covers: -M value, "all", or the default cluster."""
    table = configured_partitions()
    if value is None:
        return [default_cluster()]
    if value.lower() == "all":
        names = set(table or ()) | {job["cluster"] for job in st["jobs"]} | {default_cluster()}
        return sorted(names)
    names = [name for name in value.split(",") if name]
    if table is not None:
        for name in names:
            if name not in table and name != default_cluster():
                raise unknown_cluster_error(prog, name)
    return names


# --------------------------------------------------------------------------- options


class Opt(NamedTuple):
    long: str
    short: str | None
    takes_arg: bool


def getopt(prog: str, argv: list[str], table: list[Opt], *, permute: bool,
           usage_exit: int) -> tuple[list[tuple[str, str | None]], list[str]]:
    """GNU getopt_long as the Slurm tools use it, with its error messages.

    Returns ([(long name, value or None)], positional). Without ``permute`` the first
    positional ends option parsing (sbatch: the rest belongs to the script). Long option
    abbreviations are not supported.
    """

    def usage(message: str) -> Exit:
        return Exit(usage_exit, message, f'Try "{prog} --help" for more information')

    longs = {opt.long: opt for opt in table}
    shorts = {opt.short: opt for opt in table if opt.short}
    found: list[tuple[str, str | None]] = []
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional.extend(argv[i + 1:])
            break
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            opt = longs.get(name)
            if opt is None:
                raise usage(f"{prog}: unrecognized option '{arg}'")
            if opt.takes_arg:
                if not has_value:
                    if i + 1 >= len(argv):
                        raise usage(f"{prog}: option '--{name}' requires an argument")
                    i += 1
                    value = argv[i]
                found.append((opt.long, value))
            else:
                if has_value:
                    raise usage(f"{prog}: option '--{name}' doesn't allow an argument")
                found.append((opt.long, None))
        elif arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                letter = arg[j]
                opt = shorts.get(letter)
                if opt is None:
                    raise usage(f"{prog}: invalid option -- '{letter}'")
                if opt.takes_arg:
                    value = arg[j + 1:]
                    if not value:
                        if i + 1 >= len(argv):
                            raise usage(f"{prog}: option requires an argument -- '{letter}'")
                        i += 1
                        value = argv[i]
                    found.append((opt.long, value))
                    break
                found.append((opt.long, None))
                j += 1
        elif permute:
            positional.append(arg)
        else:
            positional.extend(argv[i:])
            break
        i += 1
    return found, positional


def help_requested(found: list[tuple[str, str | None]], doc: str | None) -> None:
    if any(name == "help" for name, _ in found):
        sys.stdout.write((doc or "").strip() + "\n")
        raise Exit(0)


# --------------------------------------------------------------------------- job lookup


def job_by_seq(st: dict[str, Any], seq: int) -> dict[str, Any]:
    return st["jobs"][seq - 1]


def in_scope(job: dict[str, Any], cluster: str, fed: bool) -> bool:
    return fed or job["cluster"] == cluster


def next_job_id(st: dict[str, Any], cluster: str, fed: bool) -> int:
    """Ids only grow: the highest id ever used in the id space, plus one."""
    used = [FIRST_JOB_ID - 1]
    for job in st["jobs"]:
        if in_scope(job, cluster, fed):
            used.append(job["id"])
            used.extend(task["id"] for task in job["tasks"] if task["id"] is not None)
    return max(used) + 1


def find_job_ref(st: dict[str, Any], token: str, cluster: str,
                 fed: bool) -> tuple[int, int | None] | None:
    """Resolve "ID" or "ID_TASK" to (seq, task index or None); None when unknown."""
    match = re.fullmatch(r"(\d+)(?:_(\d+))?", token)
    if not match:
        return None
    job_id = int(match.group(1))
    task_index = None if match.group(2) is None else int(match.group(2))
    for job in st["jobs"]:
        if not in_scope(job, cluster, fed):
            continue
        if job["id"] == job_id:
            if task_index is None:
                return job["seq"], None
            if any(task["index"] == task_index for task in job["tasks"]):
                return job["seq"], task_index
            return None
        if task_index is None:
            for task in job["tasks"]:
                if task["id"] == job_id:
                    return job["seq"], task["index"]
    return None


def display_id(job: dict[str, Any]) -> str:
    """The id squeue/sacct show for a job as a whole."""
    if job["array"] is None:
        return str(job["id"])
    spec = job["array"]["spec"]
    return f"{job['id']}_[{spec}]"


# --------------------------------------------------------------------------- dependencies

DEPENDENCY_TYPES = ("after", "afterany", "afterburstbuffer", "aftercorr", "afternotok",
                    "afterok")


class DependencyError(Exception):
    pass


def parse_dependency(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse ``type:id[:id...]`` joined by "," (all) or "?" (any) as slurmctld does.

    Returns (operator, items); raises DependencyError for what Slurm rejects with
    "Job dependency problem" (unknown type, empty or non-numeric ids, cluster suffixes
    such as ``:zeus``, ``;zeus`` or ``@zeus``, whitespace, empty elements).
    """
    if not text:
        raise DependencyError(text)
    operator = "any" if "?" in text else "all"
    items: list[dict[str, Any]] = []
    for part in re.split(r"[,?]", text):
        kind, colon, rest = part.partition(":")
        kind = kind.lower()
        if kind == "singleton" and not colon:
            items.append({"type": "singleton", "ids": []})
            continue
        if kind not in DEPENDENCY_TYPES or not colon:
            raise DependencyError(part)
        ids = []
        for token in rest.split(":"):
            match = re.fullmatch(r"(\d+)(?:_(\d+))?(?:\+(\d+))?", token)
            if not match or int(match.group(1)) == 0:
                raise DependencyError(token)
            if match.group(3) is not None and kind != "after":
                raise DependencyError(token)
            job_token = match.group(1) + (f"_{match.group(2)}" if match.group(2) else "")
            ids.append({"token": job_token, "ref": None})
        items.append({"type": kind, "ids": ids})
    return operator, items


def unit_state(st: dict[str, Any], ref: list[Any]) -> str:
    seq, task_index = ref
    job = job_by_seq(st, seq)
    if task_index is None:
        return job["state"]
    for task in job["tasks"]:
        if task["index"] == task_index:
            return task["state"]
    return job["state"]


def element_status(kind: str, state: str) -> str:
    """'ok', 'wait' or 'never' for one (type, parent state) pair."""
    ended = state in ENDED
    if kind == "after":
        return "ok" if state != "PENDING" else "wait"
    if kind in ("afterany", "afterburstbuffer"):
        return "ok" if ended else "wait"
    if kind in ("afterok", "aftercorr"):
        if state == "COMPLETED":
            return "ok"
        return "never" if ended else "wait"
    if kind == "afternotok":
        if state == "COMPLETED":
            return "never"
        return "ok" if ended else "wait"
    return "wait"


def dependency_status(st: dict[str, Any], job: dict[str, Any]) -> str:
    dep = job["dependencies"]
    if dep is None:
        return "ok"
    statuses = []
    for item in dep["items"]:
        if item["type"] == "singleton":
            fed = job["federated"]
            busy = any(
                other["name"] == job["name"] and other["state"] == "RUNNING"
                and other["seq"] != job["seq"] and in_scope(other, job["cluster"], fed)
                for other in st["jobs"]
            )
            statuses.append("wait" if busy else "ok")
            continue
        for ident in item["ids"]:
            if ident["ref"] is None:  # unknown at submission: satisfied at once
                statuses.append("ok")
            else:
                statuses.append(element_status(item["type"], unit_state(st, ident["ref"])))
    if dep["operator"] == "any":
        if "ok" in statuses:
            return "ok"
        return "never" if statuses and all(s == "never" for s in statuses) else "wait"
    if "never" in statuses:
        return "never"
    return "ok" if all(s == "ok" for s in statuses) else "wait"


# --------------------------------------------------------------------------- sbatch

SBATCH_OPTIONS = [
    Opt("parsable", None, False),
    Opt("clusters", "M", True),
    Opt("partition", "p", True),
    Opt("dependency", "d", True),
    Opt("kill-on-invalid-dep", None, True),
    Opt("export", None, True),
    Opt("job-name", "J", True),
    Opt("output", "o", True),
    Opt("error", "e", True),
    Opt("time", "t", True),
    Opt("mem", None, True),
    Opt("cpus-per-task", "c", True),
    Opt("account", "A", True),
    Opt("qos", "q", True),
    Opt("array", "a", True),
    Opt("chdir", "D", True),
    Opt("comment", None, True),
    Opt("help", None, False),
]

TIME_RE = re.compile(
    r"(?:UNLIMITED|unlimited|INFINITE|infinite|\d+|\d+:\d+|\d+:\d+:\d+|\d+-\d+|\d+-\d+:\d+"
    r"|\d+-\d+:\d+:\d+)"
)
SBATCH_PREFIX = "sbatch: error: "
SUBMIT_FAILED = SBATCH_PREFIX + "Batch job submission failed: "


def sbatch_directives(script: str) -> list[str]:
    """Arguments from the leading ``#SBATCH`` lines (up to the first command)."""
    import shlex  # imported here: every shim call pays for module imports
    args: list[str] = []
    for line in script.splitlines()[1:]:
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH"):
            try:
                args.extend(shlex.split(stripped[len("#SBATCH"):], comments=True))
            except ValueError:
                continue
    return args


def parse_array(spec: str) -> dict[str, Any]:
    match = re.fullmatch(r"([0-9,:\-]+)(?:%(\d+))?", spec)
    if not match:
        raise ValueError(spec)
    indices: set[int] = set()
    items = match.group(1).split(",")
    step = 1
    for item in items:
        range_match = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", item)
        if not range_match:
            raise ValueError(item)
        first = int(range_match.group(1))
        last = int(range_match.group(2)) if range_match.group(2) else first
        stride = int(range_match.group(3)) if range_match.group(3) else 1
        if last < first or stride < 1 or last > 1000:
            raise ValueError(item)
        indices.update(range(first, last + 1, stride))
        if len(items) == 1:
            step = stride
    ordered = sorted(indices)
    return {
        "spec": spec,
        "indices": ordered,
        "throttle": int(match.group(2)) if match.group(2) else None,
        "step": step,
    }


def parse_export(value: str, record: dict[str, Any]) -> tuple[str, list[str], dict[str, str]]:
    """--export value -> (mode, names to copy from the environment, explicit NAME=value)."""
    names: list[str] = []
    explicit: dict[str, str] = {}
    saw_all = saw_none = False
    for item in value.split(",") if value else []:
        if item == "ALL":
            saw_all = True
        elif item == "NONE":
            saw_none = True
        elif "=" in item:
            name, _, val = item.partition("=")
            explicit[name] = val
        elif item:
            names.append(item)
    mode = "ALL" if saw_all else ("NONE" if saw_none and not names and not explicit else "LIST")
    if not value:
        mode = "LIST"
    exports = [{"name": name, "set": name in CALLER_ENVIRONMENT} for name in names]
    exports += [{"name": name, "set": True, "inline": True} for name in explicit]
    record["exports"] = exports
    record["export_mode"] = mode
    return mode, names, explicit


def read_script(path: str | None) -> tuple[str, bytes]:
    if path is None:
        return "sbatch", sys.stdin.buffer.read()
    try:
        with open(path, "rb") as fh:
            return os.path.basename(path), fh.read()
    except OSError:
        raise Exit(1, f"{SBATCH_PREFIX}Unable to open file {path}") from None


def check_script(content: bytes) -> None:
    if not content:
        raise Exit(1, f"{SBATCH_PREFIX}Batch script is empty!")
    if not content.startswith(b"#!"):
        raise Exit(
            1,
            f"{SBATCH_PREFIX}This does not look like a batch script.  The first",
            f"{SBATCH_PREFIX}line must start with #! followed by the path to an interpreter.",
            f"{SBATCH_PREFIX}For instance: #!/bin/sh",
        )
    if b"\r\n" in content:
        raise Exit(
            1,
            f"{SBATCH_PREFIX}Batch script contains DOS line breaks (\\r\\n)",
            f"{SBATCH_PREFIX}instead of expected UNIX line breaks (\\n).",
        )


def sbatch_options(argv: list[str], directives: list[str]) -> dict[str, str | None]:
    """Effective options: #SBATCH directives first, then the command line over them."""
    options: dict[str, str | None] = {}
    found, _ = getopt("sbatch", directives, SBATCH_OPTIONS, permute=True, usage_exit=255)
    for name, value in found:
        options[name] = value
    found, _ = getopt("sbatch", argv, SBATCH_OPTIONS, permute=False, usage_exit=255)
    for name, value in found:
        options[name] = value
    return options


def validate_client_side(options: dict[str, str | None]) -> None:
    """What sbatch itself rejects before talking to the controller."""
    if "time" in options and not TIME_RE.fullmatch(options["time"] or ""):
        raise Exit(255, f"{SBATCH_PREFIX}Invalid --time specification")
    if "mem" in options and not re.fullmatch(r"\d+[KMGTkmgt]?", options["mem"] or ""):
        raise Exit(255, f"{SBATCH_PREFIX}Invalid --mem specification")
    if "cpus-per-task" in options:
        value = options["cpus-per-task"] or ""
        if not value.isdigit() or int(value) < 1:
            raise Exit(1, f'{SBATCH_PREFIX}Invalid numeric value "{value}" for --cpus-per-task.')
    kill = options.get("kill-on-invalid-dep", "yes") or ""
    if kill.lower() not in ("yes", "no"):
        raise Exit(255, f"{SBATCH_PREFIX}Invalid --kill-on-invalid-dep specification")


def sbatch_handler(argv: list[str], st: dict[str, Any], record: dict[str, Any],
                   store: Store, out: list[str]) -> int:
    record.update(exports=[], export_mode=None, job_id=None, cluster=None, fault=None,
                  environment=sorted(CALLER_ENVIRONMENT))
    st["sbatch_calls"] += 1
    call_number = st["sbatch_calls"]
    record["call"] = call_number

    found, positional = getopt("sbatch", argv, SBATCH_OPTIONS, permute=False, usage_exit=255)
    help_requested(found, SBATCH_DOC)
    script_path = positional[0] if positional else None
    script_args = positional[1:]
    record["script"] = script_path
    record["script_args"] = script_args
    name, content = read_script(script_path)
    check_script(content)
    options = sbatch_options(argv, sbatch_directives(content.decode("utf-8", "replace")))
    record["options"] = options
    validate_client_side(options)
    mode, names, explicit = parse_export(options.get("export", "ALL") or "", record)
    if "export" not in options:
        mode = record["export_mode"] = "ALL"

    cluster_given = options.get("clusters")
    cluster = (cluster_given.split(",")[0] if cluster_given else "") or default_cluster()
    table = configured_partitions()
    if table is not None and cluster not in table and cluster != default_cluster():
        raise unknown_cluster_error("sbatch", cluster)

    if call_number in call_numbers("LTSFLOW_SHIM_SBATCH_FAIL_AT"):
        record["fault"] = "connect"
        raise Exit(1, SUBMIT_FAILED + "Unable to contact slurm controller (connect failure)")

    # ---- what slurmctld checks
    partitions = (table or {}).get(cluster, [])
    partition = options.get("partition")
    if partition is None:
        if table is not None and not partitions:
            raise Exit(1, SUBMIT_FAILED + "No partition specified or system default partition")
        partition = partitions[0] if partitions else DEFAULT_PARTITION
    elif table is not None and partition not in partitions:
        raise Exit(1, f"{SBATCH_PREFIX}invalid partition specified: {partition}",
                   SUBMIT_FAILED + "Invalid partition name specified")

    fed = federated()
    dependencies = None
    dependency_text = options.get("dependency")
    if dependency_text is not None:
        try:
            operator, items = parse_dependency(dependency_text)
        except DependencyError:
            raise Exit(1, SUBMIT_FAILED + "Job dependency problem") from None
        for item in items:
            for ident in item["ids"]:
                ident["ref"] = find_job_ref(st, ident["token"], cluster, fed)
        dependencies = {"operator": operator, "items": items}

    array = None
    if options.get("array") is not None:
        try:
            array = parse_array(options["array"] or "")
        except ValueError:
            raise Exit(1, SUBMIT_FAILED + "Invalid job array specification") from None

    # ---- accepted: queue it
    submit_dir = current_dir()
    workdir = os.path.normpath(os.path.join(submit_dir, options.get("chdir") or "."))
    kill = options.get("kill-on-invalid-dep")
    job_id = next_job_id(st, cluster, fed)
    seq = len(st["jobs"]) + 1
    waits = dependencies is not None and any(
        ident["ref"] is not None for item in dependencies["items"] for ident in item["ids"]
    )
    job = {
        "seq": seq,
        "id": job_id,
        "cluster": cluster,
        "federated": fed,
        "name": options.get("job-name") or name,
        "state": "PENDING",
        "reason": "Dependency" if waits else "None",
        "exit_code": None,
        "signal": None,
        "partition": partition,
        "account": options.get("account"),
        "qos": options.get("qos"),
        "time": options.get("time"),
        "mem": options.get("mem"),
        "cpus_per_task": int(options["cpus-per-task"]) if options.get("cpus-per-task") else None,
        "comment": options.get("comment"),
        "argv": list(argv),
        "options": options,
        "script": script_path,
        "script_args": script_args,
        "submit_dir": submit_dir,
        "workdir": workdir,
        "output": options.get("output"),
        "error": options.get("error"),
        "dependency": dependency_text,
        "dependencies": dependencies,
        "kill_on_invalid_dep": None if kill is None else kill.lower() == "yes",
        "export_mode": mode,
        "exports": record["exports"],
        "array": array,
        "tasks": [
            {"index": index, "id": None, "state": "PENDING", "exit_code": None,
             "signal": None, "logs": []}
            for index in (array["indices"] if array else [])
        ],
        "logs": [],
        "run_order": None,
        "cancelled_by": None,
        "pgid": None,
    }
    job_dir = store.job_dir(seq)
    os.makedirs(job_dir, exist_ok=True)
    script_copy = os.path.join(job_dir, "slurm_script")
    with open(script_copy, "wb") as fh:
        fh.write(content)
    os.chmod(script_copy, 0o700)
    environment = dict(CALLER_ENVIRONMENT) if mode == "ALL" else {}
    if mode == "LIST":
        environment = {n: CALLER_ENVIRONMENT[n] for n in names if n in CALLER_ENVIRONMENT}
    environment.update(explicit)
    env_path = os.path.join(job_dir, "environment")
    fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(environment, fh)
    st["jobs"].append(job)
    record["job_id"] = job_id
    record["cluster"] = cluster

    if call_number in call_numbers("LTSFLOW_SHIM_SBATCH_TIMEOUT_AT"):
        record["fault"] = "timeout"
        raise Exit(1, SUBMIT_FAILED + "Socket timed out on send/recv operation")

    if "parsable" in options:
        out.append(f"{job_id};{cluster}" if cluster_given else str(job_id))
    else:
        suffix = f" on cluster {cluster}" if cluster_given else ""
        out.append(f"Submitted batch job {job_id}{suffix}")
    return 0


SBATCH_DOC = None  # set by the sbatch executable (its docstring is the --help text)


# --------------------------------------------------------------------------- scancel

SCANCEL_OPTIONS = [
    Opt("clusters", "M", True),
    Opt("name", "n", True),
    Opt("jobname", None, True),
    Opt("quiet", "Q", False),
    Opt("help", None, False),
]


def cancel_unit(job: dict[str, Any], task: dict[str, Any] | None) -> bool:
    """Cancel a pending/running job or task; True when something changed."""
    uid = os.getuid()
    if task is not None:
        if task["state"] not in ("PENDING", "RUNNING"):
            return False
        if task["state"] == "RUNNING":
            kill_group(job.get("pgid"))
        task["state"] = "CANCELLED"
        if all(t["state"] == "CANCELLED" for t in job["tasks"]) and job["state"] == "PENDING":
            job["state"] = "CANCELLED"
            job["cancelled_by"] = uid
        return True
    if job["state"] not in ("PENDING", "RUNNING"):
        return False
    if job["state"] == "RUNNING":
        kill_group(job.get("pgid"))
    job["state"] = "CANCELLED"
    job["cancelled_by"] = uid
    for t in job["tasks"]:
        if t["state"] in ("PENDING", "RUNNING"):
            t["state"] = "CANCELLED"
    return True


DEFERRED_KILLS: list[int] = []


def kill_group(pgid: int | None) -> None:
    """Stop, once the state is saved, a job the drain started (its own process group).

    As slurmctld signals the job after answering, scancel finishes first even when it runs
    inside the job it cancels: it ignores the SIGTERM sent to its own process group.
    """
    if pgid:
        DEFERRED_KILLS.append(pgid)


def send_deferred_kills() -> None:
    if DEFERRED_KILLS:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for pgid in DEFERRED_KILLS:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    DEFERRED_KILLS.clear()


def scancel_handler(argv: list[str], st: dict[str, Any], record: dict[str, Any],
                    store: Store, out: list[str]) -> int:
    record["cancelled"] = []
    found, ids = getopt("scancel", argv, SCANCEL_OPTIONS, permute=True, usage_exit=1)
    help_requested(found, SCANCEL_DOC)
    opts = dict(found)
    names = set()
    for key in ("name", "jobname"):
        if opts.get(key):
            names.update(opts[key].split(","))
    for ident in ids:
        for token in ident.split(","):
            if not re.fullmatch(r"\d+(?:_\d+)?", token):
                raise Exit(1, f"scancel: error: Invalid job id {token}")
    tokens = [token for ident in ids for token in ident.split(",") if token]
    if not tokens and not names:
        raise Exit(1, "scancel: error: No job identification provided")
    fed = federated()
    if "clusters" in opts:
        clusters = selected_clusters("scancel", opts["clusters"], st)
    else:
        clusters = None if fed else [default_cluster()]

    def cluster_ok(job: dict[str, Any]) -> bool:
        return clusters is None or job["cluster"] in clusters

    targets: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    if tokens:
        for token in tokens:
            for cluster in clusters or [default_cluster()]:
                ref = find_job_ref(st, token, cluster, clusters is None)
                if ref is None:
                    continue
                job = job_by_seq(st, ref[0])
                task = None
                if ref[1] is not None:
                    task = next(t for t in job["tasks"] if t["index"] == ref[1])
                if not names or job["name"] in names:
                    targets.append((job, task))
    else:
        targets = [(job, None) for job in st["jobs"] if cluster_ok(job) and job["name"] in names]
    for job, task in targets:
        if cancel_unit(job, task):
            unit = display_id(job) if task is None else f"{job['id']}_{task['index']}"
            record["cancelled"].append({"id": unit, "cluster": job["cluster"]})
    return 0


SCANCEL_DOC = None


# --------------------------------------------------------------------------- squeue

SQUEUE_OPTIONS = [
    Opt("clusters", "M", True),
    Opt("noheader", "h", False),
    Opt("jobs", "j", True),
    Opt("name", "n", True),
    Opt("states", "t", True),
    Opt("format", "o", True),
    Opt("help", None, False),
]
SQUEUE_DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
SQUEUE_HEADERS = {
    "i": "JOBID", "A": "JOBID", "j": "NAME", "T": "STATE", "t": "ST", "P": "PARTITION",
    "r": "REASON", "R": "NODELIST(REASON)", "u": "USER", "M": "TIME", "D": "NODES",
    "C": "CPUS", "a": "ACCOUNT", "q": "QOS", "E": "DEPENDENCY", "l": "TIME_LIMIT",
    "k": "COMMENT", "Z": "WORK_DIR",
}
COMPACT_STATES = {"PENDING": "PD", "RUNNING": "R", "COMPLETED": "CD", "FAILED": "F",
                  "CANCELLED": "CA", "TIMEOUT": "TO"}
FORMAT_TOKEN = re.compile(r"%(\.)?(-)?(\d*)([A-Za-z%])")


def squeue_job_id(job: dict[str, Any]) -> str:
    if job["array"] is None:
        return str(job["id"])
    running = [t["index"] for t in job["tasks"] if t["state"] == "RUNNING"]
    return f"{job['id']}_{running[0]}" if running else display_id(job)


def squeue_value(letter: str, job: dict[str, Any]) -> str:
    state = job["state"]
    reason = job["reason"] if state == "PENDING" else "None"
    values = {
        "i": squeue_job_id(job),
        "A": str(job["id"]),
        "j": job["name"],
        "T": state,
        "t": COMPACT_STATES.get(state, state),
        "P": job["partition"],
        "r": reason,
        "R": f"({reason})" if state == "PENDING" else NODE_NAME,
        "u": user_name(),
        "M": "0:00",
        "D": "1",
        "C": str(job["cpus_per_task"] or 1),
        "a": job["account"] or "(null)",
        "q": job["qos"] or "normal",
        "E": job["dependency"] or "(null)",
        "l": job["time"] or "UNLIMITED",
        "k": job["comment"] or "(null)",
        "Z": job["workdir"],
    }
    return values.get(letter, "")


def render_squeue(fmt: str, job: dict[str, Any] | None) -> str:
    """One line of squeue output (job None: the header)."""

    def field(match: re.Match[str]) -> str:
        right, left, size, letter = match.groups()
        if letter == "%":
            return "%"
        text = SQUEUE_HEADERS.get(letter, "") if job is None else squeue_value(letter, job)
        if not size:
            return text
        width = int(size)
        text = text[:width]
        return text.rjust(width) if right and not left else text.ljust(width)

    return FORMAT_TOKEN.sub(field, fmt)


def squeue_handler(argv: list[str], st: dict[str, Any], record: dict[str, Any],
                   store: Store, out: list[str]) -> int:
    found, _ = getopt("squeue", argv, SQUEUE_OPTIONS, permute=True, usage_exit=1)
    help_requested(found, SQUEUE_DOC)
    opts = dict(found)
    clusters = selected_clusters("squeue", opts.get("clusters"), st)
    fmt = opts.get("format") or SQUEUE_DEFAULT_FORMAT
    wanted_ids = [t for t in (opts.get("jobs") or "").split(",") if t]
    wanted_names = {n for n in (opts.get("name") or "").split(",") if n}
    states = squeue_states(opts.get("states"))
    fed = federated()
    for position, cluster in enumerate(clusters):
        if "clusters" in opts:
            if position:
                out.append("")
            out.append(f"CLUSTER: {cluster}")
        jobs = [j for j in st["jobs"] if j["cluster"] == cluster]
        if wanted_ids:
            refs = {find_job_ref(st, t, cluster, fed) for t in wanted_ids}
            if len(wanted_ids) == 1 and None in refs and "clusters" not in opts:
                raise Exit(1, "slurm_load_jobs error: Invalid job id specified")
            seqs = {ref[0] for ref in refs if ref is not None}
            jobs = [j for j in jobs if j["seq"] in seqs]
        if wanted_names:
            jobs = [j for j in jobs if j["name"] in wanted_names]
        if "noheader" not in opts:
            out.append(render_squeue(fmt, None))
        for job in jobs:
            if job["state"] in states:
                out.append(render_squeue(fmt, job))
    return 0


def squeue_states(value: str | None) -> set[str]:
    """-t/--states: "all", or states by name or compact code, comma-separated (default PD,R)."""
    if value is None:
        return {"PENDING", "RUNNING"}
    if value.lower() == "all":
        return set(COMPACT_STATES)
    codes = {code: name for name, code in COMPACT_STATES.items()}
    wanted = set()
    for item in value.upper().split(","):
        name = codes.get(item, item)
        if name not in COMPACT_STATES:
            raise Exit(1, f"squeue: error: Invalid job state specified: {item}")
        wanted.add(name)
    return wanted


SQUEUE_DOC = None


# --------------------------------------------------------------------------- sacct

SACCT_OPTIONS = [
    Opt("clusters", "M", True),
    Opt("jobs", "j", True),
    Opt("noheader", "n", False),
    Opt("parsable2", "P", False),
    Opt("parsable", "p", False),
    Opt("allocations", "X", False),
    Opt("name", None, True),
    Opt("format", "o", True),
    Opt("help", None, False),
]
SACCT_FIELDS = {  # name -> width (negative: left-justified), as sacct.c
    "jobid": ("JobID", -12), "jobidraw": ("JobIDRaw", -12), "jobname": ("JobName", 10),
    "state": ("State", 10), "exitcode": ("ExitCode", 8), "cluster": ("Cluster", 10),
    "partition": ("Partition", 10), "account": ("Account", 10),
    "alloccpus": ("AllocCPUS", 10), "qos": ("QOS", 10), "reason": ("Reason", 22),
    "workdir": ("WorkDir", 20), "comment": ("Comment", 14),
}
SACCT_DEFAULT = "jobid,jobname,partition,account,alloccpus,state,exitcode"


def sacct_state(state: str, cancelled_by: int | None) -> str:
    if state == "CANCELLED" and cancelled_by is not None:
        return f"CANCELLED by {cancelled_by}"
    return state


def sacct_rows(job: dict[str, Any], allocations_only: bool) -> list[dict[str, Any]]:
    base = {
        "jobname": job["name"], "cluster": job["cluster"], "partition": job["partition"],
        "account": job["account"], "qos": job["qos"] or "normal",
        "workdir": job["workdir"], "comment": job["comment"],
    }

    def row(jobid: str, raw: int, state: str, exit_code: Any, sig: Any, started: bool,
            reason: str) -> list[dict[str, Any]]:
        main = dict(base, jobid=jobid, jobidraw=str(raw),
                    state=sacct_state(state, job["cancelled_by"]),
                    exitcode=f"{exit_code or 0}:{sig or 0}",
                    alloccpus=str(job["cpus_per_task"] or 1) if started else "0",
                    reason=reason)
        rows = [main]
        if started and not allocations_only and state != "RUNNING":
            rows.append(dict(main, jobid=f"{jobid}.batch", jobidraw=f"{raw}.batch",
                             jobname="batch", partition=None, qos=None, comment=None,
                             state=state if state != "TIMEOUT" else "CANCELLED",
                             reason=None))
        return rows

    reason = job["reason"] if job["state"] == "PENDING" else "None"
    if job["array"] is None:
        return row(str(job["id"]), job["id"], job["state"], job["exit_code"], job["signal"],
                   job["run_order"] is not None and job["state"] != "PENDING", reason)
    started = [t for t in job["tasks"] if t["id"] is not None]
    if not started:
        return row(display_id(job), job["id"], job["state"], 0, 0, False, reason)
    rows: list[dict[str, Any]] = []
    for task in job["tasks"]:
        ran = task["id"] is not None
        rows += row(f"{job['id']}_{task['index']}", task["id"] or job["id"], task["state"],
                    task["exit_code"], task["signal"], ran, "None")
    return rows


def sacct_handler(argv: list[str], st: dict[str, Any], record: dict[str, Any],
                  store: Store, out: list[str]) -> int:
    found, _ = getopt("sacct", argv, SACCT_OPTIONS, permute=True, usage_exit=1)
    help_requested(found, SACCT_DOC)
    opts = dict(found)
    clusters = selected_clusters("sacct", opts.get("clusters"), st)
    fields = []
    for spec in (opts.get("format") or SACCT_DEFAULT).split(","):
        if not spec:
            continue
        name, _, width = spec.partition("%")
        key = name.lower()
        if key not in SACCT_FIELDS:
            raise Exit(1, f'sacct: error: Invalid field requested: "{name}"')
        title, default_width = SACCT_FIELDS[key]
        fields.append((key, title, int(width) if width.lstrip("-").isdigit() else default_width))
    parsable = "parsable2" in opts or "parsable" in opts
    trailing = "parsable" in opts and "parsable2" not in opts
    wanted = [t for t in (opts.get("jobs") or "").split(",") if t]
    names = {n for n in (opts.get("name") or "").split(",") if n}

    def emit(values: list[str | None]) -> None:
        if parsable:
            text = "|".join(v or "" for v in values)
            out.append(text + "|" if trailing else text)
            return
        cells = []
        for (_, _, width), value in zip(fields, values, strict=True):
            size = abs(width)
            text = " " if value is None else value
            if value is not None and len(text) > size:
                text = text[:size - 1] + "+"
            cells.append((text.rjust(size) if width > 0 else text.ljust(size)) + " ")
        out.append("".join(cells))

    if "noheader" not in opts:
        emit([title for _, title, _ in fields])
        if not parsable:
            out.append("".join("-" * abs(width) + " " for _, _, width in fields))
    fed = federated()
    for job in st["jobs"]:
        if job["cluster"] not in clusters:
            continue
        if names and job["name"] not in names:
            continue
        rows = sacct_rows(job, "allocations" in opts)
        if wanted:
            refs = [find_job_ref(st, t, job["cluster"], fed) for t in wanted]
            refs = [r for r in refs if r is not None and r[0] == job["seq"]]
            if not refs:
                continue
            if all(r[1] is not None for r in refs) and job["array"] and rows[0]["jobid"][-1] != "]":
                keep = {f"{job['id']}_{r[1]}" for r in refs}
                rows = [r for r in rows if r["jobid"].split(".")[0] in keep]
        for r in rows:
            emit([r.get(key) for key, _, _ in fields])
    return 0


SACCT_DOC = None


# --------------------------------------------------------------------------- module


def module_handler(argv: list[str], st: dict[str, Any], record: dict[str, Any],
                   store: Store, out: list[str]) -> int:
    return 0


# --------------------------------------------------------------------------- entry points

HANDLERS = {
    "sbatch": (sbatch_handler, True),
    "scancel": (scancel_handler, True),
    "squeue": (squeue_handler, False),
    "sacct": (sacct_handler, False),
    "module": (module_handler, False),
}


def main(tool: str, doc: str | None = None) -> int:
    """Run one of the queue shims: record the call, update the state, print, exit."""
    globals()[f"{tool.upper()}_DOC"] = doc
    handler, writes = HANDLERS[tool]
    argv = sys.argv[1:]
    store = Store(state_root(tool))
    record: dict[str, Any] = {"tool": tool, "argv": argv, "cwd": current_dir()}
    out: list[str] = []
    err: list[str] = []
    with store.locked(write=writes) as st:
        try:
            rc = handler(argv, st, record, store, out)
        except Exit as exc:
            rc = exc.code
            err = exc.err
        record["rc"] = rc
        store.append_call(record)
    send_deferred_kills()
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    if err:
        sys.stderr.write("\n".join(err) + "\n")
    return rc


# --------------------------------------------------------------------------- drain


def expand_log_pattern(pattern: str, job: dict[str, Any], task: dict[str, Any] | None,
                       unit_id: int) -> str:
    def token(match: re.Match[str]) -> str:
        pad, letter = match.groups()
        if letter == "%":
            return "%"
        values = {
            "j": unit_id,
            "A": job["id"],
            "a": task["index"] if task is not None else NO_VAL,
            "x": job["name"],
            "u": user_name(),
            "N": NODE_NAME,
        }
        if letter not in values:
            return match.group(0)
        value = values[letter]
        if isinstance(value, int) and pad:
            return str(value).zfill(int(pad))
        return str(value)

    return re.sub(r"%(\d*)([jAaxuN%])", token, pattern)


def job_environment(store: Store, job: dict[str, Any], task: dict[str, Any] | None,
                    unit_id: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    if job["export_mode"] != "NONE":
        with open(os.path.join(store.job_dir(job["seq"]), "environment"), encoding="utf-8") as fh:
            exported = json.load(fh)
        env.update({k: v for k, v in exported.items() if not k.startswith("SLURM_")})
    env.update({
        "SLURM_JOB_ID": str(unit_id),
        "SLURM_JOBID": str(unit_id),
        "SLURM_JOB_NAME": job["name"],
        "SLURM_CLUSTER_NAME": job["cluster"],
        "SLURM_JOB_PARTITION": job["partition"],
        "SLURM_SUBMIT_DIR": job["submit_dir"],
        "SLURM_JOB_NODELIST": NODE_NAME,
        "SLURM_JOB_NUM_NODES": "1",
    })
    if job["cpus_per_task"]:
        env["SLURM_CPUS_PER_TASK"] = str(job["cpus_per_task"])
    if job["account"]:
        env["SLURM_JOB_ACCOUNT"] = job["account"]
    if task is not None:
        indices = job["array"]["indices"]
        env.update({
            "SLURM_ARRAY_JOB_ID": str(job["id"]),
            "SLURM_ARRAY_TASK_ID": str(task["index"]),
            "SLURM_ARRAY_TASK_COUNT": str(len(indices)),
            "SLURM_ARRAY_TASK_MIN": str(min(indices)),
            "SLURM_ARRAY_TASK_MAX": str(max(indices)),
            "SLURM_ARRAY_TASK_STEP": str(job["array"]["step"]),
        })
    return env


def run_unit(store: Store, seq: int, task_index: int | None,
             timeout: float) -> tuple[str, str] | None:
    """Run the job (or one array task) as slurmstepd would. Returns (id text, line)."""
    import subprocess  # only drain needs it
    with store.locked() as st:
        job = job_by_seq(st, seq)
        task = None
        if task_index is not None:
            task = next(t for t in job["tasks"] if t["index"] == task_index)
            if job["state"] != "RUNNING" or task["state"] != "PENDING":
                return None
            last = task_index == job["array"]["indices"][-1]
            task["id"] = job["id"] if last else next_job_id(st, job["cluster"], job["federated"])
            task["state"] = "RUNNING"
            unit_id = task["id"]
            default_log = "slurm-%A_%a.out"
        else:
            if job["state"] != "RUNNING":
                return None
            unit_id = job["id"]
            default_log = "slurm-%j.out"
        workdir = job["workdir"]
        out_path = expand_log_pattern(job["output"] or default_log, job, task, unit_id)
        err_path = expand_log_pattern(job["error"], job, task, unit_id) if job["error"] else None
        env = job_environment(store, job, task, unit_id)
        argv = [os.path.join(store.job_dir(seq), "slurm_script"), *job["script_args"]]
        snapshot = dict(job)

    note = b""
    if not os.path.isdir(workdir):
        note = (f"slurmstepd: error: couldn't chdir to `{workdir}': No such file or directory:"
                " going to /tmp instead\n").encode()
        workdir = "/tmp"
    out_path = os.path.join(workdir, out_path)
    err_path = os.path.join(workdir, err_path) if err_path else None
    logs = [out_path] + ([err_path] if err_path and err_path != out_path else [])
    exit_code, sig, state = 0, 0, "COMPLETED"
    out_fh = err_fh = None
    try:
        out_fh = open(out_path, "wb")  # noqa: SIM115 (closed below, also on failure)
        err_fh = open(err_path, "wb") if len(logs) > 1 else None  # noqa: SIM115
    except OSError:  # a missing log directory: the job fails to launch, as on Slurm
        if out_fh is not None:
            out_fh.close()
        exit_code, sig, state, reason = 0, LAUNCH_FAILURE_SIGNAL, "FAILED", "JobLaunchFailure"
        out_fh = err_fh = None
    if out_fh is not None:
        reason = "None"
        with out_fh, (err_fh or contextlib.nullcontext()):
            (err_fh or out_fh).write(note)
            (err_fh or out_fh).flush()
            try:
                proc = subprocess.Popen(
                    argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out_fh,
                    stderr=err_fh or subprocess.STDOUT, start_new_session=True,
                )
            except OSError as exc:
                (err_fh or out_fh).write(
                    f"slurmstepd: error: execve(): {argv[0]}: {exc.strerror}\n".encode())
                exit_code, state, reason = 2, "FAILED", "NonZeroExitCode"
            else:
                with store.locked() as st:
                    job_by_seq(st, seq)["pgid"] = proc.pid
                try:
                    rc = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                    state, reason = "TIMEOUT", "TimeLimit"
                else:
                    if rc < 0:
                        exit_code, sig = 0, -rc
                    else:
                        exit_code = rc
                    if rc != 0:
                        state, reason = "FAILED", "NonZeroExitCode"

    with store.locked() as st:
        job = job_by_seq(st, seq)
        job["pgid"] = None
        target = job if task_index is None else next(
            t for t in job["tasks"] if t["index"] == task_index)
        if job["state"] == "CANCELLED" or target["state"] == "CANCELLED":
            state = "CANCELLED"
        target.update(state=state, exit_code=exit_code, signal=sig)
        if task_index is None:
            job["reason"] = reason
        else:
            target["logs"] = logs
        job["logs"] = job["logs"] + logs
    label = str(unit_id) if task is None else f"{snapshot['id']}_{task_index}"
    return label, "\t".join([label, snapshot["cluster"], snapshot["name"], state,
                             f"{exit_code}:{sig}"])


def pick_next(st: dict[str, Any], kill_default: bool,
              lines: list[str]) -> dict[str, Any] | None:
    """The first pending job (submission order) whose dependencies are satisfied.

    Jobs whose dependencies can never be satisfied are cancelled (kill on invalid
    dependency) or left pending with reason DependencyNeverSatisfied.
    """
    while True:
        cancelled = False
        for job in st["jobs"]:
            if job["state"] != "PENDING":
                continue
            status = dependency_status(st, job)
            if status == "ok":
                if job["reason"] == "Dependency":
                    job["reason"] = "None"
                return job
            if status == "wait":
                job["reason"] = "Dependency"
                continue
            kill = job["kill_on_invalid_dep"]
            if kill is None:
                kill = kill_default
            job["reason"] = "DependencyNeverSatisfied"
            if kill:
                job["state"] = "CANCELLED"
                for task in job["tasks"]:
                    task["state"] = "CANCELLED"
                lines.append("\t".join([display_id(job), job["cluster"], job["name"],
                                        "CANCELLED", "0:0"]))
                cancelled = True
                break
        if not cancelled:
            return None


def finish_job(job: dict[str, Any]) -> None:
    """Settle a job after its script (or every array task) has run."""
    if job["array"] is None:
        if job["state"] == "RUNNING":  # only if run_unit could not start it
            job["state"] = "FAILED"
        return
    if job["state"] == "CANCELLED":
        for task in job["tasks"]:
            if task["state"] in ("PENDING", "RUNNING"):
                task["state"] = "CANCELLED"
        return
    states = [t["state"] for t in job["tasks"]]
    job["exit_code"] = max(t["exit_code"] or 0 for t in job["tasks"])
    job["signal"] = max(t["signal"] or 0 for t in job["tasks"])
    if all(state == "COMPLETED" for state in states):
        job["state"], job["reason"] = "COMPLETED", "None"
    elif "CANCELLED" in states:
        job["state"] = "CANCELLED"
    else:
        job["state"], job["reason"] = "FAILED", "NonZeroExitCode"


DRAIN_OPTIONS = [
    Opt("max-jobs", None, True),
    Opt("timeout", None, True),
    Opt("help", None, False),
]


def drain_main(doc: str | None = None) -> int:
    argv = sys.argv[1:]
    store = Store(state_root("drain"))
    record = {"tool": "drain", "argv": argv, "cwd": current_dir()}
    try:
        found, rest = getopt("drain", argv, DRAIN_OPTIONS, permute=True, usage_exit=2)
        help_requested(found, doc)
        opts = dict(found)
        max_jobs = int(opts.get("max-jobs") or 1000)
        timeout = float(opts.get("timeout") or 300)
        if rest:
            raise Exit(2, f"drain: unexpected argument '{rest[0]}'")
    except (Exit, ValueError) as exc:
        code = exc.code if isinstance(exc, Exit) else 2
        lines = exc.err if isinstance(exc, Exit) else [f"drain: error: {exc}"]
        with store.locked(write=False):
            store.append_call(dict(record, rc=code))
        if lines:
            sys.stderr.write("\n".join(lines) + "\n")
        return code
    with store.locked(write=False):
        store.append_call(dict(record, rc=0))
    kill_default = os.environ.get("LTSFLOW_SHIM_KILL_INVALID_DEPEND", "").lower() in (
        "1", "yes", "true")

    def say(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    ran = 0
    while True:
        lines: list[str] = []
        with store.locked() as st:
            job = pick_next(st, kill_default, lines)
            if job is not None and ran < max_jobs:
                st["started"] += 1
                job.update(state="RUNNING", reason="None", run_order=st["started"])
                seq = job["seq"]
                tasks = [t["index"] for t in job["tasks"]] if job["array"] else [None]
            else:
                seq = None
        for line in lines:
            say(line)
        if seq is None:
            if job is not None:
                sys.stderr.write(f"drain: stopped after {ran} jobs (--max-jobs {max_jobs})\n")
            break
        ran += 1
        for task_index in tasks:
            result = run_unit(store, seq, task_index, timeout)
            if result is not None:
                say(result[1])
        with store.locked() as st:
            finish_job(job_by_seq(st, seq))
    with store.locked(write=False) as st:
        for job in st["jobs"]:
            if job["state"] == "PENDING":
                say("\t".join([display_id(job), job["cluster"], job["name"], "PENDING", "-"]))
    return 0


# --------------------------------------------------------------------------- singularity

CONTAINER_VALUE_OPTIONS = {
    "-B", "--bind", "--pwd", "-H", "--home", "--env", "--env-file", "-o", "--overlay",
    "--security", "--network", "--network-args", "--hostname", "-W", "--workdir", "-S",
    "--scratch", "--app", "--mount", "--no-mount", "--dns", "--fusemount", "--add-caps",
    "--drop-caps", "--cpus", "--memory", "--apply-cgroups",
}
CONTAINER_FLAG_OPTIONS = {
    "-e", "--cleanenv", "-c", "--contain", "-C", "--containall", "--nv", "--nvccli",
    "--rocm", "--no-home", "-w", "--writable", "--writable-tmpfs", "-u", "--userns", "-f",
    "--fakeroot", "--compat", "-i", "--ipc", "-p", "--pid", "--no-privs", "--no-init",
    "--no-eval", "--no-https", "--disable-cache", "--keep-privs", "--uts", "--no-umask",
    "--unsquash", "--allow-setuid",
}
CONTAINER_GLOBAL_FLAGS = {"-d", "--debug", "-q", "--quiet", "-s", "--silent", "-v",
                          "--verbose", "--nocolor"}
IMAGE_URI = re.compile(r"(docker|library|oras|shub|docker-archive|oci-archive|docker-daemon"
                       r"|https?)://.+")


def path_without_shims(path: str) -> str:
    keep = []
    for entry in path.split(os.pathsep):
        if entry and os.path.realpath(entry) == SHIMS_DIR:
            continue
        keep.append(entry)
    return os.pathsep.join(keep)


DEFAULT_MOUNTS = ("home", "tmp", "cwd")
"""The default binds a container path can be reached through (Singularity CE and Apptainer, default
singularity.conf): $HOME, /tmp and /var/tmp, and the working directory. /dev, /proc, /sys and a few
files of /etc are bound too, and the image has its own root filesystem: IMAGE_OWN stands for both."""
IMAGE_OWN = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/opt", "/proc",
             "/run", "/sbin", "/srv", "/sys", "/usr")


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def visible_directories(tool: str, values: dict[str, list[str]], options: list[str],
                        cwd: str) -> tuple[list[str], str | None]:
    """The host directories a container sees at their own paths, and the error when a bind is refused.

    A bind is SRC[:DEST[:OPTS]], several joined by ","; from -B/--bind, then $SINGULARITY_BIND /
    $APPTAINER_BIND (and the older *_BINDPATH). This shim binds only at the same path (DEST = SRC)."""
    specs = [spec for value in values.get("-B", []) + values.get("--bind", []) for spec in value.split(",")]
    prefix = tool.upper()
    for name in (f"{prefix}_BIND", f"{prefix}_BINDPATH"):
        specs += [spec for spec in os.environ.get(name, "").split(",") if spec]
    visible = []
    for spec in specs:
        source, _, rest = spec.partition(":")
        destination = rest.partition(":")[0] or source
        if os.path.realpath(destination) != os.path.realpath(source):
            return [], (f"FATAL:   the ltsflow {tool} shim binds a directory at its own path only, not"
                        f" {source} at {destination}")
        if not os.path.exists(source):
            return [], (f"FATAL:   container creation failed: mount {source}->{destination} error: while"
                        f" mounting {source}: mount source {source} doesn't exist")
        visible.append(os.path.realpath(source))
    off = {m.strip() for m in os.environ.get("LTSFLOW_SHIM_NO_MOUNT", "").split(",")}
    off |= {m.strip() for value in values.get("--no-mount", []) for m in value.split(",")}
    if any(opt in options for opt in ("-c", "--contain", "-C", "--containall")):
        off |= set(DEFAULT_MOUNTS)
    if "--no-home" in options:
        off.add("home")
    if "home" not in off and os.environ.get("HOME"):
        visible.append(os.path.realpath(os.environ["HOME"]))
    if "tmp" not in off:
        visible += ["/tmp", "/var/tmp"]
    if "cwd" not in off:
        visible.append(os.path.realpath(cwd))
    return visible + list(IMAGE_OWN), None


def unseen_paths(command: list[str], cwd: str, visible: list[str]) -> list[str]:
    """The arguments after the tool that name a host path the container cannot see.

    An argument (or the value of --opt=VALUE, or the file of @FILE) is taken as a path when it is
    absolute, holds a "/", or names something in the working directory; it is seen when, with every
    symlink resolved as on the host, it lies in a visible directory. A symlink into a directory that
    is not bound is not seen: inside a container it points at nothing."""
    unseen = []
    for argument in command[1:]:
        candidate = argument.partition("=")[2] if argument.startswith("-") else argument.removeprefix("@")
        if not candidate:
            continue
        joined = os.path.join(cwd, candidate)
        if not (candidate.startswith("/") or "/" in candidate or os.path.lexists(joined)):
            continue
        resolved = os.path.realpath(joined)
        if not any(_within(resolved, directory) for directory in visible):
            unseen.append(argument)
    return unseen


def container_main(tool: str) -> int:
    import shutil
    argv = sys.argv[1:]
    store = Store(state_root(tool))
    cwd = current_dir()
    record: dict[str, Any] = {"tool": tool, "argv": argv, "cwd": cwd, "subcommand": None,
                              "image": None, "command": None, "options": [],
                              "missing": False}

    def finish(code: int, message: str | None = None) -> int:
        record["rc"] = code
        with store.locked(write=False):
            store.append_call(record)
        if message:
            sys.stderr.write(message + "\n")
        return code

    i = 0
    while i < len(argv) and argv[i] in CONTAINER_GLOBAL_FLAGS:
        i += 1
    if i >= len(argv):
        return finish(255, f"FATAL:   the ltsflow {tool} shim supports only 'run' and 'exec'")
    sub = argv[i]
    record["subcommand"] = sub
    if sub not in ("run", "exec"):
        return finish(255, f"FATAL:   the ltsflow {tool} shim supports only 'run' and 'exec',"
                           f" not '{sub}'")
    i += 1
    options: list[str] = []
    values: dict[str, list[str]] = {}
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        name, has_value, value = arg.partition("=")
        if name in CONTAINER_VALUE_OPTIONS:
            if not has_value:
                if i + 1 >= len(argv):
                    return finish(255, f"Error: flag needs an argument: {arg}")
                i += 1
                value = argv[i]
            options += [name, value]
            values.setdefault(name, []).append(value)
        elif arg in CONTAINER_FLAG_OPTIONS:
            options.append(arg)
        elif arg.startswith("--"):
            return finish(255, f"Error: unknown flag: {name}")
        else:
            return finish(255, f"Error: unknown shorthand flag: '{arg[1:2]}' in {arg}")
        i += 1
    record["options"] = options
    if i >= len(argv):
        return finish(255, f"FATAL:   {tool} {sub}: requires an image argument")
    image = argv[i]
    record["image"] = image
    command = argv[i + 1:]
    record["command"] = command
    if not IMAGE_URI.fullmatch(image):
        image_path = os.path.join(cwd, image)
        if not os.path.exists(image_path):
            return finish(255, f"FATAL:   could not open image {image_path}: failed to retrieve"
                               f" path for {image_path}: lstat {image_path}: no such file or"
                               " directory")
    if not command:
        return finish(255, f"FATAL:   the ltsflow {tool} shim needs a command after the image"
                           " (it cannot run an image's default runscript)")
    visible, refused = visible_directories(tool, values, options, cwd)
    if refused:
        return finish(255, refused)
    record["visible"] = visible
    program = command[0]
    missing = {m.strip() for m in os.environ.get("LTSFLOW_SHIM_MISSING", "").split(",")}
    host_path = path_without_shims(os.environ.get("PATH", ""))
    found = None
    if os.path.basename(program) not in missing:
        if "/" in program:
            candidate = os.path.join(cwd, program)
            found = candidate if os.access(candidate, os.X_OK) else None
        else:
            found = shutil.which(program, path=host_path)
    if found is None:
        record["missing"] = True
        if "/" in program:
            return finish(255, f"FATAL:   stat {program}: no such file or directory")
        return finish(255, f'FATAL:   "{program}": executable file not found in $PATH')

    prefix = "APPTAINERENV_" if tool == "apptainer" else "SINGULARITYENV_"
    cleanenv = any(opt in options for opt in ("-e", "--cleanenv", "-C", "--containall"))
    record["cleanenv"] = cleanenv
    if cleanenv:
        env = {k: os.environ[k] for k in ("HOME", "USER", "LANG", "TERM") if k in os.environ}
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    env["PATH"] = host_path
    for key, value in os.environ.items():
        if key.startswith(prefix) and len(key) > len(prefix):
            env[key[len(prefix):]] = value
    for item in values.get("--env", []):
        for pair in item.split(","):
            key, eq, value = pair.partition("=")
            if eq:
                env[key] = value
    marker = "APPTAINER" if tool == "apptainer" else "SINGULARITY"
    env[f"{marker}_CONTAINER"] = image
    env[f"{marker}_NAME"] = os.path.basename(image.split("://")[-1])
    workdir = os.path.join(cwd, values.get("--pwd", [cwd])[-1])
    record["executable"] = found
    unseen = unseen_paths(command, cwd, visible)
    if unseen:
        record["unseen"] = unseen
        return finish(1, "\n".join(f"{program}: {path}: No such file or directory (not under a directory"
                                    f" bound into the container: {', '.join(visible[:-len(IMAGE_OWN)])})"
                                    for path in unseen))
    record["rc"] = None  # the exec'd tool's own status is the shim's status
    with store.locked(write=False):
        store.append_call(record)
    try:
        os.chdir(workdir)
        os.execve(found, [program, *command[1:]], env)
    except OSError as exc:
        sys.stderr.write(f"FATAL:   {program}: {exc.strerror}\n")
        return 255
    return 0  # not reached


# --------------------------------------------------------------------------- recorded tools


def passthrough_main(tool: str) -> int:
    """Record argv and cwd of a call of the real `tool`, then exec it (first on PATH past the shims)."""
    import shutil
    argv = sys.argv[1:]
    store = Store(state_root(tool))
    found = shutil.which(tool, path=path_without_shims(os.environ.get("PATH", "")))
    record: dict[str, Any] = {"tool": tool, "argv": argv, "cwd": current_dir(), "executable": found,
                              "rc": None if found else 127}
    with store.locked(write=False):
        store.append_call(record)
    if found is None:
        sys.stderr.write(f"{tool}: command not found\n")
        return 127
    os.execv(found, [tool, *argv])
    return 0  # not reached
