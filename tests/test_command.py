"""The command kind: its settings checked at their lines, its plan, and its script run with real tools.

The script runs through a batch file made from the plan's own task arguments (each object's values put
into them, as schedule.sh does), so what is tested is the layout the planner decides.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from compiler.build import build, compile_spec, step_lines
from compiler.layout import RUN_DIR
from compiler.load import load_spec
from compiler.plan import Job, JobGraph, plan_jobs
from compiler.validate import validate_spec
from compiler.verify import check_scripts
from compiler.words import ObjectField, RequestField, Text, Variable, Word
from tests.chain import DEC, RA, Run, step_of
from tests.s3server import S3Server
from tests.shimlib import ShimState
from tests.test_plan import flat
from tests.test_validate import problems

ROOT = Path(__file__).resolve().parents[1]
CHECKSUM = ROOT / "fixtures" / "specs" / "checksum.yaml"

BASE = """version: 1
name: cmd
scratch: /scratch/cmd
message: {file: {type: key, remote: store, required: true}, ra: {type: right-ascension, required: true}, dec: {type: declination, required: true}, label: {type: label, default: galaxy_1}}
remotes:
  store:
    type: s3
clusters:
  c1:
    partitions: [copy, work]
steps:
  sync_in:
    action: sync-in
    remote: store
    cluster: c1
    partition: copy
"""


def command_step(name: str, settings: str, depends: str = "sync_in") -> str:
    """A command step on c1/work; `settings` is its `with` mapping, indented by six."""
    return (f"  {name}:\n    action: command\n    cluster: c1\n    partition: work\n    with:\n{settings}"
            f"    depends_on:\n      {depends}: afterok\n")


SYNC_OUT = "  sync_out:\n    action: sync-out\n    remote: store\n    cluster: c1\n    partition: copy\n" \
           "    depends_on:\n      {after}: afterok\n"

SHA256_STDOUT = """      tool: recorded
      per: {per}
      arguments: ["--", "{{image}}"]
      output:
        suffix: .sha256
        key: "{{file}}.sha256"
        stdout: true
      fails_on: ["No such file"]
"""
COPY_TO_OUTPUT = """      tool: cp
      per: image
      arguments: ["--", "{image}", "{output}"]
      output:
        suffix: .copy
        key: "copies/{file}"
"""
LABEL_CHECK = """      tool: echo
      arguments: ["label", "{label}"]
      fails_on: ["label bad"]
