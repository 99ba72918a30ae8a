"""Parts of the job graph that both the planner and the kinds' planning build.

A job's dependencies and the sbatch options made of them, the binds of its container, the step
scripts and the remotes they configure. The planner (`plan.py`) assembles them into jobs and the
JobGraph; a kind that rewrites the planned jobs (`Kind.refine`, as ranged staging does) builds them
too. They live here, apart from both, so that neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .rclone import rclone_setting
from .words import Part, Text, Variable, Word

if TYPE_CHECKING:
    from .plan import Job
    from .spec import Spec, Step

# ----------------------------------------------------------------- dependencies and sbatch options


@dataclass(frozen=True)
class Dependency:
    kind: str
    job: str

    @property
    def accepts(self) -> tuple[str, ...]:
        """How the job waited for may end for this dependency to be met (a relay decides by it)."""
        return OUTCOMES_ACCEPTED[self.kind]


OUTCOMES_ACCEPTED = {"afterok": ("ok",), "afternotok": ("failed", "cancelled"),
                     "afterany": ("ok", "failed", "cancelled")}
"""Slurm's dependency kinds, as the outcomes (ok, failed, cancelled) that meet them."""


def dependency_option(depends_on: tuple[Dependency, ...]) -> tuple[Word, ...]:
    """`--dependency=afterok:ID[:ID],afterany:ID`: one clause per kind, all of them required."""
    by_kind: dict[str, list[str]] = {}
    for dependency in depends_on:
        by_kind.setdefault(dependency.kind, []).append(dependency.job)
    if not by_kind:
        return ()
    parts: list[str | Part] = ["--dependency="]
    for number, (kind, parents) in enumerate(by_kind.items()):
        parts.append(("," if number else "") + kind)
        for parent in parents:
            parts.extend([":", job_id_variable(parent)])
    return (Word.of(*parts),)


def job_id_variable(step: str) -> Variable:
    """The schedule.sh variable that holds a step's job id once it is submitted."""
    return Variable(f"JOB_{step}")


def is_dependency(option: Word) -> bool:
    first = option.parts[0]
    return isinstance(first, Text) and first.text.startswith("--dependency=")


def renamed(job: Job, name: str, depends_on: tuple[Dependency, ...]) -> Job:
    """`job` as another job, `name`, that waits for `depends_on`: its job name, log file and
    --dependency follow; everything else is the same until the caller replaces it."""
    options = []
    for option in job.options:
        if is_dependency(option):
            continue
        if isinstance(option.parts[0], Text) and option.parts[0].text.startswith("--job-name="):
            option = _renamed_word(option, job.name, name)
        elif isinstance(option.parts[0], Text) and option.parts[0].text.startswith("--output="):
            option = Word(tuple(Text(p.text.replace(f"/logs/{job.name}-", f"/logs/{name}-"))
                                if isinstance(p, Text) else p for p in option.parts))
        options.append(option)
    return replace(job, name=name, depends_on=depends_on, job_name=_renamed_word(job.job_name, job.name, name),
                   options=(*options, *dependency_option(depends_on)))


def _renamed_word(word: Word, old: str, new: str) -> Word:
    return Word(tuple(Text(p.text.replace(f"-{old}-", f"-{new}-")) if isinstance(p, Text) else p for p in word.parts))


def bind_options(binds: tuple[Word, ...]) -> tuple[Word, ...]:
    """`--bind DIR` for each directory: how a step script is told what its container must see."""
    return tuple(word for directory in binds for word in (Word.of("--bind"), directory))


# ----------------------------------------------------------------- step scripts and remotes


@dataclass(frozen=True)
class RemoteSettings:
    """How a step script configures an rclone remote from the environment."""

    name: str
    prefix: str
    settings: tuple[tuple[str, str], ...]
    credentials: tuple[str, ...]
    limits: tuple[tuple[str, str], ...] = ()
    """rclone's global time-outs and retries for this remote: (RCLONE_ variable suffix, value)."""
    uploads: tuple[tuple[str, str], ...] = ()
    """(variable, value) set for an upload to this remote: every file below 5 GiB, S3's limit for one
    PutObject, goes up in one request, so a killed upload leaves no unfinished multipart upload."""


@dataclass(frozen=True)
class StepScript:
    """One generated step script and what it runs."""

    name: str
    template: str
    """The template that renders it."""
    tool: str
    modules: tuple[str, ...]
    container: tuple[str, ...]
    """The container runtime's command (`singularity run` or `singularity exec`), before its binds and the
    image (empty: the tool runs from PATH)."""
    image: str
    """The container image ("" without a container)."""
    remotes: tuple[RemoteSettings, ...]
    hdu: int
    settings: Any = None
    """What its template lays out beyond the tool, from its step's kind (frozen plain data), or None."""

    @property
    def launcher(self) -> tuple[str, ...]:
        """The container command the tool runs under, without binds (empty: the tool runs from PATH)."""
        return (*self.container, self.image) if self.container else ()


def container_command(step: Step) -> tuple[str, ...]:
    """The command step `step`'s tool runs under, before its binds and the image: `singularity run` or
    `singularity exec`, as its container says (empty: the step has no container, its tool runs from PATH)."""
    return (step.container.runtime, step.container.command) if step.container else ()


def tool_settings(step: Step) -> tuple[tuple[str, str], ...]:
    """(variable, value) step `step`'s job runs with: each of its rclone flags, as rclone's variable for it."""
    return tuple(rclone_setting(flag) for flag in step.rclone_flags)


def remote_prefix(remote: str) -> str:
    return f"RCLONE_CONFIG_{remote.upper()}"


SINGLE_PUT_LIMIT = "5G"
"""The largest object S3 takes in one PutObject (5 GiB), and rclone's largest --s3-upload-cutoff."""


def remote_settings(spec: Spec, name: str) -> RemoteSettings:
    remote = spec.remotes[name]
    prefix = remote_prefix(name)
    settings = [("TYPE", remote.type)]
    if remote.provider is not None:
        settings.append(("PROVIDER", remote.provider))
    if remote.endpoint is not None:
        settings.append(("ENDPOINT", remote.endpoint))
    limits = (("CONTIMEOUT", f"{remote.connect_timeout}s"), ("TIMEOUT", f"{remote.io_timeout}s"),
              ("RETRIES", str(remote.retries)), ("LOW_LEVEL_RETRIES", str(remote.low_level_retries)))
    # rclone uploads in parts from --s3-upload-cutoff (200 MiB), and from --multi-thread-cutoff (256 MiB) as well.
    uploads = ((f"{prefix}_UPLOAD_CUTOFF", SINGLE_PUT_LIMIT), ("RCLONE_MULTI_THREAD_CUTOFF", SINGLE_PUT_LIMIT)) \
        if remote.type == "s3" else ()
    return RemoteSettings(name, prefix, tuple(settings), tuple(f"{prefix}_{c}" for c in remote.credentials), limits,
                          uploads)
