"""The command line: exit codes, what each subcommand prints, and where."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compiler import __version__
from compiler.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPEC = "fixtures/specs/lts-template.yaml"
LTSFLOW = Path(sys.executable).parent / "ltsflow"
STEPS = ["sync_in", "world_to_pixel", "crop", "sync_out"]
EDGES = [("sync_in", "world_to_pixel"), ("world_to_pixel", "crop"), ("crop", "sync_out")]


@pytest.fixture(autouse=True)
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Remembered shellcheck results go to a directory of this test run, not the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.fixture(autouse=True)
def in_the_source_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The spec paths are relative to the repository, as a user in it would type them."""
    monkeypatch.chdir(ROOT)


def ltsflow(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LTSFLOW), *arguments], capture_output=True, text=True, cwd=cwd, timeout=60)


def run(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    """Run the CLI in this process (fast); exit code, stdout, stderr."""
    try:
        code = main(list(arguments))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_version_from_the_installed_command() -> None:
    result = ltsflow("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"ltsflow {__version__}\n", "")


def test_version_from_python_dash_m() -> None:
    result = subprocess.run([sys.executable, "-m", "compiler", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert (result.returncode, result.stdout) == (0, f"ltsflow {__version__}\n")


@pytest.mark.parametrize(("command", "expected"), [
    ([], "usage: ltsflow [-h] [--version] COMMAND ..."),
    (["build"], "usage: ltsflow build [-h] [-o DIR] SPEC"),
    (["check"], "usage: ltsflow check [-h] SPEC"),
    (["plan"], "usage: ltsflow plan [-h] [--format {table,json,mermaid,dot}] SPEC"),
    (["schema"], "usage: ltsflow schema [-h]"),
])
def test_help_of_each_command_exits_0(capsys: pytest.CaptureFixture[str], command: list[str], expected: str) -> None:
    code, out, err = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(expected + "\n")
    assert err == ""


def test_top_level_help_lists_every_command_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--help")
    for command in ("build", "check", "plan", "schema"):
        assert re.search(rf"^\s+{command}\s+\S", out, re.MULTILINE), command
    assert "Exit codes: 0 ok, 1 I/O or internal failure, 2 bad spec or usage." in out


@pytest.mark.parametrize("arguments", [[], ["frobnicate"], ["check"], ["plan", SPEC, "--format", "xml"]])
def test_bad_usage_exits_2_with_usage_on_stderr(capsys: pytest.CaptureFixture[str], arguments: list[str]) -> None:
    code, out, err = run(capsys, *arguments)
    assert code == 2
    assert out == ""
    assert err.startswith("usage: ltsflow")
    assert "error:" in err


def test_check_of_the_default_spec_prints_nothing_and_exits_0() -> None:
    result = ltsflow("check", SPEC)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_missing_spec_file_exits_1_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    result = ltsflow("check", "no/such/spec.yaml")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "ltsflow: error: No such file or directory: no/such/spec.yaml\n"
    for command in ("build", "plan"):
        code, out, err = run(capsys, command, "no/such/spec.yaml")
        assert (code, out, err) == (1, "", "ltsflow: error: No such file or directory: no/such/spec.yaml\n")


def test_a_spec_that_is_not_utf8_is_a_spec_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes(b"name: caf\xe9\n")
    code, out, err = run(capsys, "check", str(spec))
    assert (code, out) == (2, "")
    assert err.endswith("ltsflow: 1 problem in the spec\n")
    assert ":1:1: not UTF-8 text: invalid continuation byte at byte 9\n" in err


def test_plan_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", SPEC)
    assert (code, err) == (0, "")
    header, *rows = out.rstrip("\n").split("\n")
    assert re.split(r"\s{2,}", header) == ["step", "script", "cluster", "partition", "depends on", "container"]
    cells = [re.split(r"\s{2,}", row) for row in rows]
    assert [row[0].split()[0] for row in cells] == STEPS
    assert cells[0] == ["sync_in", "sync.sh", "zeus", "copyq", "-", "-"]
    assert cells[1] == ["world_to_pixel [batch]", "get_world_2_pix.sh", "magnus", "debugq", "sync_in (afterok)",
                        "docker://curtinfop/wcstools"]
    assert cells[3] == ["sync_out", "sync.sh", "zeus", "copyq", "crop (afterok)", "-"]
    # Columns line up: every column starts at the same offset in every row.
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", header)]
    for row in rows:
        for start in starts[1:]:
            assert row[start - 2:start] == "  " and row[start] != " ", row


def test_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", SPEC, "--format", "json")
    plan = json.loads(out)
    assert code == 0
    assert plan["workflow"] == "lts-template"
    assert [job["step"] for job in plan["jobs"]] == STEPS
    edges = [(d["step"], job["step"]) for job in plan["jobs"] for d in job["depends_on"]]
    assert edges == EDGES
    assert {d["type"] for job in plan["jobs"] for d in job["depends_on"]} == {"afterok"}
    assert [job["per_object"] for job in plan["jobs"]] == [False, True, True, False]
    assert plan["jobs"][0]["exports"] == ["RCLONE_CONFIG_CEPH_ACCESS_KEY_ID", "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY"]


def test_plan_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", SPEC, "--format", "mermaid")
    lines = out.rstrip("\n").split("\n")
    assert code == 0 and lines[0] == "flowchart LR"
    nodes = [m.group(1) for line in lines if (m := re.fullmatch(r'  (\w+)\["\1<br/>[^"]+"\]', line))]
    assert nodes == STEPS
    edges = [(m.group(1), m.group(3)) for line in lines if (m := re.fullmatch(r"  (\w+) -->\|(\w+)\| (\w+)", line))]
    assert edges == EDGES
    assert len(lines) == 1 + len(STEPS) + len(EDGES)


def test_plan_dot(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", SPEC, "--format", "dot")
    lines = out.rstrip("\n").split("\n")
    assert code == 0
    assert lines[0] == 'digraph "lts-template" {' and lines[-1] == "}"
    nodes = [m.group(1) for line in lines if (m := re.fullmatch(r'  "(\w+)" \[shape=box, label="\1\\n[^"]+"\];', line))]
    assert nodes == STEPS
    edges = [m.groups() for line in lines if (m := re.fullmatch(r'  "(\w+)" -> "(\w+)" \[label="afterok"\];', line))]
    assert edges == EDGES
    assert out.count("{") == out.count("}")


def test_plan_of_a_bad_spec_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text((ROOT / SPEC).read_text().replace("version: 1", "version: 5"))
    code, out, err = run(capsys, "plan", str(spec))
    assert (code, out) == (2, "")
    assert err.endswith('4:10: invalid value 5 for "version". expected 1\nltsflow: 1 problem in the spec\n')


def test_schema_is_json_schema_with_the_steps(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "schema")
    schema = json.loads(out)
    assert (code, err) == (0, "")
    assert schema["title"] == "Spec"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "version", "name", "description", "scratch", "federated", "chain", "exports", "remotes", "clusters", "objects", "steps",
        "message",
    }
    assert set(schema["required"]) == {"version", "name", "scratch", "clusters", "steps", "message"}
    assert schema["properties"]["steps"]["type"] == "object"
    step = schema["$defs"]["Step"]
    assert step["properties"]["action"]["enum"] == ["sync-in", "world-to-pixel", "crop", "command", "sync-out", "report",
                                                   "notify"]
    assert out == json.dumps(schema, indent=2, sort_keys=True) + "\n"


def test_build_writes_the_output_and_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "build", SPEC, "-o", str(out_dir))
    assert (code, out) == (0, "")
    assert err == (f"ltsflow: wrote {out_dir}/ (cancel.sh, crop_image_around_pixels.sh, get_world_2_pix.sh, "
                   "read_messages.sh, schedule.sh, status.sh, sync.sh, manifest.json)\n")
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "cancel.sh", "crop_image_around_pixels.sh", "get_world_2_pix.sh", "manifest.json", "read_messages.sh",
        "schedule.sh", "status.sh", "sync.sh",
    ]


def test_build_refusing_to_replace_a_directory_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    code, out, err = run(capsys, "build", SPEC, "-o", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == (f"ltsflow: error: refusing to replace {tmp_path}: it is not empty and holds no ltsflow "
                   "manifest.json\n")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