"""


def graph_of(text: str) -> JobGraph:
    document = load_spec(text, "s.yaml")
    return plan_jobs(validate_spec(document), step_lines(document))


def job_of(graph: JobGraph, name: str) -> Job:
    return next(job for job in graph.jobs if job.name == name)


# --------------------------------------------------------------------------- plan


def test_a_command_step_runs_its_own_script_for_every_object_of_the_run() -> None:
    graph = graph_of(CHECKSUM.read_text())
    job = job_of(graph, "checksum")
    assert (job.script, job.per_object) == ("checksum.sh", True)
    assert job.step_command == (Word.of(Variable("SCRIPT_DIR"), "/", "checksum.sh"), Word.of("--batch"),
                                Word.of(RUN_DIR, "/tasks/checksum.tsv"))
    # Its batch line: the outcome file, the group (its image), the group's output, the object's own, then
    # sha256sum's arguments, "--" and the run's copy of the image.
    assert [flat(word) for word in job.task_arguments] == [
        "${RUN_DIR}/failed/{index}", "{image}", "${RUN_DIR}/out/image-{image}.sha256",
        "${RUN_DIR}/out/{index}.sha256", "--", "${RUN_DIR}/images/{image}.fits"]
    script = next(s for s in graph.scripts if s.name == "checksum.sh")
    assert (script.template, script.tool, script.launcher) == ("command.sh.j2", "sha256sum", ())
    assert graph.output is not None
    assert (graph.output.name, graph.output.suffix) == ("output", ".sha256")
    assert graph.output.key == Word((RequestField("file"), Text(".sha256")))
    assert [j.name for j in graph.jobs] == ["sync_in", "checksum", "sync_out"]


def test_a_spec_may_have_several_command_steps_each_with_its_script() -> None:
    text = (BASE + command_step("check", LABEL_CHECK)
            + command_step("copy", COPY_TO_OUTPUT + "      script: copy_images.sh\n")
            + SYNC_OUT.format(after="copy"))
    graph = graph_of(text)
    assert [(job.name, job.script) for job in graph.jobs] == [
        ("sync_in", "sync.sh"), ("check", "check.sh"), ("copy", "copy_images.sh"), ("sync_out", "sync.sh")]
    assert [(s.name, s.tool) for s in graph.scripts] == [
        ("check.sh", "echo"), ("copy_images.sh", "cp"), ("sync.sh", "rclone")]
    # per object, without an output: the group is the object, and the arguments follow it
    assert [flat(word) for word in job_of(graph, "check").task_arguments[1:]] == ["{index}", "label", "{label}"]
    # per image, the tool writing {output}: the group's output is its argument
    copy = [flat(word) for word in job_of(graph, "copy").task_arguments[1:]]
    assert copy == ["{image}", "${RUN_DIR}/out/image-{image}.copy", "${RUN_DIR}/out/{index}.copy", "--",
                    "${RUN_DIR}/images/{image}.fits", "${RUN_DIR}/out/image-{image}.copy"]


def test_per_run_the_objects_share_one_group_and_one_output() -> None:
    graph = graph_of(BASE + command_step("sums", SHA256_STDOUT.format(per="run")) + SYNC_OUT.format(after="sums"))
    assert [flat(word) for word in job_of(graph, "sums").task_arguments[1:4]] == [
        "run", "${RUN_DIR}/out/run.sha256", "${RUN_DIR}/out/{index}.sha256"]


# --------------------------------------------------------------------------- checks


def test_the_checksum_spec_builds_with_no_astronomy_step(tmp_path: Path) -> None:
    assert "world-to-pixel" not in CHECKSUM.read_text()
    compiled = build(CHECKSUM, tmp_path / "out")  # shellcheck passes every script
    assert sorted(s.name for s in compiled.scripts) == ["cancel.sh", "checksum.sh", "read_messages.sh", "schedule.sh",
                                                        "status.sh", "sync.sh"]
    schedule = (tmp_path / "out" / "schedule.sh").read_text()
    assert 'key="${REQUEST_FILE[index]}.sha256"' in schedule and "position_digests" not in schedule
    assert "CROP_WIDTH" not in schedule
    # No script speaks of crops: sync.sh's --help names the output and its ending.
    usage = subprocess.run(["bash", str(tmp_path / "out" / "sync.sh"), "--help"], capture_output=True, text=True,
                           check=True).stdout
    assert "crop" not in usage and "every output made (FROM/INDEX.sha256)" in usage
    # As every script does, it names an option it does not know (exit 2).
    unknown = subprocess.run(["bash", str(tmp_path / "out" / "checksum.sh"), "--bogus"], capture_output=True,
                             text=True, check=False)
    assert (unknown.returncode, unknown.stderr.split(": error: ")[-1]) == (2, "unknown option --bogus; see --help\n")


def test_the_exit_codes_are_told_with_the_specs_own_tools_and_kinds() -> None:
    """--help's exit codes name what the spec's steps run and mean, not the seed's tools."""
    checksum = {code.name: code.meaning for code in graph_of(CHECKSUM.read_text()).exit_codes}
    assert checksum["TOOL_MISSING"] == "a tool or module is missing (rclone, sha256sum)"
    assert checksum["OFF_IMAGE"] == "the object is not on the image"
    assert "sky2xy" not in "".join(checksum.values()) and "WCS" not in "".join(checksum.values())
    seed = {code.name: code.meaning for code in graph_of((ROOT / "fixtures" / "specs" /
                                                           "lts-template.yaml").read_text()).exit_codes}
    assert seed["TOOL_MISSING"] == "a tool or module is missing (rclone, singularity, sky2xy, astcrop)"
    assert seed["OFF_IMAGE"] == "the object is not on the image (sky2xy off image/offscale, astcrop no overlap)"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ('      tool: "sha256sum; rm"\n', '"steps.run.with.tool" string should match pattern'),
        ('      tool: echo\n      arguments: ["{images}"]\n',
         '{images} is not a placeholder: argument 1 may name {image}, {output}, {file}, {ra}, {dec}, {label}'),
        ('      tool: echo\n      arguments: ["a{"]\n',
         'argument 1 holds no control character and no lone "{" or "}" besides its placeholders, got \'a{\''),
        ('      tool: echo\n      arguments: ["{output}"]\n',
         'an argument names {output}, but the step declares no "output"'),
        ('      tool: cp\n      arguments: ["--out={output}"]\n      output: {suffix: .x, key: "{file}.x"}\n',
         "argument 1: {output} is a whole argument, got '--out={output}'"),
        ('      tool: cat\n      arguments: ["{image}"]\n      output: {suffix: .x, key: "{file}.x"}\n',
         'the tool writes its output either to standard output ("output.stdout: true") or to the argument {output}'),
        ('      tool: cat\n      arguments: ["{image}", "{label}"]\n'
         '      output: {suffix: .x, key: "{file}.x", stdout: true}\n',
         'output.key names {label}, which the arguments use: requests with one key are done once'),
        ('      tool: cat\n      arguments: ["{image}"]\n      output: {suffix: .x, key: "{file}", stdout: true}\n',
         'output.key is not {file} alone: the output would replace the image'),
        ('      tool: cat\n      arguments: ["{image}"]\n      output: {suffix: .x, key: "x{file}", stdout: true}\n',
         'output.key starts with {file} or a bucket ("BUCKET/")'),
        ('      tool: cat\n      arguments: ["{image}"]\n      output: {suffix: .x, key: "b/{file}$", stdout: true}\n',
         'output.key holds only letters, digits and "._/-" besides its placeholders, got \'$\''),
        ('      tool: cat\n      per: image\n      arguments: ["{image}"]\n      fails_on: ["a\\tb"]\n',
         '"steps.run.with.fails_on.0" string should match pattern'),
    ],
)
def test_a_command_steps_settings_are_checked_at_compile_time(settings: str, expected: str) -> None:
    found = problems(BASE + command_step("run", settings))
    assert len(found) == 1 and expected in found[0], found
    line = int(found[0].split(":")[0])
    assert line >= (BASE + command_step("run", settings)).split("\n").index("    with:") + 1


