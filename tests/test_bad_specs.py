"""Every spec in fixtures/specs/bad/ fails with exactly the diagnostics in its .expected file.

`ltsflow check` runs in this process for each spec (its `main`, as the command runs it: a process
for each would cost 30 start-ups of the compiler), and `ltsflow build` as a real subprocess for a few,
which must also leave the output alone.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.cli import main

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "fixtures" / "specs" / "bad"
DEFAULT_SPEC = ROOT / "fixtures" / "specs" / "lts-template.yaml"
LTSFLOW = Path(sys.executable).parent / "ltsflow"
SPECS = sorted(BAD.glob("*.yaml"))
NAMES = [spec.stem for spec in SPECS]
BUILT = ["several_errors", "yaml_syntax", "duplicate_key", "not_federated"]
DIAGNOSTIC = re.compile(r"(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)")


def relative(spec: Path) -> str:
    return spec.relative_to(ROOT).as_posix()


def expected_lines(name: str) -> list[str]:
    return (BAD / f"{name}.expected").read_text().splitlines()


def summary(count: int) -> str:
    return f"ltsflow: {count} problem{'s' if count != 1 else ''} in the spec"


@pytest.fixture(scope="module")
def checked() -> dict[str, subprocess.CompletedProcess[str]]:
    """`ltsflow check` on every bad spec, from the project's root."""
    results = {}
    for spec in SPECS:
        out, err = io.StringIO(), io.StringIO()
        arguments = ["check", relative(spec)]
        with contextlib.chdir(ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(arguments)
        results[spec.stem] = subprocess.CompletedProcess(arguments, code, out.getvalue(), err.getvalue())
    return results


def test_the_bad_specs_cover_every_kind_of_mistake() -> None:
    assert len(SPECS) >= 14
    assert sorted(p.stem for p in BAD.glob("*.expected")) == NAMES
    assert {
        "unknown_top_key", "unknown_nested_key", "missing_required_key", "wrong_type", "bad_dependency_type",
        "unknown_cluster", "unknown_partition", "unknown_remote", "unknown_dependency", "dependency_cycle",
        "not_federated", "yaml_syntax", "duplicate_key", "scratch_command", "scratch_relative", "bad_version",
        "missing_action", "duplicate_action", "bad_resources", "several_errors",
    } <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_expected_files_are_well_formed(name: str) -> None:
    lines = expected_lines(name)
    assert lines, f"{name}.expected is empty"
    spec_lines = (BAD / f"{name}.yaml").read_text().split("\n")
    positions = []
    for line in lines:
        match = DIAGNOSTIC.fullmatch(line)
        assert match, line
        assert match["file"] == f"fixtures/specs/bad/{name}.yaml"
        row, column = int(match["line"]), int(match["column"])
        # Every position is inside the file (an empty file has one empty line).
        assert 1 <= row <= len(spec_lines) and 1 <= column <= len(spec_lines[row - 1]) + 1, line
        positions.append((row, column, match["message"]))
    assert positions == sorted(set(positions)), "diagnostics must be sorted and unique"


@pytest.mark.parametrize("name", NAMES)
def test_check_reports_exactly_the_expected_diagnostics(
    name: str, checked: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = checked[name]
    expected = expected_lines(name)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [*expected, summary(len(expected))]


@pytest.mark.parametrize("name", NAMES)
def test_each_bad_spec_is_the_default_spec_with_a_mistake(name: str) -> None:
    text = (BAD / f"{name}.yaml").read_text()
    if name == "empty":
        assert text.strip().startswith("#")
        return
    default = DEFAULT_SPEC.read_text().splitlines()
    lines = text.splitlines()
    assert text != DEFAULT_SPEC.read_text()
    # A copy: most lines are the default's own lines.
    shared = len(set(lines) & set(default))
    assert shared >= len(set(default)) - 8, f"{name} is not a copy of the default spec"


@pytest.mark.parametrize("name", BUILT)
def test_build_fails_the_same_way_and_writes_nothing(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run([str(LTSFLOW), "build", relative(BAD / f"{name}.yaml"), "-o", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    expected = expected_lines(name)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [*expected, summary(len(expected))]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_build_leaves_the_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "schedule.sh").write_bytes(b"#!/bin/bash\necho previous\n")
    (out / "manifest.json").write_text('{"ltsflow": "0.1.0", "files": {}}\n')
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = subprocess.run([str(LTSFLOW), "build", relative(BAD / "several_errors.yaml"), "-o", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
