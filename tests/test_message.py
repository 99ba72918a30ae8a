"""The message is declared in the spec: each field type's check, in Python (defaults) and in schedule.sh
(messages), the validation of the declaration, and a spec whose message is not the seed's."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from compiler.build import build
from compiler.diagnostics import SpecError
from compiler.fields import FIELD_TYPES, ere_problem
from compiler.load import load_spec
from compiler.render import shell_quote
from compiler.validate import validate_spec
from tests.test_validate import DEFAULT_TEXT, line_of

SEED_MESSAGE = DEFAULT_TEXT[DEFAULT_TEXT.index("message:\n"):]
# The seed's steps with another message: a table of rows (a CSV object), how many rows, a mode, a tag,
# and the sky position and name the seed's kinds read, found by their types under other names.
OTHER_MESSAGE = """message:
  rows:
    type: integer
    minimum: 1
    maximum: 1000
    required: true
  table:
    type: key
    remote: ceph
    suffixes: [.csv]
    required: true
  mode:
    type: choice
    choices: [fast, exact]
    default: fast
  tag:
    type: string
    pattern: "[a-z]{2,8}(-[0-9]+)?"
    default: run
  sky_dec:
    type: declination
    default: "0"
  sky_ra:
    type: right-ascension
    default: "0"
  name:
    type: label
    required: true
"""
OTHER_TEXT = DEFAULT_TEXT.replace(SEED_MESSAGE, OTHER_MESSAGE)


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as raised:
        validate_spec(load_spec(text, "s.yaml"))
    return [f"{d.line}:{d.column}: {d.message}" for d in raised.value.diagnostics]


def with_message(message: str) -> str:
    return DEFAULT_TEXT.replace(SEED_MESSAGE, message)


@pytest.fixture(scope="module")
def other_scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("other-message")
    spec = directory / "other.yaml"
    spec.write_text(OTHER_TEXT)
    build(spec, directory / "out")
    return directory / "out"


def dry_run(scripts: Path, tmp_path: Path, *messages: dict | str, env: dict[str, str] | None = None,
            name: str = "messages.json") -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text("".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages))
    environment = {"PATH": os.environ["PATH"], "MYSCRATCH": "/scratch/x", **(env or {})}
    return subprocess.run(["bash", str(scripts / "schedule.sh"), "--dry-run", str(path)], capture_output=True,
                          text=True, env=environment, check=False)


def task_lines(output: str, step: str) -> list[str]:
    return [line.split(":", 1)[1] for line in output.splitlines() if line.startswith(f"# {step} task ")]


# ----------------------------------------------------------------- the declaration


def test_the_seed_spec_declares_the_seeds_message() -> None:
    spec = validate_spec(load_spec(DEFAULT_TEXT, "s.yaml"))
    assert list(spec.message) == ["file", "ra", "dec", "label"]
    assert [field.type for field in spec.message.values()] == ["key", "right-ascension", "declination", "label"]
    assert spec.message["label"].default == "galaxy_1" and not spec.message["label"].required
    assert spec.message["file"].suffixes == (".fits", ".fit", ".fts")


@pytest.mark.parametrize(("message", "fragment", "expected"), [
    ("  file:\n    type: kee\n", "type: kee", 'invalid value "kee" for "message.file.type". expected one of "choice", '
     '"declination", "integer", "key", "label", "right-ascension", "string" (did you mean "key"?)'),
    ("  file:\n    required: true\n", "  file:", 'missing required key "type" for "message.file" section: one of'),
    ("  file:\n    type: key\n    remote: ceph\n    sufixes: [.fits]\n", "sufixes",
     'unexpected key "sufixes" for "message.file" section. expected one of "default", "remote", "required", '
     '"suffixes", "type" (did you mean "suffixes"?)'),
    ("  file:\n    type: key\n    remote: nimbus\n    required: true\n", "remote: nimbus",
     'unknown remote "nimbus". expected one of "ceph"'),
    ("  label:\n    type: label\n", "  label:", 'field "label" of the message needs "required: true" or a "default"'),
    ("  label:\n    type: label\n    required: true  # and a default\n    default: x\n", "and a default",
     'field "label" of the message is required, so it takes no default'),
    ("  label:\n    type: label\n    default: two words\n", "default: two",
     'the default of field "label" of the message, "two words", must be 1 to 64 letters'),
    ("  n:\n    type: integer\n    minimum: 5\n    maximum: 1\n    required: true\n", "minimum: 5",
     'field "n" of the message has a minimum above its maximum'),
    ("  n:\n    type: integer\n    maximum: 9\n    default: 10\n", "default: 10",
     'the default of field "n" of the message, "10", must be a whole number from -1000000000000000000 to 9'),
    ("  m:\n    type: choice\n    choices: [a, b]\n    default: c\n", "default: c",
     'the default of field "m" of the message, "c", must be one of "a" or "b"'),
    ("  s:\n    type: string\n    pattern: '\\d+'\n    required: true\n", "pattern:",
     '"message.s.pattern" is not a pattern ltsflow can check alike in Python and bash'),
    ("  s:\n    type: string\n    pattern: '[a-z]+'\n    default: Abc\n", "default: Abc",
     'the default of field "s" of the message, "Abc", must be text matching [a-z]+'),
    ("  index:\n    type: label\n    required: true\n", "  index:", 'a message field may not be named "index"'),
    ("  File:\n    type: label\n    required: true\n", "  File:", 'invalid name "File" in "message"'),
])
def test_a_bad_declaration_is_refused_at_its_line(message: str, fragment: str, expected: str) -> None:
    text = _replaced(message)
    found = problems(text)
    line = line_of(text, fragment)
    assert any(p.startswith(f"{line}:") and expected in p for p in found), (found, line)


def _replaced(field: str) -> str:
    """The seed spec with the declaration of `field`'s name taken out of its message, and `field` added last."""
    name = field.split(":", 1)[0].strip()
    declarations: list[list[str]] = []
    for line in SEED_MESSAGE.splitlines()[1:]:
        if line.startswith("  ") and not line.startswith("   "):
            declarations.append([line])
        elif line.strip():
            declarations[-1].append(line)
    kept = "".join("\n".join(lines) + "\n" for lines in declarations if lines[0].strip() != f"{name}:")
    return with_message("message:\n" + kept + field)