def test_a_step_that_reads_what_no_step_writes_is_refused() -> None:
    without_sync_in = BASE.replace("  sync_in:\n    action: sync-in\n    remote: store\n    cluster: c1\n"
                                   "    partition: copy\n", "")
    text = without_sync_in + command_step("sums", SHA256_STDOUT.format(per="image"), depends="nothing")
    text = text.replace("    depends_on:\n      nothing: afterok\n", "")
    assert problems(text) == [
        '12:3: step "sums" (command) reads "images", which no step of the spec writes: add a "sync-in" step']
    # a command that reads no image needs no sync-in
    validate_spec(load_spec(without_sync_in + command_step("check", LABEL_CHECK).replace(
        "    depends_on:\n      sync_in: afterok\n", ""), "s.yaml"))


def test_two_steps_may_not_write_the_outputs() -> None:
    text = (BASE + command_step("a", COPY_TO_OUTPUT) + command_step("b", SHA256_STDOUT.format(per="object"))
            + SYNC_OUT.format(after="b"))
    assert problems(text) == ['30:3: steps "a" and "b" both write "outputs": a run has one of each']


def test_a_command_script_may_not_take_another_scripts_name() -> None:
    text = BASE + command_step("schedule", LABEL_CHECK) + command_step("c", LABEL_CHECK + "      script: sync.sh\n")
    assert problems(text) == [
        '17:3: step "schedule" would run schedule.sh, which every build writes itself: name the step, or its '
        'script, otherwise',
        '27:3: steps "sync_in" and "c" would both run sync.sh: name one of their scripts otherwise '
        '("with: {script: ...}")',
    ]


