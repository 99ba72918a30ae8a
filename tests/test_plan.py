"""Stage 3, plan: a Spec -> the JobGraph, plain frozen data."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import pytest

from compiler.build import step_lines
from compiler.load import load_spec
from compiler.plan import EXIT_CODES, Dependency, JobGraph, plan_jobs
from compiler.words import Environment, EveryObject, ObjectField, Text, Variable, Word
from compiler.spec import Spec
from compiler.validate import validate_spec

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = (ROOT / "fixtures" / "specs" / "lts-template.yaml").read_text()


def graph_of(text: str) -> JobGraph:
    document = load_spec(text, "s.yaml")
    return plan_jobs(validate_spec(document), step_lines(document))


def flat(word: Word) -> str:
    """A Word as readable text: variables as ${NAME}, object fields as {field}."""
    out = []
    for part in word.parts:
        if isinstance(part, Text):
            out.append(part.text)
        elif isinstance(part, (Variable, Environment)):
            out.append("${" + part.name + "}")
        elif isinstance(part, ObjectField):
            out.append("{" + part.field + "}")
        elif isinstance(part, EveryObject):
            out.append("{every " + part.field + "}")
    return "".join(out)


def base_data(**steps: dict[str, Any]) -> dict[str, Any]:
    """A minimal spec (as data) with the given steps; validated by the models only."""
    return {
        "version": 1,
        "name": "wf",
        "scratch": "/scratch/wf",
        "federated": True,
        "remotes": {"store": {"type": "s3", "credentials": ("KEY",)}},
        "clusters": {"c1": {"partitions": ("p1", "p2")}, "c2": {"partitions": ("q",)}},
        "steps": steps,
        "message": SEED_MESSAGE,
    }


SEED_MESSAGE = {"file": {"type": "key", "remote": "store", "suffixes": (".fits",), "required": True},
                "ra": {"type": "right-ascension", "required": True}, "dec": {"type": "declination", "required": True},
                "label": {"type": "label", "default": "galaxy_1"}}
"""The seed's message, its images in the remote "store"."""


def step(action: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"action": action, "cluster": "c1", "partition": "p1"}
    if action in ("sync-in", "sync-out"):
        fields["remote"] = "store"
    fields.update(extra)
    return fields


@pytest.fixture(scope="module")
def graph() -> JobGraph:
    return graph_of(DEFAULT_TEXT)


def test_jobs_come_in_dependency_order(graph: JobGraph) -> None:
    assert [job.name for job in graph.jobs] == ["sync_in", "world_to_pixel", "crop", "sync_out"]
    assert [job.depends_on for job in graph.jobs] == [
        (),
        (Dependency("afterok", "sync_in"),),
        (Dependency("afterok", "world_to_pixel"),),
        (Dependency("afterok", "crop"),),
    ]
    assert [job.spec_line for job in graph.jobs] == [36, 43, 54, 65]


def test_steps_declared_out_of_order_are_planned_in_dependency_order() -> None:
    head, steps = DEFAULT_TEXT.split("steps:\n")
    steps, message = steps.split("\n# The message")
    blocks = steps.strip("\n").split("\n\n")
    assert len(blocks) == 4
    reversed_text = head + "steps:\n" + "\n\n".join(reversed(blocks)) + "\n\n# The message" + message
    graph = graph_of(reversed_text)
    assert [job.name for job in graph.jobs] == ["sync_in", "world_to_pixel", "crop", "sync_out"]
    # The lines are where each step is declared in this file, not in the default one.
    lines = reversed_text.split("\n")
    for job in graph.jobs:
        assert lines[job.spec_line - 1] == f"  {job.name}:"


def test_ties_keep_declaration_order() -> None:
    spec = Spec.model_validate(base_data(
        late=step("crop", depends_on={"first": "afterok"}),
        free=step("sync-out"),
        first=step("sync-in"),
        other=step("world-to-pixel"),
    ))
    assert [job.name for job in plan_jobs(spec).jobs] == ["free", "first", "late", "other"]


def test_sbatch_options_of_a_single_job(graph: JobGraph) -> None:
    sync_in = graph.jobs[0]
    assert [flat(w) for w in sync_in.options] == [
        "--clusters=zeus",
        "--partition=copyq",
        "--job-name=lts-template-sync_in-${RUN_ID}",
        "--output=${RUN_DIR}/logs/sync_in-%j.log",
        "--kill-on-invalid-dep=yes",
    ]
    assert not sync_in.per_object
    assert [flat(w) for w in sync_in.command] == [
        "${SCRIPT_DIR}/sync.sh", "--images", "${RUN_DIR}", "ceph:", "${SCRATCH}/images",
    ]
    assert sync_in.task_arguments == ()
    assert flat(sync_in.job_name) == "lts-template-sync_in-${RUN_ID}"