@pytest.mark.parametrize(("drop", "expected"), [
    ("ra", 'step "world_to_pixel" (world-to-pixel) reads one "right-ascension" field of the message, and the message '
     'has none'),
    ("label", 'step "crop" (crop) reads one "label" field of the message, and the message has none'),
    ("file", 'step "sync_in" (sync-in) reads one "key" field of the message in its remote "ceph", and the message '
     'has none'),
])
def test_a_kind_finds_its_fields_by_type_and_says_which_is_missing(drop: str, expected: str) -> None:
    text = _replaced(f"  {drop}:\n    type: string\n    pattern: x\n    default: x\n")
    action = {"ra": "world-to-pixel", "label": "crop", "file": "sync-in"}[drop]
    assert f"{line_of(text, f'action: {action}')}:13: {expected}" in problems(text)


def test_two_fields_of_a_type_a_kind_reads_are_refused() -> None:
    text = _replaced("  ra2:\n    type: right-ascension\n    required: true\n")
    assert f'{line_of(text, "action: world-to-pixel")}:13: step "world_to_pixel" (world-to-pixel) reads one ' \
           f'"right-ascension" field of the message, and the message has 2: "ra", "ra2"' in problems(text)


def test_a_message_is_required() -> None:
    text = DEFAULT_TEXT.replace(SEED_MESSAGE, "")
    assert problems(text) == ['4:1: missing required key "message" at top level']


# ----------------------------------------------------------------- the pattern of a string field