# --------------------------------------------------------------------------- the script, run


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[JobGraph, Path]]:
    """Specs whose command runs per run, per image and per object (sha256sum, through `recorded`, which
    logs each call), and one that copies to {output} and checks labels: each built once."""
    texts = {
        "run": BASE + command_step("sums", SHA256_STDOUT.format(per="run")) + SYNC_OUT.format(after="sums"),
        "image": BASE + command_step("sums", SHA256_STDOUT.format(per="image")) + SYNC_OUT.format(after="sums"),
        "object": BASE + command_step("sums", SHA256_STDOUT.format(per="object")) + SYNC_OUT.format(after="sums"),
        "copy": BASE + command_step("check", LABEL_CHECK) + command_step("copy", COPY_TO_OUTPUT),
    }
    built = {}
    for name, text in texts.items():
        directory = tmp_path_factory.mktemp(f"command-{name}")
        (directory / "spec.yaml").write_text(text)
        compiled = compile_spec(directory / "spec.yaml")
        # Only the command scripts run here: only they are checked and written (test_the_checksum_spec_builds
        # checks every script of a command spec).
        commands = [s for s in compiled.scripts if s.name in ("sums.sh", "check.sh", "copy.sh")]
        assert check_scripts(tuple(commands)) == ()
        (directory / "out").mkdir()
        for script in commands:
            (directory / "out" / script.name).write_text(script.text)
            (directory / "out" / script.name).chmod(0o755)
        built[name] = (compiled.graph, directory / "out")
    return built


OBJECTS = [  # index, image, file, label: objects 0 and 1 share image 0; image 2 is not there
    (0, 0, "b/x.fits", "good"),
    (1, 0, "b/x.fits", "bad"),
    (2, 1, "b/y.fits", "good"),
    (3, 2, "b/z.fits", "good"),
]


def expanded(word: Word, run_dir: Path, obj: tuple[int, int, str, str]) -> str:
    """A word of the plan with the run directory and an object's fields put in, as schedule.sh does."""
    values = {"index": str(obj[0]), "image": str(obj[1]), "file": obj[2], "label": obj[3]}
    text = []
    for part in word.parts:
        if isinstance(part, Text):
            text.append(part.text)
        elif isinstance(part, Variable):
            assert part.name == "RUN_DIR"
            text.append(str(run_dir))
        elif isinstance(part, ObjectField):
            text.append(values[part.field])
    return "".join(text)


def run_step(built: tuple[JobGraph, Path], step: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    graph, out = built
    run_dir = tmp_path / "run"
    for directory in ("images", "out", "failed", "tasks"):
        (run_dir / directory).mkdir(parents=True, exist_ok=True)
    for image in (0, 1):
        (run_dir / "images" / f"{image}.fits").write_bytes(b"SIMPLE  =" + bytes([image]) * 50)
    job = job_of(graph, step)
    batch = run_dir / "tasks" / f"{step}.tsv"
    batch.write_text("".join("\t".join(expanded(word, run_dir, obj) for word in job.task_arguments) + "\n"
                             for obj in OBJECTS))
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    recorded = tools / "recorded"
    recorded.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >>{tmp_path}/calls\nexec sha256sum "$@"\n')
    recorded.chmod(0o755)
    result = subprocess.run([str(out / job.script), "--batch", str(batch)], capture_output=True, text=True,
                            check=False, env={"PATH": f"{tools}:/usr/bin:/bin", "TMPDIR": str(tmp_path)})
    return result, run_dir


def sha256_line(path: Path) -> str:
    return f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path}\n"


def failures(run_dir: Path) -> dict[int, str]:
    return {int(p.name): p.read_text() for p in (run_dir / "failed").iterdir()}


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_per_object_the_tool_runs_for_each_object_and_a_failure_text_fails_its_object(built, tmp_path: Path) -> None:
    result, run_dir = run_step(built["object"], "sums", tmp_path)
    assert result.returncode == 0, result.stderr
    image = run_dir / "images"
    assert calls(tmp_path) == [f"-- {image}/0.fits", f"-- {image}/0.fits", f"-- {image}/1.fits", f"-- {image}/2.fits"]
    for index, number in ((0, 0), (1, 0), (2, 1)):
        assert (run_dir / "out" / f"{index}.sha256").read_text() == sha256_line(image / f"{number}.fits")
    # sha256sum exits 1 on a missing file, and says "No such file": object 3 alone fails, with exit 7
    assert list(failures(run_dir)) == [3]
    code, script, message = failures(run_dir)[3].rstrip("\n").split("\t")
    assert (code, script) == ("7", "sums.sh")
    assert message.startswith('recorded failed (status 1): its output says "No such file": ')
    assert sorted(p.name for p in (run_dir / "out").iterdir()) == ["0.sha256", "1.sha256", "2.sha256"]


