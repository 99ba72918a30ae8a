"""The objects' keys, as the planner decides them: the output's declared key (the crop kind's too), the form
of the keys a run's outputs could have, which schedule.sh refuses as an image, and, without an output, the
request's fields.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from compiler.layout import OUTPUT_PREFIX
from compiler.words import PositionDigest, RequestField, RequestStem, Text, Word
from tests.shimlib import ShimState
from tests.test_command import BASE, CHECKSUM, command_step, graph_of

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "fixtures" / "specs" / "lts-template.yaml"
CROP_FORM = r"_[A-Za-z0-9][A-Za-z0-9._-]{0,63}_[0-9a-f]{12}_crop\.fits$"
"""The form of a crop key after the output location, as schedule.sh held it before the planner made it."""

SOLO = """version: 1
name: solo
scratch: $MYSCRATCH/solo
message:
  file: {type: key, remote: store, required: true}
  mode: {type: choice, choices: [fast, slow], default: fast}
remotes:
  store:
    type: s3
clusters:
  c1:
    partitions: [work]
steps:
  check:
    action: command
    cluster: c1
    partition: work
    with:
      tool: echo
      arguments: ["{file}", "{mode}"]
"""
"""A spec whose one step is a command with no output, and whose message has no label."""


def with_output(text: str, place: str) -> str:
    """The seed spec's text, its crops going to `place` (`objects.output`)."""
    assert "  crop_width: 20\n" in text
    return text.replace("  crop_width: 20\n", f"  crop_width: 20\n  output: {place}\n", 1)


# --------------------------------------------------------------------------- plan


def test_the_crop_key_is_the_crop_kinds_declared_key() -> None:
    keys = graph_of(SEED.read_text()).object_key
    assert keys.key == Word((OUTPUT_PREFIX, RequestStem("file"), Text("_"), RequestField("label"), Text("_"),
                             PositionDigest(), Text("_crop.fits")))
    assert (keys.made, keys.digests, keys.variables, keys.location) == (
        "crop", True, (("OUTPUT_PREFIX", ""),), "beside each image")
    # A leading ".*" is no condition: the form is the one schedule.sh held before the planner made it.
    assert keys.form == CROP_FORM
    elsewhere = graph_of(with_output(SEED.read_text(), "crops.bucket/made")).object_key
    assert elsewhere.form == r"^crops\.bucket/made/.*" + CROP_FORM
    assert (elsewhere.variables, elsewhere.location) == ((("OUTPUT_PREFIX", "crops.bucket/made/"),),
                                                        "crops.bucket/made/")


def test_a_commands_output_key_has_the_form_of_its_parts() -> None:
    checksum = graph_of(CHECKSUM.read_text()).object_key
    assert (checksum.made, checksum.form, checksum.digests, checksum.variables, checksum.location) == (
        "output", r"\.sha256$", False, (), "beside each image")
    labelled = graph_of(BASE + command_step("copy", """      tool: cp
      arguments: ["{image}", "{output}"]
      output: {suffix: .copy, key: "copies/{label}/{file}.copy"}
""")).object_key
    assert (labelled.form, labelled.location) == (r"^copies/[A-Za-z0-9][A-Za-z0-9._-]{0,63}/.*\.copy$", "copies/")


def test_without_an_output_an_objects_key_is_its_requests_fields() -> None:
    keys = graph_of(SOLO).object_key
    assert keys.key == Word((RequestField("file"), Text("\t"), RequestField("mode")))
    assert (keys.made, keys.form, keys.digests, keys.variables, keys.column) == ("object", None, False, (),
                                                                                 Word.of("-"))


# --------------------------------------------------------------------------- schedule.sh


KEYS = [
    "b/x_gal_0123456789ab_crop.fits",
    "b/x_gal.1-a_0123456789ab_crop.fits",
    "_g_0123456789ab_crop.fits",
    "b/x_gal_0123456789AB_crop.fits",
    "b/x__0123456789ab_crop.fits",
    "b/x_-gal_0123456789ab_crop.fits",
    "b/x_gal_0123456789a_crop.fits",
    "b/x_gal_0123456789ab_crop.fitsx",
    "b/x_gal_0123456789ab_crop.FITS",
    "b/x_gal_0123456789ab_cropXfits",
    f"b/x_{'g' * 64}_0123456789ab_crop.fits",
    f"b/x_{'g' * 65}_0123456789ab_crop.fits",
    "b/x_g/h_0123456789ab_crop.fits",
    "crops.bucket/made/b/x_gal_0123456789ab_crop.fits",
    "crops.bucket/made/_gal_0123456789ab_crop.fits",
    "cropsXbucket/made/b/x_gal_0123456789ab_crop.fits",
    "crops.bucket/madeb/x_gal_0123456789ab_crop.fits",
    "a/crops.bucket/made/b/x_gal_0123456789ab_crop.fits",
]


@pytest.mark.parametrize("place", [None, "crops.bucket/made"])
def test_the_crop_form_refuses_the_keys_the_rule_before_it_refused(place: str | None) -> None:
    """bash's own `=~`, the planner's form against the rule schedule.sh had: the output location, then a
    match of CROP_FORM."""
    keys = graph_of(with_output(SEED.read_text(), place) if place else SEED.read_text()).object_key
    prefix = dict(keys.variables)["OUTPUT_PREFIX"]
    script = ('for key in "${@:4}"; do\n'
              '  before=no now=no\n'
              '  [[ "${key}" == "$1"* && "${key#"$1"}" =~ $2 ]] && before=yes\n'
              '  [[ "${key}" =~ $3 ]] && now=yes\n'
              '  printf "%s %s\\n" "${before}" "${now}"\n'
              'done\n')
    found = subprocess.run(["bash", "-c", script, "bash", prefix, CROP_FORM, keys.form, *KEYS],
                           capture_output=True, text=True, check=True, env={"LC_ALL": "C"}).stdout.split("\n")
    pairs = [line.split() for line in found if line]
    assert [before for before, _ in pairs] == [now for _, now in pairs]
    assert {tuple(pair) for pair in pairs} == {("yes", "yes"), ("no", "no")}  # each refuses some, not all


