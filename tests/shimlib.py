"""Python side of the fake Slurm shims in tests/shims/.

A ``ShimState`` is one state directory: the queue, the copies of submitted scripts and
``calls.jsonl`` (one record per shim call). Typical use::

    state = ShimState(tmp_path / "slurm")
    env = state.env()                       # shims first on PATH, LTSFLOW_SHIM_STATE set
    subprocess.run(["bash", "schedule.sh"], env=env, check=True)
    assert [c["argv"] for c in state.sbatch_calls()] == [...]
    result = state.drain(env)               # run the queue as Slurm would
    assert [j["state"] for j in state.jobs()] == ["COMPLETED", ...]

The environment knobs the shims read are listed in tests/shims/_slurmsim.py.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SHIMS_DIR = Path(__file__).resolve().parent / "shims"
STATE_ENV = "LTSFLOW_SHIM_STATE"
PYCACHE_ENV = "LTSFLOW_SHIM_PYCACHE"
SHIM_TOOLS = ("sbatch", "scancel", "squeue", "sacct", "module", "singularity", "apptainer",
              "drain", "rclone")


_PYCACHE: list[Path] = []


def shims_pycache() -> Path:
    """The directory where every shim run from this process keeps its compiled Python (removed at
    exit): a fresh state directory then compiles nothing, where each state's own cache took the
    first shim call of every test some 0.1 s."""
    if not _PYCACHE:
        directory = Path(tempfile.mkdtemp(prefix="ltsflow-shims-pycache-"))
        atexit.register(shutil.rmtree, directory, True)
        _PYCACHE.append(directory)
    return _PYCACHE[0]


class ShimState:
    """One fake-Slurm state directory (created if missing)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ environment

    def env(self, base_env: Mapping[str, str] | None = None, *, fast_python: bool = True,
            **extra: str) -> dict[str, str]:
        """An environment for running code against the shims.

        ``base_env`` (default: ``os.environ``) with the shims directory first on PATH
        (any other occurrence removed), ``LTSFLOW_SHIM_STATE`` set, and ``extra`` added
        (e.g. ``LTSFLOW_SHIM_FEDERATED="0"``), and the shims' compiled Python shared by the
        session (``shims_pycache``). With ``fast_python`` a directory holding
        only ``python3`` -> the running interpreter comes right after the shims, so the
        shims' ``#!/usr/bin/env python3`` does not go through a slow pyenv wrapper.
        """
        env = dict(os.environ if base_env is None else base_env)
        entries = [p for p in env.get("PATH", os.defpath).split(os.pathsep)
                   if p and Path(p).resolve() != SHIMS_DIR]
        front = [str(SHIMS_DIR)]
        if fast_python:
            front.append(str(self._python_dir()))
        env["PATH"] = os.pathsep.join(front + entries)
        env[STATE_ENV] = str(self.path)
        env[PYCACHE_ENV] = str(shims_pycache())
        env.update(extra)
        return env

    def _python_dir(self) -> Path:
        bin_dir = self.path / ".python"
        link = bin_dir / "python3"
        if not link.exists():
            bin_dir.mkdir(exist_ok=True)
            link.symlink_to(Path(sys.executable).resolve())
        return bin_dir

    # ------------------------------------------------------------------ records

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        """Every shim call recorded so far, in order (optionally of one tool)."""
        path = self.path / "calls.jsonl"
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                   if line.strip()]
        return [r for r in records if tool is None or r["tool"] == tool]

    def sbatch_calls(self) -> list[dict[str, Any]]:
        """Each sbatch call; "environment" is the sorted names of the variables it was given."""
        return self.calls("sbatch")

    def calls_text(self) -> str:
        """The raw calls.jsonl (to assert that no secret value was ever written)."""
        path = self.path / "calls.jsonl"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def jobs(self) -> list[dict[str, Any]]:
        """Every job ever submitted, in submission order.

        Keys: seq, id, cluster, name, state (PENDING, RUNNING, COMPLETED, FAILED,
        CANCELLED, TIMEOUT), reason, exit_code, signal, partition, account, qos, time,
        mem, cpus_per_task, comment, argv, options, script, script_args, submit_dir,
        workdir, output, error, dependency (the text given), dependencies (parsed, each id
        with the job it resolved to or None), kill_on_invalid_dep (True/False/None when
        not given), export_mode, exports ([{"name", "set"}]), array (None or spec,
        indices, throttle, step), tasks ([{index, id, state, exit_code, signal, logs}]),
        logs (every log path written), run_order (1, 2, ... in the order drain started
        them; None if never run), cancelled_by (uid for scancel).
        """
        path = self.path / "state.json"
        if not path.exists():
            return []
        return json.loads(path.read_text(encoding="utf-8"))["jobs"]

    def job(self, job_id: int | str, cluster: str | None = None) -> dict[str, Any]:
        """The one job with this id (and cluster, when ids repeat across clusters)."""
        matches = [j for j in self.jobs() if j["id"] == int(job_id)
                   and (cluster is None or j["cluster"] == cluster)]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} jobs with id {job_id} cluster {cluster}")
        return matches[0]

    def queued(self) -> list[dict[str, Any]]:
        """Jobs still PENDING or RUNNING."""
        return [j for j in self.jobs() if j["state"] in ("PENDING", "RUNNING")]

    def script_copy(self, job: Mapping[str, Any]) -> Path:
        """The copy of the batch script taken when the job was submitted."""
        return self.path / "jobs" / str(job["seq"]) / "slurm_script"

    # ------------------------------------------------------------------ running

    def run(self, tool: str, *args: str, env: Mapping[str, str] | None = None,
            cwd: str | os.PathLike[str] | None = None, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run one shim (``tool`` in SHIM_TOOLS) and capture its output."""
        if tool not in SHIM_TOOLS:
            raise ValueError(f"unknown shim {tool!r}")
        return subprocess.run(
            [str(SHIMS_DIR / tool), *args], env=dict(env) if env is not None else self.env(),
            cwd=cwd, input=input if input is not None else "", capture_output=True,
            text=True, timeout=timeout, check=False,
        )

    def drain(self, env: Mapping[str, str] | None = None, *, max_jobs: int | None = None,
              job_timeout: float | None = None, cwd: str | os.PathLike[str] | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run the queue to completion as Slurm would (see tests/shims/drain)."""
        args = []
        if max_jobs is not None:
            args += ["--max-jobs", str(max_jobs)]
        if job_timeout is not None:
            args += ["--timeout", str(job_timeout)]
        return self.run("drain", *args, env=env, cwd=cwd, timeout=timeout)