def test_a_per_object_step_is_one_job_running_every_task(graph: JobGraph) -> None:
    crop = graph.jobs[2]
    assert crop.per_object
    assert [flat(w) for w in crop.options] == [
        "--clusters=magnus",
        "--partition=debugq",
        "--job-name=lts-template-crop-${RUN_ID}",
        "--output=${RUN_DIR}/logs/crop-%j.log",
        "--kill-on-invalid-dep=yes",
        "--dependency=afterok:${JOB_world_to_pixel}",
    ]
    assert [flat(w) for w in crop.command] == [
        "${SCRIPT_DIR}/crop_image_around_pixels.sh", "--bind", "${SCRATCH}", "--bind", "${RUN_DIR}",
        "--batch", "${RUN_DIR}/tasks/crop.tsv",
    ]
    assert [flat(w) for w in crop.task_arguments] == [
        "${RUN_DIR}/failed/{index}", "${RUN_DIR}/images/{image}.fits", "${RUN_DIR}/out/{index}.fits", "${RUN_DIR}/xy/{index}.xy", "{label}", "20",
    ]
    assert crop.container == "docker://curtinfop/gnuastro"


def test_resources_map_to_sbatch_options_and_dependencies_to_one_clause_per_kind() -> None:
    spec = Spec.model_validate(base_data(
        a=step("sync-in"),
        b=step("world-to-pixel", cluster="c2", partition="q", depends_on={"a": "afterok"}),
        c=step("crop", partition="p2",
               resources={"time": "1-02:00:00", "memory": "16G", "cpus": 4, "account": "pawsey01", "qos": "high"},
               depends_on={"b": "afterok", "a": "afterany"}),
        d=step("sync-out", resources={"time": "30"},
               depends_on={"c": "afterok", "b": "afternotok", "a": "afterok"}),
    ))
    jobs = {job.name: job for job in plan_jobs(spec).jobs}
    assert [flat(w) for w in jobs["c"].options[5:]] == [
        "--time=1-02:00:00",
        "--mem=16G",
        "--cpus-per-task=4",
        "--account=pawsey01",
        "--qos=high",
        "--dependency=afterok:${JOB_b},afterany:${JOB_a}",
    ]
    assert [flat(w) for w in jobs["c"].options[:2]] == ["--clusters=c1", "--partition=p2"]
    assert [flat(w) for w in jobs["b"].options[:2]] == ["--clusters=c2", "--partition=q"]
    assert [flat(w) for w in jobs["d"].options[5:]] == [
        "--time=30",
        "--dependency=afterok:${JOB_c}:${JOB_a},afternotok:${JOB_b}",
    ]
    assert jobs["d"].depends_on == (
        Dependency("afterok", "c"), Dependency("afternotok", "b"), Dependency("afterok", "a"),
    )
    # Each job id is its own Variable part, so render quotes it as a variable, never as text.
    assert Variable("JOB_c") in jobs["d"].options[-1].parts


def test_exports_are_the_remote_credential_variables(graph: JobGraph) -> None:
    credentials = ("RCLONE_CONFIG_CEPH_ACCESS_KEY_ID", "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY")
    settings = ("RCLONE_CONFIG_CEPH_TYPE", "RCLONE_CONFIG_CEPH_PROVIDER", "RCLONE_CONFIG_CEPH_ENDPOINT")
    assert {job.name: job.exports for job in graph.jobs} == {
        "sync_in": credentials, "world_to_pixel": (), "crop": (), "sync_out": credentials,
    }
    base = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "MODULESHOME", "MODULEPATH")
    assert {job.name: job.optional_exports for job in graph.jobs} == {
        "sync_in": settings + base, "world_to_pixel": base, "crop": base, "sync_out": settings + base,
    }
    assert graph.required_variables == ("MYSCRATCH", *credentials)


def test_scratch_and_file_lists(graph: JobGraph) -> None:
    assert graph.scratch == Word((Environment("MYSCRATCH"), Text("/lts-template/data")))
    assert graph.scratch_placeholder == "<MYSCRATCH>/lts-template/data"
    assert graph.scratch_variables == ("MYSCRATCH",)
    assert [(f.name, f.field) for f in graph.file_lists] == [("sync_in.list", "file")]
    assert [flat(w) for w in graph.jobs[-1].command] == [
        "${SCRIPT_DIR}/sync.sh", "--results", "${RUN_DIR}", "${RUN_DIR}/out", "ceph:"]
    assert [(e.name, e.code) for e in graph.exit_codes] == [(e.name, e.code) for e in EXIT_CODES]
    assert [e.code for e in graph.exit_codes] == list(range(11))