def dry_run(scripts: Path, tmp_path: Path, shim_state: ShimState, *messages: dict[str, str]
            ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "m.json").write_text("".join(json.dumps(message) + "\n" for message in messages))
    return subprocess.run(["bash", str(scripts / "schedule.sh"), "--dry-run", str(tmp_path / "m.json")],
                          capture_output=True, text=True, check=False, cwd=tmp_path,
                          env=shim_state.env(MYSCRATCH=str(tmp_path / "scratch")))


def test_an_image_of_the_form_of_a_crop_key_is_refused(scripts_dir: Path, tmp_path: Path,
                                                        shim_state: ShimState) -> None:
    image = "bkt/data/a_galaxy_0123456789ab_crop.fits"
    result = dry_run(scripts_dir, tmp_path, shim_state, {"file": image, "ra": "1", "dec": "2"})
    assert result.returncode == 2
    assert result.stderr.split(" error: ", 1)[1] == (
        f'{tmp_path}/m.json: field "file" {image} has the form of a crop key in the output location (beside '
        'each image): a crop of this run could replace it\n')
    assert shim_state.sbatch_calls() == []


def test_an_image_of_the_form_of_a_commands_output_key_is_refused(compile_spec, tmp_path: Path,
                                                                  shim_state: ShimState) -> None:
    """checksum.yaml's images may have any key: one whose key ends in .sha256 could be replaced by the
    checksum of another (BUCKET/KEY.sha256), and is refused as a crop key is."""
    text = CHECKSUM.read_text().replace("    suffixes: [.fits, .fit, .fts]\n", "")
    assert "suffixes" not in text
    scripts = compile_spec(text, "checksum-any")
    image = "bkt/data/a.fits.sha256"
    result = dry_run(scripts, tmp_path, shim_state, {"file": "bkt/data/a.fits"}, {"file": image})
    assert result.returncode == 2
    assert result.stderr.split(" error: ", 1)[1] == (
        f'{tmp_path}/m.json:2: field "file" {image} has the form of an output key in the output location '
        '(beside each image): an output of this run could replace it\n')
    assert dry_run(scripts, tmp_path, shim_state, {"file": "bkt/data/a.sha256x"}).returncode == 0
    assert shim_state.sbatch_calls() == []


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from compiler.build import build

    directory = tmp_path_factory.mktemp("solo")
    (directory / "solo.yaml").write_text(SOLO)
    build(directory / "solo.yaml", directory / "out")
    return directory / "out"


def test_without_an_output_requests_with_the_same_fields_are_one_object(solo: Path, tmp_path: Path,
                                                                         shim_state: ShimState) -> None:
    result = dry_run(solo, tmp_path, shim_state, {"file": "bkt/x.fits"}, {"file": "bkt/x.fits", "mode": "fast"},
                     {"file": "bkt/x.fits", "mode": "slow"}, {"file": "bkt/y.fits"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if " key " in line] == [
        "# object key 0: $'bkt/x.fits\\tfast'", "# object key 1: $'bkt/x.fits\\tslow'",
        "# object key 2: $'bkt/y.fits\\tfast'"]
    run = f"{tmp_path}/scratch/solo/runs/dry-run"
    assert [line for line in lines if " task " in line] == [
        f"# check task 0: {run}/failed/0 0 bkt/x.fits fast", f"# check task 1: {run}/failed/1 1 bkt/x.fits slow",
        f"# check task 2: {run}/failed/2 2 bkt/y.fits fast"]
    assert f"{tmp_path}/m.json:2 asks for the same object as {tmp_path}/m.json:1: done once" in result.stderr
    assert "3 object(s); jobs: check=@check" in result.stderr


def test_without_an_output_a_run_lists_its_objects_with_no_key(solo: Path, tmp_path: Path,
                                                               shim_state: ShimState) -> None:
    """Under the fake Slurm: the one job runs echo for each object, and objects.tsv has the message's own
    fields as its columns (a default filled in), and no key."""
    (tmp_path / "m.json").write_text('{"file": "bkt/x.fits"}\n{"file": "bkt/x.fits"}\n')
    env = shim_state.env(MYSCRATCH=str(tmp_path / "scratch"))
    result = subprocess.run(["bash", str(solo / "schedule.sh"), "m.json"], capture_output=True, text=True,
                            check=False, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert shim_state.drain(env, cwd=tmp_path).returncode == 0
    assert [job["state"] for job in shim_state.jobs()] == ["COMPLETED"]
    run = Path(result.stdout.strip())
    assert (run / "objects.tsv").read_text().splitlines() == [
        "index\tfile\tmode\tobject_key\tsources...", "0\tbkt/x.fits\tfast\t-\tm.json:1\tm.json:2"]
    status = subprocess.run(["bash", str(solo / "status.sh"), str(run)], capture_output=True, text=True,
                            check=False, env=env)
    assert "objects: 1 of 1 succeeded, 0 failed" in status.stdout, status.stdout + status.stderr
