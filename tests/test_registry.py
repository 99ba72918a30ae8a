"""The planner and the renderer name no kind (issue 10): what is a kind's lives in the kind.

Every name a kind brings is looked for, as a word, in the source of compiler/plan.py and
compiler/render.py: each registered kind's action, script, template and tool, and every script,
template and tool the fixture specs' plans hold (so ranged staging's fetch_rows.sh, which the
sync-in kind adds, too). The control scripts (status.sh, cancel.sh, read_messages.sh) are the
planner's own, written for every spec; the report kind runs status.sh rather than a script of its
own, so that one name is the planner's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler.build import check_spec, step_lines
from compiler.kinds import KINDS
from compiler.kinds.astronomy import CROP_KIND, WORLD_TO_PIXEL
from compiler.load import load_spec
from compiler.plan import CONTROL_SCRIPTS, Job, JobGraph, plan_jobs
from compiler.validate import validate_spec

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = sorted((ROOT / "fixtures" / "specs").glob("*.yaml"))
RANGED = ROOT / "fixtures" / "specs" / "ranged.yaml"
SOURCES = ("compiler/plan.py", "compiler/render.py")


def kinds_names() -> frozenset[str]:
    names = {name for kind in KINDS.values() for name in (kind.action, kind.script, kind.template, kind.tool)}
    for spec in FIXTURES:
        graph = check_spec(spec)
        names |= {name for script in graph.scripts for name in (script.name, script.template, script.tool)}
        names |= {name for job in graph.jobs for name in (job.action, job.script)}
    return frozenset(name for name in names if name) - set(CONTROL_SCRIPTS)


def named_in(text: str, names: frozenset[str]) -> list[str]:
    """`line N: name` for each name of `names` that `text` holds as a word: a run of letters, digits and
    `_.-` (`crop` is in `"crop":` and `a crop's`, not in `crop_width`; `rclone` is in `.rclone`)."""
    return [f"line {number}: {word}" for number, line in enumerate(text.splitlines(), start=1)
            for word in (found.strip(".-") for found in re.findall(r"[A-Za-z0-9_.-]+", line)) if word in names]


def test_the_names_looked_for_are_the_kinds() -> None:
    names = kinds_names()
    assert {"sync-in", "world-to-pixel", "crop", "sync-out", "report", "sync.sh", "get_world_2_pix.sh",
            "crop.sh.j2", "fetch_rows.sh", "fetch_rows.sh.j2", "rclone", "sky2xy", "astcrop"} <= names
    assert named_in('if step.action == "crop":  # a crop\'s key, crop_width\nfrom .rclone import x\n', names) == [
        "line 1: crop", "line 1: crop", "line 2: rclone"]


def quoted_in(text: str, names: frozenset[str]) -> list[str]:
    """`line N: name` for each name of `names` that `text` holds as a string literal."""
    return [f"line {number}: {name}" for number, line in enumerate(text.splitlines(), start=1)
            for name in sorted(names) if f'"{name}"' in line or f"'{name}'" in line]


PLAN_WORDS = frozenset(field.name for field in dataclasses.fields(Job))
"""Words of the plan's own (a job's `command`, what sbatch runs): a kind named so (the command kind) is
looked for only as a string."""


@pytest.mark.parametrize("source", SOURCES)
def test_the_planner_and_the_renderer_name_no_kind(source: str) -> None:
    text = (ROOT / source).read_text(encoding="utf-8")
    names = kinds_names()
    assert named_in(text, names - PLAN_WORDS) + quoted_in(text, names & PLAN_WORDS) == []


RENAMED = {WORLD_TO_PIXEL.action: "locate", CROP_KIND.action: "cut"}


@contextlib.contextmanager
def kinds_renamed() -> Iterator[None]:
    """World to pixel and crop registered as "locate" and "cut" (what they read and write unchanged), then
    the registry put back as it was, in its order."""
    saved = dict(KINDS)
    others = {WORLD_TO_PIXEL.action: dataclasses.replace(WORLD_TO_PIXEL, action="locate"),
              CROP_KIND.action: dataclasses.replace(CROP_KIND, action="cut")}
    KINDS.clear()
    KINDS.update({others.get(action, kind).action: others.get(action, kind) for action, kind in saved.items()})
    try:
        yield
    finally:
        KINDS.clear()
        KINDS.update(saved)


def graph_of(text: str) -> JobGraph:
    document = load_spec(text, "ranged.yaml")
    return plan_jobs(validate_spec(document), step_lines(document))


def test_ranged_staging_finds_its_steps_by_what_their_kinds_read() -> None:
    """World to pixel and crop under other names plan the same ranged jobs: ranged staging knows them
    by what they read of an image (`Kind.reads_image`), not by their actions."""
    text = RANGED.read_text(encoding="utf-8")
    seed = graph_of(text)
    for old, new in RENAMED.items():
        text = text.replace(f"action: {old}\n", f"action: {new}\n")
    with kinds_renamed():
        other = graph_of(text)
    assert [(job.name, job.action) for job in other.jobs] == [
        ("sync_in", "sync-in"), ("world_to_pixel", "locate"), ("sync_in_rows", "sync-in"), ("crop", "cut"),
        ("sync_out", "sync-out")]
    assert [dataclasses.replace(job, action=RENAMED.get(job.action, job.action)) for job in seed.jobs] == list(
        other.jobs)
    assert other.scripts == seed.scripts