def test_per_image_the_tool_runs_once_for_each_image_and_its_objects_share_its_output(built, tmp_path: Path) -> None:
    result, run_dir = run_step(built["image"], "sums", tmp_path)
    assert result.returncode == 0, result.stderr
    image = run_dir / "images"
    assert calls(tmp_path) == [f"-- {image}/0.fits", f"-- {image}/1.fits", f"-- {image}/2.fits"]
    out = run_dir / "out"
    assert out.joinpath("0.sha256").read_text() == out.joinpath("1.sha256").read_text() == sha256_line(image / "0.fits")
    assert out.joinpath("0.sha256").stat().st_ino == out.joinpath("1.sha256").stat().st_ino
    assert out.joinpath("2.sha256").read_text() == sha256_line(image / "1.fits")
    assert list(failures(run_dir)) == [3]
    assert sorted(p.name for p in out.iterdir()) == ["0.sha256", "1.sha256", "2.sha256"]  # no group file left


def test_per_run_the_tool_runs_once_and_a_failure_fails_every_object(built, tmp_path: Path) -> None:
    result, run_dir = run_step(built["run"], "sums", tmp_path)
    assert result.returncode == 0, result.stderr
    image = run_dir / "images"
    # each argument once for each of its values: every image of the run, once
    assert calls(tmp_path) == [f"-- {image}/0.fits {image}/1.fits {image}/2.fits"]
    assert sorted(failures(run_dir)) == [0, 1, 2, 3]
    assert not list((run_dir / "out").iterdir())
    # with every image there, the manifest is every object's output
    (image / "2.fits").write_bytes(b"SIMPLE  = 2")
    for failed in (run_dir / "failed").iterdir():
        failed.unlink()
    result, run_dir = run_step(built["run"], "sums", tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = "".join(sha256_line(image / f"{n}.fits") for n in range(3))
    assert [(run_dir / "out" / f"{n}.sha256").read_text() for n in range(4)] == [manifest] * 4
    assert not failures(run_dir)


def test_a_failure_text_fails_an_object_whose_tool_exits_0(built, tmp_path: Path) -> None:
    result, run_dir = run_step(built["copy"], "check", tmp_path)
    assert result.returncode == 0, result.stderr
    assert list(failures(run_dir)) == [1]  # echo printed "label bad"
    assert failures(run_dir)[1].startswith('7\tcheck.sh\techo failed (status 0): its output says "label bad"')


def test_a_tool_that_writes_its_output_itself_and_exits_non_zero(built, tmp_path: Path) -> None:
    result, run_dir = run_step(built["copy"], "copy", tmp_path)
    assert result.returncode == 0, result.stderr
    image, out = run_dir / "images", run_dir / "out"
    assert out.joinpath("0.copy").read_bytes() == out.joinpath("1.copy").read_bytes() == \
        image.joinpath("0.fits").read_bytes()
    assert out.joinpath("2.copy").read_bytes() == image.joinpath("1.fits").read_bytes()
    # cp exits 1 on the missing image: its object fails, with cp's message
    assert list(failures(run_dir)) == [3]
    assert failures(run_dir)[3].startswith("7\tcopy.sh\tcp failed (status 1): cp: cannot stat")
    assert sorted(p.name for p in out.iterdir()) == ["0.copy", "1.copy", "2.copy"]


def test_the_script_says_what_it_runs(built, tmp_path: Path) -> None:
    _graph, out = built["image"]
    usage = subprocess.run([str(out / "sums.sh"), "--help"], capture_output=True, text=True, check=True).stdout
    assert usage.splitlines()[:3] == [
        "Usage: sums.sh --batch FILE",
        "  FILE  a line per object, its fields tab-separated: OUTCOME_FILE GROUP GROUP_OUTPUT OUTPUT ARGUMENT...,",
        "        the ARGUMENTs being recorded's for the object (the spec's -- {image})",
    ]
    assert 'or error holds any of: "No such file"; the' in usage
    (tmp_path / "empty.tsv").write_text("")
    missing = subprocess.run([str(out / "sums.sh"), "--batch", str(tmp_path / "empty.tsv")], capture_output=True,
                             text=True, check=False, env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode == 3 and "recorded not found on PATH" in missing.stderr


# --------------------------------------------------------------------------- the whole chain


@pytest.mark.s3
@pytest.mark.tools
def test_the_checksum_workflow_puts_each_images_checksum_beside_it(built_spec, shim_state: ShimState,
                                                                   s3_server: S3Server, s3_bucket: str,
                                                                   tmp_path: Path) -> None:
    """Under the fake Slurm, with the real rclone and S3 server: sha256sum once for each image, its line
    uploaded to BUCKET/KEY.fits.sha256; an image not in the bucket fails its object alone."""
    images = {}
    for name, size in (("a.fits", 3000), ("dir/b.fits", 5000)):
        images[name] = tmp_path / name.replace("/", "_")
        images[name].write_bytes(b"SIMPLE  =" + bytes(range(256)) * (size // 256))
        s3_server.put(images[name], f"{s3_bucket}/data/{name}")
    before = s3_server.snapshot()
    run = Run(built_spec("checksum"), shim_state, s3_server, tmp_path, remote="acacia")
    # The spec's message has one field, the image's key: a message with more is refused.
    refused = run.message("extra.json", file=f"{s3_bucket}/data/a.fits", ra=RA, dec=DEC)
    assert run.schedule(refused).returncode == 2
    assert 'unknown field ra: expected "file"' in run.result.stderr
    inputs = [run.message(f"m{n}.json", file=f"{s3_bucket}/data/{name}")
              for n, name in enumerate(("a.fits", "a.fits", "dir/b.fits", "missing.fits"))]
    assert run.schedule(*inputs).returncode == 0, run.result.stderr
    assert "m1.json asks for the same output as m0.json: done once" in run.result.stderr
    run.drain()
    jobs = {step_of(job, "checksum"): job for job in shim_state.jobs()}
    assert {name: job["state"] for name, job in jobs.items()} == dict.fromkeys(
        ["sync_in", "checksum", "sync_out"], "COMPLETED"), {n: run.log(j) for n, j in jobs.items()}
    assert "sha256sum: 1 object(s) done" in run.log(jobs["checksum"])
    uploaded = {key: s3_server.get_bytes(key).decode() for key in s3_server.snapshot() if key not in before}
    pinned = run.run_dir / "images"
    assert uploaded.pop(run.results_key)
    assert uploaded == {f"{s3_bucket}/data/a.fits.sha256": sha256_line(pinned / "0.fits"),
                        f"{s3_bucket}/data/dir/b.fits.sha256": sha256_line(pinned / "1.fits")}
    assert (pinned / "0.fits").read_bytes() == images["a.fits"].read_bytes()
    results = run.results()
    assert (results["objects"], results["succeeded"], results["failed"]) == (3, 2, 1)
    assert [(r["file"], r["key"], r["error"] and r["error"]["code"]) for r in results["results"]] == [
        (f"{s3_bucket}/data/a.fits", f"{s3_bucket}/data/a.fits.sha256", None),
        (f"{s3_bucket}/data/dir/b.fits", f"{s3_bucket}/data/dir/b.fits.sha256", None),
        (f"{s3_bucket}/data/missing.fits", None, 4)]
    # The message's one field is all that objects.tsv and results.json give of it: no ra, dec or label.
    assert (run.run_dir / "objects.tsv").read_text().splitlines()[0] == "index\tfile\toutput_key\tsources..."
    assert [list(result) for result in results["results"]] == [["index", "messages", "file", "key", "error"]] * 3


def test_a_remote_that_stages_by_ranges_is_refused_for_steps_that_read_whole_images() -> None:
    text = CHECKSUM.read_text(encoding="utf-8").replace("    type: s3\n", "    type: s3\n    staging: ranged\n", 1)
    staging = next(n for n, line in enumerate(text.splitlines(), 1) if "staging: ranged" in line)
    assert problems(text) == [
        f'{staging}:14: remote "acacia" stages by ranges, which needs steps that read images\' headers, then one '
        'that reads their rows ("world-to-pixel" and "crop"); this spec\'s steps read whole images: use '
        '"staging: full"']
