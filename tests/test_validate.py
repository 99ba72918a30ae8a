"""Stage 2, validate: a Document -> a frozen Spec, or every problem at its position."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from compiler.diagnostics import Diagnostic, SpecError
from compiler.load import Document, load_spec
from compiler.spec import Resources, Spec, Step
from compiler.validate import validate_spec

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = (ROOT / "fixtures" / "specs" / "lts-template.yaml").read_text()


def edited(*replacements: tuple[str, str]) -> str:
    """The default spec with each (old, new) applied; each `old` must occur exactly once."""
    text = DEFAULT_TEXT
    for old, new in replacements:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    return text


def problems(text: str) -> list[str]:
    """Every diagnostic validate reports for `text`, as `line:col: message`."""
    with pytest.raises(SpecError) as raised:
        validate_spec(load_spec(text, "s.yaml"))
    return [f"{d.line}:{d.column}: {d.message}" for d in raised.value.diagnostics]


def line_of(text: str, fragment: str) -> int:
    """The 1-based line of the only line containing `fragment`."""
    found = [number for number, line in enumerate(text.split("\n"), 1) if fragment in line]
    assert len(found) == 1, (fragment, found)
    return found[0]


def test_the_default_spec_validates() -> None:
    spec = validate_spec(load_spec(DEFAULT_TEXT, "s.yaml"))
    assert isinstance(spec, Spec)
    assert spec.version == 1
    assert spec.name == "lts-template"
    assert spec.federated is True
    assert list(spec.steps) == ["sync_in", "world_to_pixel", "crop", "sync_out"]
    assert spec.steps["crop"].depends_on == {"world_to_pixel": "afterok"}
    assert spec.steps["world_to_pixel"].container is not None
    assert spec.steps["world_to_pixel"].container.image == "docker://curtinfop/wcstools"
    assert spec.remotes["ceph"].credentials == ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY")
    assert spec.clusters["magnus"].partitions == ("debugq",)
    assert spec.objects.crop_width == 20
    assert spec.steps["sync_in"].resources == Resources()


def test_an_unknown_key_points_at_the_key_and_suggests_the_close_one() -> None:
    text = edited(("      runtime: singularity\n    depends_on:\n      sync_in",
                   "      runtme: singularity\n    depends_on:\n      sync_in"))
    line = line_of(text, "runtme:")
    assert problems(text) == [
        f'{line}:7: unexpected key "runtme" for "steps.world_to_pixel.container" section. '
        'expected one of "binds", "command", "image", "runtime" (did you mean "runtime"?)'
    ]


def test_an_unknown_key_without_a_close_match_lists_the_choices_only() -> None:
    text = edited(("name: lts-template", "name: lts-template\nzzz: 1"))
    assert problems(text) == [
        '6:1: unexpected key "zzz" at top level. expected one of "chain", "clusters", "description", '
        '"exports", "federated", "message", "name", "objects", "remotes", "scratch", "steps", "version"'
    ]


def test_a_bad_value_points_at_the_value() -> None:
    text = edited(("  crop_width: 20", "  crop_width: 'twenty'"))
    assert problems(text) == ['32:15: "objects.crop_width" must be an integer, got "twenty"']


def test_a_missing_key_points_at_its_parent_key() -> None:
    text = edited(("      image: docker://curtinfop/gnuastro\n", ""))
    assert problems(text) == ['59:5: missing required key "image" for "steps.crop.container" section']


def test_a_missing_top_level_key_points_at_the_document() -> None:
    text = edited(("name: lts-template\n", ""))
    assert problems(text) == ['4:1: missing required key "name" at top level']


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("crop_width: 20", "crop_width: twenty", '32:15: "objects.crop_width" must be an integer, got "twenty"'),
        ("crop_width: 20", "crop_width: 1.5", '32:15: "objects.crop_width" must be an integer, got 1.5'),
        ("crop_width: 20", "crop_width: 100001", '32:15: "objects.crop_width" must be at most 100000, got 100001'),
        ("crop_width: 20", "crop_width: true", '32:15: "objects.crop_width" must be an integer, got true'),
        ("federated: true", "federated: 1", '14:12: "federated" must be true or false, got 1'),
        ("partitions: [copyq]", "partitions: copyq", '27:17: "clusters.zeus.partitions" must be a list, got "copyq"'),
        ("partitions: [copyq]", "partitions: []", '27:17: "clusters.zeus.partitions" must not be empty'),
        ("runtime: singularity\n    depends_on:\n      sync_in", "runtime: docker\n    depends_on:\n      sync_in",
         '50:16: invalid value "docker" for "steps.world_to_pixel.container.runtime". '
         'expected one of "apptainer", "singularity"'),
        ("version: 1", 'version: "1"', '4:10: invalid value "1" for "version". expected 1'),
        ("version: 1", "version: 2", '4:10: invalid value 2 for "version". expected 1'),
        ("ACCESS_KEY_ID,", "access_key_id,",
         '23:19: "remotes.ceph.credentials.0" must be an UPPER_CASE option name, got "access_key_id"'),
        ("endpoint: https://nimbus.pawsey.org.au:8080", "endpoint: ftp://x",
         '20:15: "remotes.ceph.endpoint" must be an http:// or https:// URL, got "ftp://x"'),
        ("scratch: $MYSCRATCH/lts-template/data", "scratch: /data/../etc",
         '10:10: "scratch" must not contain ".." segments, got "/data/../etc"'),
        ("scratch: $MYSCRATCH/lts-template/data", "scratch: '/data/`id`'",
         '10:10: "scratch" may hold only letters, digits, "/._-@+,:=" and $VARIABLE references, got "/data/`id`"'),
    ],
)
def test_each_shape_error_has_its_message_at_the_value(old: str, new: str, expected: str) -> None:
    assert problems(edited((old, new))) == [expected]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    action: crop\n    cluster: magnus", "    action: crop\n    cluster: zeuss",
         '56:14: unknown cluster "zeuss". expected one of "magnus", "zeus" (did you mean "zeus"?)'),
        ("    action: crop\n    cluster: magnus\n    partition: debugq",
         "    action: crop\n    cluster: magnus\n    partition: copyq",
         '57:16: unknown partition "copyq" on cluster "magnus". expected one of "debugq"'),
        ("    action: sync-in\n    remote: ceph", "    action: sync-in\n    remote: nimbus",
         '38:13: unknown remote "nimbus". expected one of "ceph"'),
        ("    action: sync-in\n    remote: ceph\n", "    action: sync-in\n",
         '36:3: step "sync_in" (action "sync-in") needs a "remote". expected one of "ceph"'),
        ("    action: crop\n", "    action: crop\n    remote: ceph\n",
         '56:5: "remote" is only for steps with action "sync-in", "sync-out" or "notify", not "crop"'),
        ("      world_to_pixel: afterok", "      sync_in: afterok",
         '54:3: step "crop" (crop) reads what step "world_to_pixel" (world-to-pixel) writes, so it must depend on it'),
        ("  sync_out:\n", "  Sync-Out:\n",
         '65:3: invalid name "Sync-Out" in "steps": use lower-case letters, digits and "_", starting with a letter'),
        ("    partition: copyq\n    modules: [rclone]\n    depends_on:\n      crop",
         "    partition: copyq\n    modules: [rclone, x]\n    depends_on:\n      crop",
         '70:5: steps "sync_in" and "sync_out" both run sync.sh, so their "modules" must be the same'),
    ],
)
def test_each_meaning_error_has_its_message_and_position(old: str, new: str, expected: str) -> None:
    assert problems(edited((old, new))) == [expected]


def test_a_self_dependency_is_named_and_the_missing_data_flow_too() -> None:
    assert problems(edited(("      world_to_pixel: afterok", "      crop: afterok"))) == [
        '54:3: step "crop" (crop) reads what step "world_to_pixel" (world-to-pixel) writes, so it must depend on it',
        '63:7: step "crop" depends on itself',
    ]


def test_an_empty_or_missing_section_is_reported_once_not_for_every_step() -> None:
    assert problems(edited(("partitions: [debugq]", "partitions: []"))) == [
        '29:17: "clusters.magnus.partitions" must not be empty'
    ]
    clusters = "clusters:\n  zeus:\n    partitions: [copyq]\n  magnus:\n    partitions: [debugq]\n"
    assert problems(edited((clusters, "clusters: {}\n"))) == ['25:11: "clusters" must not be empty']
    assert problems(edited((clusters, ""))) == ['4:1: missing required key "clusters" at top level']


def test_a_cycle_is_named_once_starting_at_its_first_declared_step() -> None:
    text = edited(("    modules: [rclone]\n\n  world",
                   "    modules: [rclone]\n    depends_on:\n      crop: afterok\n\n  world"))
    assert problems(text) == [
        '43:7: dependency cycle: "sync_in" -> "crop" -> "world_to_pixel" -> "sync_in"'
    ]


def test_crossing_clusters_needs_a_federation() -> None:
    found = problems(edited(("federated: true\n", "")))
    assert [p.split(": ", 1)[0] for p in found] == ["51:7", "71:7"]
    assert found[0].startswith('51:7: step "world_to_pixel" on cluster "magnus" depends on step "sync_in" '
                               'on cluster "zeus", but the clusters are not federated')
    assert 'set "federated: true"' in found[0]


def test_one_cluster_needs_no_federation() -> None:
    text = edited(("federated: true\n", ""), ("  magnus:\n    partitions: [debugq]\n", ""))
    text = text.replace("cluster: magnus", "cluster: zeus").replace("partition: debugq", "partition: copyq")
    spec = validate_spec(load_spec(text, "s.yaml"))
    assert {step.cluster for step in spec.steps.values()} == {"zeus"}


def test_consequences_of_a_reported_error_are_not_reported_again() -> None:
    # "yes" is a string in YAML 1.2: the shape error is enough, no "set federated: true" advice.
    assert problems(edited(("federated: true", "federated: yes")))[0].startswith('14:12: "federated" must be')
    assert len(problems(edited(("federated: true", "federated: yes")))) == 1
    # A misspelt depends_on, or one of the wrong shape: no "must depend on it" as well.
    assert len(problems(edited(("    depends_on:\n      world_to_pixel", "    depend_on:\n      world_to_pixel")))) == 1
    assert len(problems(edited(("      sync_in: afterok", "      - sync_in")))) == 1
    assert len(problems(edited(("      world_to_pixel: afterok", "      world_to_pixl: afterok")))) == 1
    # A step without an action: the shape error only, no "no step has action".
    assert problems(edited(("    action: crop\n", ""))) == [
        '54:3: missing required key "action" for "steps.crop" section'
    ]


def test_all_errors_are_reported_in_one_run_sorted_by_position() -> None:
    text = edited(
        ("version: 1", "version: 3"),
        ("    action: sync-out\n    remote: ceph", "    action: sync-out\n    remote: cehp"),
        ("crop_width: 20", "crop_width: -1"),
        ("name: lts-template", "name: LTS"),
        ("      sync_in: afterok", "      sync_in: afterOK"),
    )
    found = problems(text)
    assert found == [
        '4:10: invalid value 3 for "version". expected 1',
        '5:7: "name" must be lower-case letters, digits, ".", "_" or "-", got "LTS"',
        '32:15: "objects.crop_width" must be at least 1, got -1',
        '52:16: invalid value "afterOK" for "steps.world_to_pixel.depends_on.sync_in". '
        'expected one of "afterany", "afternotok", "afterok" (did you mean "afterok"?)',
        '67:13: unknown remote "cehp". expected one of "ceph" (did you mean "ceph"?)',
    ]


def test_load_diagnostics_are_reported_with_the_validation_errors() -> None:
    text = edited(("  crop_width: 20\n", "  crop_width: 20\n  crop_width: 21\n  hdu: -1\n"))
    assert problems(text) == [
        '33:3: key "crop_width" is duplicated. previously defined at line:32,col:3',
        '34:8: "objects.hdu" must be at least 0, got -1',
    ]


def test_diagnostics_are_sorted_and_deduplicated() -> None:
    document = load_spec(DEFAULT_TEXT, "s.yaml")
    twice = Diagnostic("s.yaml", 9, 2, "same")
    noisy = Document(document.file, {**document.data, "version": 7}, document.positions,
                     (twice, Diagnostic("s.yaml", 1, 5, "first"), twice))
    with pytest.raises(SpecError) as raised:
        validate_spec(noisy)
    assert [str(d) for d in raised.value.diagnostics] == [
        "s.yaml:1:5: first",
        's.yaml:4:10: invalid value 7 for "version". expected 1',
        "s.yaml:9:2: same",
    ]
    assert str(raised.value) == "\n".join(str(d) for d in raised.value.diagnostics)


@pytest.mark.parametrize(("text", "expected"), [
    ("", '1:1: "spec" must be a mapping, got null'),
    ("- a\n", '1:1: "spec" must be a mapping, got a list'),
    ("steps: {}\n", None),
])
def test_documents_of_the_wrong_shape(text: str, expected: str | None) -> None:
    found = problems(text)
    if expected is not None:
        assert found == [expected]
    else:
        assert '1:8: "steps" must not be empty' in found
        assert '1:1: missing required key "version" at top level' in found


def test_the_spec_models_are_frozen() -> None:
    spec = validate_spec(load_spec(DEFAULT_TEXT, "s.yaml"))
    with pytest.raises(pydantic.ValidationError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        spec.steps["crop"].cluster = "zeus"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        spec.objects.crop_width = 1  # type: ignore[misc]
    assert isinstance(spec.steps["crop"], Step)
    assert isinstance(spec.steps["crop"].modules, tuple)


@pytest.mark.parametrize("field", ["output", "results"])
def test_a_bucket_in_the_spec_follows_the_s3_rules(field: str) -> None:
    from tests.test_odd_input import BUCKETS
    for bucket, valid in BUCKETS:
        text = edited(("  crop_width: 20\n", f"  crop_width: 20\n  {field}: {bucket}/crops/\n"))
        if valid:
            assert validate_spec(load_spec(text, "s.yaml")).objects.model_dump()[field] == f"{bucket}/crops/"
            continue
        found = problems(text)
        line = line_of(text, f"  {field}: ")
        # a name the shape pass refuses already (upper case, too long) is reported once, by it
        assert len(found) == 1 and found[0].startswith(f"{line}:"), (bucket, found)
        assert f'"objects.{field}"' in found[0] and "bucket" in found[0].lower(), (bucket, found)