PATTERNS = ["[a-z]{2,8}(-[0-9]+)?", "a.c", "(ab|cd)*e+", "[^x]?y", "v\\.[0-9]{1,3}", "[A-Z][a-z0-9_-]*", "x{2,}"]
VALUES = ["", "ab", "abc", "ab-12", "a\u00e9c", "aXc", "abcde", "e", "cdabee", "y", "xy", "zy", "v.1", "v.1234", "vx1",
          "Hello_1", "hello", "xx", "xxxx", "x", "a-", "ab-"]


def test_a_pattern_means_the_same_in_python_and_in_bash() -> None:
    string = FIELD_TYPES["string"]
    fields = [string.model_validate({"type": "string", "pattern": p, "required": True}) for p in PATTERNS]
    script = "export LC_ALL=C\n" + "".join(
        f"pattern={shell_quote(field.arguments()[1])}\n" + "".join(
            f"if [[ {shell_quote(value)} =~ $pattern ]]; then echo 1; else echo 0; fi\n" for value in VALUES)
        for field in fields)
    bash = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.split()
    python = ["1" if field.refuses(value) is None else "0" for field in fields for value in VALUES]
    assert bash == python
    assert "1" in python and "0" in python


@pytest.mark.parametrize("pattern", ["\\d", "[\\.]", "^a", "a$", "a**", "(a|)", "()", "[z-a]", "[a-Z]", "a{3,1}",
                                     "a{,2}", "[[:alpha:]]", "(a", "a)", "[]", "", "a\u00e9"])
def test_a_pattern_outside_the_common_syntax_is_refused(pattern: str) -> None:
    assert ere_problem(pattern) is not None


# ----------------------------------------------------------------- schedule.sh, for another message


def test_the_other_message_builds_and_help_lists_its_fields(other_scripts: Path) -> None:
    result = subprocess.run(["bash", str(other_scripts / "schedule.sh"), "--help"], capture_output=True, text=True,
                            check=True)
    lines = result.stdout.splitlines()
    assert lines[1] == ("       ROWS_OBJECT=ROWS [MODE_OBJECT=MODE] [TAG_OBJECT=TAG] [SKY_DEC_OBJECT=DEC] "
                        "[SKY_RA_OBJECT=RA] NAME_OBJECT=LABEL schedule.sh [--dry-run] FILES.txt...")
    assert lines[3].strip() == ('{"rows": ROWS, "table": BUCKET/KEY, "name": LABEL[, "mode": MODE][, "tag": TAG]'
                                '[, "sky_dec": DEC][, "sky_ra": RA]}')
    assert "  rows     required: a whole number from 1 to 1000" in lines
    assert '  table    required: BUCKET/KEY, an object in remote "ceph", ending in .csv (in any case)' in lines
    assert '  mode     default fast: one of "fast" or "exact"' in lines
    assert "  tag      default run: text matching [a-z]{2,8}(-[0-9]+)?" in lines


def test_the_other_message_is_read_in_its_declared_order_with_its_defaults(other_scripts: Path, tmp_path: Path) -> None:
    result = dry_run(other_scripts, tmp_path,
                     {"rows": 7, "table": "bucket/t.CSV", "mode": "exact", "tag": "ab-1", "sky_dec": -5,
                      "sky_ra": "1:00:00", "name": "n1"},
                     {"name": "n2", "table": "bucket/u.csv", "rows": "1000"})
    assert result.returncode == 0, result.stderr
    assert "# sync_in.list: bucket/t.CSV" in result.stdout and "# sync_in.list: bucket/u.csv" in result.stdout
    # world to pixel gets each object's RA and Dec fields, crop its label field (the defaults where none is given)
    assert [line.split()[2:4] for line in task_lines(result.stdout, "world_to_pixel")] == [["1:00:00", "-5"],
                                                                                         ["0", "0"]]
    assert [line.split()[4] for line in task_lines(result.stdout, "crop")] == ["n1", "n2"]


