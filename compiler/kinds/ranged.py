"""Ranged staging, the sync-in kind's when its remote says `staging: ranged`: for a crop, only the image's
header and the rows the crop needs leave the object store, not the whole image.

The sync-in step fetches each image's header (or, for an image unfit for ranges, the whole image) into
the run directory, where the image would be; the steps that read only headers read it there. A rows job
on the sync-in step's partition then fetches the rows each image's crops need into one window of the
image, and writes the batch file of the step that reads rows (window and shifted pixel per object); that
step waits for the rows job instead. Both run `fetch_rows.sh`, with rclone (and curl, when it has it).

The steps it stages for are found by what their kinds read of an image (`Kind.reads_image`), not by name.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..graph import Dependency, StepScript, bind_options, container_command, remote_settings, renamed
from ..layout import FAILED, PINNED, RUN_DIR
from ..words import ObjectField, Variable, Word
from . import field_of, kind_of

if TYPE_CHECKING:
    from ..plan import Job
    from ..spec import Spec

SCRIPT = "fetch_rows.sh"
"""Ranged staging's script: each image's header (as the sync-in job), then the rows crops need."""


def ranged_remote(spec: Spec, name: str) -> str | None:
    """The remote of step `name`, when it stages by ranges."""
    remote = spec.steps[name].remote
    return remote if remote is not None and spec.remotes[remote].staging == "ranged" else None


def refine(spec: Spec, name: str, jobs: tuple[Job, ...]) -> tuple[Job, ...]:
    """Step `name`'s jobs and the others as ranged staging runs them (unchanged without it)."""
    remote = ranged_remote(spec, name)
    if remote is None:
        return jobs
    stager = next(job for job in jobs if job.name == name)
    header_readers = tuple(job.name for job in jobs if kind_of(job.action).reads_image == "header")
    rows_readers = tuple(job for job in jobs if kind_of(job.action).reads_image == "rows")
    if not header_readers or len(rows_readers) != 1:
        raise ValueError(f"ranged staging needs a step that reads images' headers and one that reads their rows, "
                         f"not {len(header_readers)} and {len(rows_readers)}")
    (rows_reader,) = rows_readers
    names = [job.name for job in jobs]
    if names.index(rows_reader.name) < names.index(header_readers[-1]):
        raise ValueError(f"ranged staging needs step {rows_reader.name!r}, which reads rows, to come after "
                         f"{header_readers[-1]!r}, which reads headers")
    source = Word.of(f"{remote}:", ObjectField(field_of(spec, "key", spec.steps[name])))
    script = Word.of(Variable("SCRIPT_DIR"), "/", SCRIPT)
    binds = bind_options(stager.binds)
    # The header is staged where the image would be (PINNED): a header reader's arguments stay as planned.
    headers = (script, *binds, Word.of("--headers"), Word.of(RUN_DIR, f"/tasks/{stager.name}.tsv"))
    rows_name = f"{stager.name}_rows"
    rows_batch = rows_reader.step_command[-1]
    rows_command = (script, *binds, Word.of("--rows"), Word.of(RUN_DIR, f"/tasks/{rows_name}.tsv"), rows_batch)
    rows = replace(
        renamed(stager, rows_name, tuple(Dependency("afterok", reader) for reader in header_readers)),
        per_object=True, command=rows_command, step_command=rows_command, file_list=None, script=SCRIPT,
        task_arguments=(FAILED, source, PINNED, *rows_reader.task_arguments[2:]),
    )
    planned: list[Job] = []
    for job in jobs:
        if job is stager:
            job = replace(job, per_object=True, command=headers, step_command=headers, file_list=None,
                          script=SCRIPT, task_arguments=(FAILED, source, PINNED))
        elif job is rows_reader:
            job = replace(renamed(job, job.name, _waiting_for(job, rows_name, header_readers)), task_arguments=())
        planned.append(job)
        if job.name == header_readers[-1]:
            planned.append(rows)
    return tuple(planned)


def _waiting_for(job: Job, rows: str, header_readers: tuple[str, ...]) -> tuple[Dependency, ...]:
    """The rows reader's dependencies with the rows job instead of the header readers: those it waits
    for itself become one on the rows job, which waits for all of them (and if it waits for none itself,
    it waits for the rows job all the same)."""
    depends_on = tuple(dict.fromkeys(Dependency(d.kind, rows if d.job in header_readers else d.job)
                                     for d in job.depends_on))
    return depends_on if any(d.job == rows for d in depends_on) else (*depends_on, Dependency("afterok", rows))


def scripts(spec: Spec, name: str) -> tuple[StepScript, ...]:
    """fetch_rows.sh, when step `name` stages by ranges: configured as that step's script is."""
    remote = ranged_remote(spec, name)
    if remote is None:
        return ()
    step = spec.steps[name]
    return (StepScript(name=SCRIPT, template="fetch_rows.sh.j2", tool="rclone", modules=step.modules,
                       container=container_command(step), image=step.container.image if step.container else "",
                       remotes=(remote_settings(spec, remote),), hdu=spec.objects.hdu),)