def test_crops_go_beside_their_image_unless_the_spec_says_where() -> None:
    beside = graph_of(DEFAULT_TEXT)
    assert (beside.object_key.variables, beside.results_bucket, beside.results_prefix) == (
        (("OUTPUT_PREFIX", ""),), "", "results/")
    elsewhere = graph_of(DEFAULT_TEXT.replace("  crop_width: 20\n", "  crop_width: 20\n  output: crops/cutouts\n"
                                                                    "  results: front-end/runs/\n"))
    assert (elsewhere.object_key.variables, elsewhere.results_bucket, elsewhere.results_prefix) == (
        (("OUTPUT_PREFIX", "crops/cutouts/"),), "front-end", "runs/")


def test_step_scripts_one_per_script_sorted(graph: JobGraph) -> None:
    assert [(s.name, s.template, s.tool) for s in graph.scripts] == [
        ("crop_image_around_pixels.sh", "crop.sh.j2", "astcrop"),
        ("get_world_2_pix.sh", "world_to_pixel.sh.j2", "sky2xy"),
        ("sync.sh", "sync.sh.j2", "rclone"),
    ]
    sync = graph.scripts[2]
    assert sync.launcher == () and sync.modules == ("rclone",)
    assert [r.name for r in sync.remotes] == ["ceph"]  # sync-in and sync-out share the remote: listed once
    assert sync.remotes[0].settings == (
        ("TYPE", "s3"), ("PROVIDER", "Ceph"), ("ENDPOINT", "https://nimbus.pawsey.org.au:8080"),
    )
    assert graph.scripts[0].launcher == ("singularity", "run", "docker://curtinfop/gnuastro")