@pytest.mark.parametrize(("fields", "expected"), [
    ({"rows": 0}, 'field "rows" 0 must be a whole number from 1 to 1000'),
    ({"rows": 1001}, 'field "rows" 1001 must be a whole number from 1 to 1000'),
    ({"rows": 2.5}, 'field "rows" 2.5 must be a whole number from 1 to 1000'),
    ({"rows": "1e3"}, 'field "rows" 1e3 must be a whole number from 1 to 1000'),
    ({"rows": "99999999999999999999"}, 'field "rows" 99999999999999999999 must be a whole number'),
    ({"rows": True}, 'field "rows" must be a number or a string'),
    ({"table": "bucket/t.fits"}, 'field "table" bucket/t.fits must end in .csv'),
    ({"table": "Bucket/t.csv"}, 'field "table" Bucket/t.csv must start with a bucket name'),
    ({"table": 5}, 'field "table" must be a string'),
    ({"mode": "slow"}, 'field "mode" slow must be one of "fast" or "exact"'),
    ({"tag": "A1"}, 'field "tag" A1 must be text matching [a-z]{2,8}(-[0-9]+)?'),
    ({"tag": "ab\u0007"}, 'field "tag" $\'ab\\a\' contains a control character'),
    ({"sky_ra": "24:00:00"}, 'field "sky_ra" 24:00:00 must be decimal degrees in [0, 360)'),
    ({"sky_dec": 91}, 'field "sky_dec" 91 must be decimal degrees in [-90, 90]'),
    ({"name": "a b"}, 'field "name" a\\ b must be 1 to 64 letters'),
    ({"extra": 1}, 'unknown field extra: expected "rows", "table", "name" and optionally "mode", "tag", '
     '"sky_dec" and "sky_ra"'),
    ({"rows": None}, 'field "rows" must be a number or a string'),
])
def test_the_other_message_refuses_what_its_declaration_refuses(other_scripts: Path, tmp_path: Path, fields: dict,
                                                               expected: str) -> None:
    message = {"rows": 3, "table": "bucket/t.csv", "name": "n", **fields}
    result = dry_run(other_scripts, tmp_path, message)
    assert result.returncode == 2, result.stderr
    assert f"messages.json: {expected}" in result.stderr
    assert result.stdout == ""


def test_the_other_message_names_its_missing_and_repeated_fields(other_scripts: Path, tmp_path: Path) -> None:
    missing = dry_run(other_scripts, tmp_path, {"table": "bucket/t.csv", "name": "n"})
    assert missing.returncode == 2 and 'messages.json: field "rows" is missing' in missing.stderr
    twice = dry_run(other_scripts, tmp_path, '{"rows": 1, "rows": 2, "table": "bucket/t.csv", "name": "n"}')
    assert twice.returncode == 2 and 'messages.json: field "rows" is given twice' in twice.stderr


def test_a_list_of_files_takes_every_other_field_from_the_environment(other_scripts: Path, tmp_path: Path) -> None:
    (tmp_path / "tables.txt").write_text("bucket/a.csv\nbucket/b.csv\n")
    environment = {"PATH": os.environ["PATH"], "MYSCRATCH": "/scratch/x", "NAME_OBJECT": "n"}
    command = ["bash", str(other_scripts / "schedule.sh"), "--dry-run", str(tmp_path / "tables.txt")]
    needs = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    assert needs.returncode == 2 and "a list of files needs ROWS_OBJECT in the environment" in needs.stderr
    done = subprocess.run(command, capture_output=True, text=True, env={**environment, "ROWS_OBJECT": "5",
                                                                        "SKY_RA_OBJECT": "10"}, check=False)
    assert done.returncode == 0, done.stderr
    assert [line.split()[2:4] for line in task_lines(done.stdout, "world_to_pixel")] == [["10", "0"], ["10", "0"]]
    refused = subprocess.run(command, capture_output=True, text=True, env={**environment, "ROWS_OBJECT": "x"},
                             check=False)
    assert refused.returncode == 2 and 'tables.txt:1: field "rows" x must be a whole number' in refused.stderr