def _assert_plain_frozen(value: Any, path: str = "graph") -> None:
    if dataclasses.is_dataclass(value):
        assert type(value).__dataclass_params__.frozen, path  # type: ignore[attr-defined]
        for field in dataclasses.fields(value):
            _assert_plain_frozen(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            _assert_plain_frozen(item, f"{path}[{index}]")
    else:
        assert value is None or isinstance(value, (str, int, bool)), f"{path} is a {type(value).__name__}"


def test_the_graph_is_frozen_hashable_plain_data(graph: JobGraph) -> None:
    _assert_plain_frozen(graph)
    assert hash(graph) == hash(graph_of(DEFAULT_TEXT))
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph.jobs[0].name = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph.workflow = "x"  # type: ignore[misc]


def test_planning_is_deterministic(graph: JobGraph) -> None:
    again = graph_of(DEFAULT_TEXT)
    assert again == graph
    assert pickle.dumps(again) == pickle.dumps(graph)
    assert repr(again) == repr(graph)


def test_planning_depends_on_the_spec(graph: JobGraph) -> None:
    other = graph_of(DEFAULT_TEXT.replace("crop_width: 20", "crop_width: 31"))
    assert other != graph
    assert flat(other.jobs[2].task_arguments[-1]) == "31"
    assert other.crop_width == 31


def test_each_dependency_kind_accepts_the_outcomes_slurm_would() -> None:
    from compiler.plan import Dependency

    assert Dependency("afterok", "a").accepts == ("ok",)
    assert Dependency("afternotok", "a").accepts == ("failed", "cancelled")
    assert Dependency("afterany", "a").accepts == ("ok", "failed", "cancelled")


def test_ranged_staging_adds_a_rows_job_on_the_sync_in_partition_before_crop() -> None:
    graph = graph_of((ROOT / "fixtures" / "specs" / "ranged.yaml").read_text())
    assert [(j.name, j.script, j.cluster, j.partition, [(d.kind, d.job) for d in j.depends_on])
            for j in graph.jobs] == [
        ("sync_in", "fetch_rows.sh", "zeus", "copyq", []),
        ("world_to_pixel", "get_world_2_pix.sh", "magnus", "debugq", [("afterok", "sync_in")]),
        ("sync_in_rows", "fetch_rows.sh", "zeus", "copyq", [("afterok", "world_to_pixel")]),
        ("crop", "crop_image_around_pixels.sh", "magnus", "debugq", [("afterok", "sync_in_rows")]),
        ("sync_out", "sync.sh", "zeus", "copyq", [("afterok", "crop")]),
    ]
    jobs = {job.name: job for job in graph.jobs}
    assert [flat(w) for w in jobs["sync_in"].command] == [
        "${SCRIPT_DIR}/fetch_rows.sh", "--headers", "${RUN_DIR}/tasks/sync_in.tsv"]
    assert [flat(w) for w in jobs["sync_in"].task_arguments] == [
        "${RUN_DIR}/failed/{index}", "ceph:{file}", "${RUN_DIR}/images/{image}.fits"]
    assert [flat(w) for w in jobs["world_to_pixel"].task_arguments][1] == "${RUN_DIR}/images/{image}.fits"
    assert [flat(w) for w in jobs["sync_in_rows"].command] == [
        "${SCRIPT_DIR}/fetch_rows.sh", "--rows", "${RUN_DIR}/tasks/sync_in_rows.tsv", "${RUN_DIR}/tasks/crop.tsv"]
    assert [flat(w) for w in jobs["sync_in_rows"].options] == [
        "--clusters=zeus", "--partition=copyq", "--job-name=lts-template-sync_in_rows-${RUN_ID}",
        "--output=${RUN_DIR}/logs/sync_in_rows-%j.log", "--kill-on-invalid-dep=yes",
        "--dependency=afterok:${JOB_world_to_pixel}"]
    assert jobs["sync_in_rows"].exports == jobs["sync_in"].exports != ()
    assert jobs["crop"].task_arguments == ()  # the rows job writes the crop step's batch file
    assert flat(jobs["crop"].options[-1]) == "--dependency=afterok:${JOB_sync_in_rows}"
    assert graph.file_lists == ()
    assert "fetch_rows.sh" in [s.name for s in graph.scripts]


def test_a_containerized_step_binds_the_scratch_root_and_the_run_directory() -> None:
    """Its image is under scratch and its files under the run directory; a container sees neither
    unless bound. Steps without a container bind nothing."""
    graph = graph_of(DEFAULT_TEXT)
    assert {job.name: [flat(w) for w in job.binds] for job in graph.jobs} == {
        "sync_in": [], "world_to_pixel": ["${SCRATCH}", "${RUN_DIR}"], "crop": ["${SCRATCH}", "${RUN_DIR}"],
        "sync_out": []}
    assert [flat(w) for w in graph.jobs[1].step_command[:5]] == [
        "${SCRIPT_DIR}/get_world_2_pix.sh", "--bind", "${SCRATCH}", "--bind", "${RUN_DIR}"]
    assert [flat(w) for w in graph.jobs[0].step_command][1] == "--images"
    assert [(s.name, s.container, s.image) for s in graph.scripts] == [
        ("crop_image_around_pixels.sh", ("singularity", "run"), "docker://curtinfop/gnuastro"),
        ("get_world_2_pix.sh", ("singularity", "run"), "docker://curtinfop/wcstools"),
        ("sync.sh", (), "")]
    # A containerized sync-in binds as well, in every job its script runs as (ranged: headers, rows).
    ranged = (ROOT / "fixtures" / "specs" / "ranged.yaml").read_text()
    sync_in = ranged.index("    action: sync-in")
    contained = ranged[:sync_in] + ranged[sync_in:].replace(  # both sync steps: they share sync.sh
        "    partition: copyq\n", "    partition: copyq\n    container:\n      image: docker://rclone/rclone\n")
    jobs = {job.name: job for job in graph_of(contained).jobs}
    for name, script, mode in (("sync_in", "fetch_rows.sh", "--headers"), ("sync_in_rows", "fetch_rows.sh", "--rows"),
                               ("sync_out", "sync.sh", "--results")):
        assert [flat(w) for w in jobs[name].step_command[:6]] == [
            f"${{SCRIPT_DIR}}/{script}", "--bind", "${SCRATCH}", "--bind", "${RUN_DIR}", mode]


def test_a_request_is_read_back_as_its_source_its_fields_and_a_position_where_it_has_one(graph: JobGraph) -> None:
    # read_messages.sh writes these values a request, schedule.sh reads them back as many at a time
    assert [(flat(value.value), value.array) for value in graph.message.record] == [
        ("${source}", "REQUEST_SOURCE"), ("${file}", "REQUEST_FILE"), ("${ra}", "REQUEST_RA"), ("${dec}", "REQUEST_DEC"),
        ("${label}", "REQUEST_LABEL"), ("${POSITION} ${POSITION_DEC}", "REQUEST_POSITION"),
    ]
    checksum = graph_of((ROOT / "fixtures" / "specs" / "checksum.yaml").read_text())
    assert [value.array for value in checksum.message.record] == ["REQUEST_SOURCE", "REQUEST_FILE"]
    assert "read_messages.sh" in graph.generated and "read_messages.sh" in checksum.generated
