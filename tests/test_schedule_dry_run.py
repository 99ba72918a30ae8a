"""schedule.sh --dry-run: the exact sbatch command lines, for messages and for files.txt.

A dry run checks every input and prints what it would submit; these tests read
those lines back with shlex, so they assert the argv sbatch would receive.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.chain import crop_key

SCRATCH = "/scratch/pawsey0001/alice"
ROOT = f"{SCRATCH}/lts-template/data"
RUN = f"{ROOT}/runs/dry-run"
CREDENTIALS = "RCLONE_CONFIG_CEPH_ACCESS_KEY_ID RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY"
IMAGE = "lts-template/data/frame-z-004874-4-0422.fits"


def run_dry(scripts: Path, *inputs: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": os.environ["PATH"], "MYSCRATCH": SCRATCH, **(env or {})}
    return subprocess.run(["bash", str(scripts / "schedule.sh"), "--dry-run", *map(str, inputs)],
                          capture_output=True, text=True, env=environment, check=False)


def sbatch_lines(output: str) -> list[list[str]]:
    return [shlex.split(line) for line in output.splitlines() if line.startswith("sbatch ")]


def comments(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("#")]


def message(tmp_path: Path, name: str = "message.json", **fields: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(fields))
    return path


def expected_chain(scripts: Path) -> list[list[str]]:
    common = ["--kill-on-invalid-dep=yes"]
    return [
        ["sbatch", "--parsable", "--clusters=zeus", "--partition=copyq",
         "--job-name=lts-template-sync_in-dry-run", f"--output={RUN}/logs/sync_in-%j.log", *common,
         "--export=ALL", f"{scripts}/sync.sh", "--images", RUN, "ceph:", f"{ROOT}/images"],
        ["sbatch", "--parsable", "--clusters=magnus", "--partition=debugq",
         "--job-name=lts-template-world_to_pixel-dry-run", f"--output={RUN}/logs/world_to_pixel-%j.log", *common,
         "--dependency=afterok:@sync_in", "--export=ALL",
         f"{scripts}/get_world_2_pix.sh", "--bind", ROOT, "--bind", RUN, "--batch", f"{RUN}/tasks/world_to_pixel.tsv"],
        ["sbatch", "--parsable", "--clusters=magnus", "--partition=debugq",
         "--job-name=lts-template-crop-dry-run", f"--output={RUN}/logs/crop-%j.log", *common,
         "--dependency=afterok:@world_to_pixel", "--export=ALL",
         f"{scripts}/crop_image_around_pixels.sh", "--bind", ROOT, "--bind", RUN, "--batch", f"{RUN}/tasks/crop.tsv"],
        ["sbatch", "--parsable", "--clusters=zeus", "--partition=copyq",
         "--job-name=lts-template-sync_out-dry-run", f"--output={RUN}/logs/sync_out-%j.log", *common,
         "--dependency=afterok:@crop", "--export=ALL",
         f"{scripts}/sync.sh", "--results", RUN, f"{RUN}/out", "ceph:"],
    ]


def test_one_message_gives_the_four_job_chain(scripts_dir: Path, tmp_path: Path) -> None:
    result = run_dry(scripts_dir, message(tmp_path, file=IMAGE, ra="0.1", dec="0.25"))
    assert result.returncode == 0, result.stderr
    assert sbatch_lines(result.stdout) == expected_chain(scripts_dir)
    # each sbatch line follows the names its job keeps (those set here: PATH, not HOME)
    assert [line for line in comments(result.stdout) if line.startswith("# environment")] == [
        f"# environment of sync_in: {CREDENTIALS} PATH, SLURM_*, SBATCH_*",
        "# environment of world_to_pixel: PATH, SLURM_*, SBATCH_*",
        "# environment of crop: PATH, SLURM_*, SBATCH_*",
        f"# environment of sync_out: {CREDENTIALS} PATH, SLURM_*, SBATCH_*",
    ]
    task_lines = [shlex.split(line.split(":", 1)[1]) for line in comments(result.stdout) if " task " in line]
    assert task_lines == [
        [f"{RUN}/failed/0", f"{RUN}/images/0.fits", "0.1", "0.25", f"{RUN}/xy/0.xy"],
        [f"{RUN}/failed/0", f"{RUN}/images/0.fits", f"{RUN}/out/0.fits", f"{RUN}/xy/0.xy", "galaxy_1", "20"],
    ]
    assert f"# results: lts-template/results/dry-run.json" in comments(result.stdout)


def test_many_objects_fetch_each_image_once_and_stay_four_jobs(scripts_dir: Path, tmp_path: Path) -> None:
    other = "lts-template/data/frame-other.fits"
    inputs = [
        message(tmp_path, "a.json", file=IMAGE, ra=0.1, dec=0.25, label="a"),
        message(tmp_path, "b.json", file=IMAGE, ra="0:00:30", dec="+00:15:00", label="b"),
        message(tmp_path, "c.json", file=other, ra=359.5, dec=-89.9),
    ]
    result = run_dry(scripts_dir, *inputs)
    assert result.returncode == 0, result.stderr
    assert sbatch_lines(result.stdout) == expected_chain(scripts_dir)
    assert [c for c in comments(result.stdout) if "sync_in.list" in c] == [
        f"# sync_in.list: {IMAGE}", f"# sync_in.list: {other}"]
    assert len([c for c in comments(result.stdout) if "crop task" in c]) == 3


def test_seed_files_txt_form_with_environment(scripts_dir: Path, tmp_path: Path) -> None:
    files = tmp_path / "files.txt"
    files.write_text(IMAGE + "\n")
    result = run_dry(scripts_dir, files, env={"RA_OBJECT": "0.1", "DEC_OBJECT": "0.25", "LABEL_OBJECT": "ngc123"})
    assert result.returncode == 0, result.stderr
    assert sbatch_lines(result.stdout) == expected_chain(scripts_dir)
    task = next(line for line in comments(result.stdout) if "crop task 0" in line)
    assert shlex.split(task.split(":", 1)[1])[4] == "ngc123"
    assert f"# sync_in.list: {IMAGE}" in comments(result.stdout)


def test_files_txt_needs_ra_and_dec(scripts_dir: Path, tmp_path: Path) -> None:
    files = tmp_path / "files.txt"
    files.write_text(IMAGE + "\n")
    result = run_dry(scripts_dir, files, env={"DEC_OBJECT": "0.25"})
    assert result.returncode == 2
    assert "needs RA_OBJECT" in result.stderr
    assert sbatch_lines(result.stdout) == []


def test_key_with_spaces_and_quotes_passes_through_as_one_argument(scripts_dir: Path, tmp_path: Path) -> None:
    key = "my-bucket/odd dir/it's \"$(echo pwned)\" `x`; y.fits"
    result = run_dry(scripts_dir, message(tmp_path, file=key, ra="10", dec="-5"))
    assert result.returncode == 0, result.stderr
    task = next(line for line in comments(result.stdout) if "world_to_pixel task 0" in line)
    assert shlex.split(task.split(":", 1)[1])[1] == f"{RUN}/images/0.fits"
    [listed] = [line for line in comments(result.stdout) if line.startswith("# sync_in.list: ")]
    assert shlex.split(listed.split(": ", 1)[1]) == [key]
    assert "pwned" not in result.stderr


@pytest.mark.parametrize(("fields", "field"), [
    ({"file": "/etc/passwd.fits", "ra": "1", "dec": "1"}, "file"),
    ({"file": "bucket/../../etc/x.fits", "ra": "1", "dec": "1"}, "file"),
    ({"file": "-rf/x.fits", "ra": "1", "dec": "1"}, "file"),
    ({"file": "bucket/x.fits", "ra": "nan", "dec": "1"}, "ra"),
    ({"file": "bucket/x.fits", "ra": "1", "dec": "91"}, "dec"),
    ({"file": "bucket/x.fits", "ra": "1", "dec": "1", "label": "a b"}, "label"),
])
def test_bad_field_is_refused_naming_it(scripts_dir: Path, tmp_path: Path, fields: dict, field: str) -> None:
    result = run_dry(scripts_dir, message(tmp_path, **fields))
    assert result.returncode == 2
    assert f'field "{field}"' in result.stderr
    assert sbatch_lines(result.stdout) == []


def test_help_exits_zero_and_lists_exit_codes(scripts_dir: Path) -> None:
    scripts = sorted(p.name for p in scripts_dir.glob("*.sh"))
    assert scripts == ["cancel.sh", "crop_image_around_pixels.sh", "get_world_2_pix.sh", "read_messages.sh",
                       "schedule.sh", "status.sh", "sync.sh"]
    for script in scripts:
        result = subprocess.run(["bash", str(scripts_dir / script), "--help"], capture_output=True, text=True, check=False)
        assert result.returncode == 0, script
        assert result.stdout.startswith("Usage: ")
        assert "Exit codes:" in result.stdout
        # the codes right-aligned, so that every meaning starts in one column (10 has two digits)
        table = result.stdout.split("Exit codes:\n", 1)[1].splitlines()
        assert [line[:6] for line in table] == [f"  {code:>2}  " for code in range(11)], (script, table)
        assert all(line[6] != " " for line in table), (script, table)


def test_an_unknown_option_is_a_usage_error_that_names_it(scripts_dir: Path) -> None:
    for script in sorted(p.name for p in scripts_dir.glob("*.sh")):
        for args in (["--bogus"], ["--bogus", "a", "b"]):
            result = subprocess.run(["bash", str(scripts_dir / script), *args], capture_output=True, text=True,
                                    check=False)
            assert result.returncode == 2, (script, result.stderr)
            assert result.stderr.endswith(f"{script}: error: unknown option --bogus; see --help\n"), (script, result.stderr)


def test_one_file_may_hold_many_messages_as_json_lines(scripts_dir: Path, tmp_path: Path) -> None:
    lines = tmp_path / "batch.json"
    lines.write_text("\n".join(json.dumps({"file": f"bucket/data/image{i % 2}.fits", "ra": 10 + i, "dec": -5,
                                           "label": f"object{i}"}) for i in range(5)) + "\n")
    result = run_dry(scripts_dir, lines)
    assert result.returncode == 0, result.stderr
    assert sbatch_lines(result.stdout) == expected_chain(scripts_dir)
    assert [c for c in comments(result.stdout) if "sync_in.list" in c] == [
        "# sync_in.list: bucket/data/image0.fits", "# sync_in.list: bucket/data/image1.fits"]
    assert len([c for c in comments(result.stdout) if "crop task" in c]) == 5


def test_a_bad_message_among_many_is_named_by_its_position(scripts_dir: Path, tmp_path: Path) -> None:
    lines = tmp_path / "batch.json"
    lines.write_text('{"file": "bucket/a.fits", "ra": 1, "dec": 1}\n{"file": "bucket/b.fits", "ra": 1, "dec": 100}\n')
    result = run_dry(scripts_dir, lines)
    assert result.returncode == 2
    assert 'batch.json:2: field "dec" 100 must be' in result.stderr
    assert sbatch_lines(result.stdout) == []


def test_schedule_sh_gives_the_readers_messages_and_exit_status_as_its_own(scripts_dir: Path, tmp_path: Path) -> None:
    """schedule.sh runs the read_messages.sh beside it: here a stand-in, beside a copy of schedule.sh."""
    copy = tmp_path / "scripts"
    copy.mkdir()
    (copy / "schedule.sh").write_bytes((scripts_dir / "schedule.sh").read_bytes())
    path = message(tmp_path, file=IMAGE, ra="0.1", dec="0.25")
    reader = copy / "read_messages.sh"
    reader.write_text('printf "reader: %s\\n" "$*" >&2\nreadlink /proc/$$/fd/1 >"${0%/*}/stdout"\nexit 7\n')
    result = run_dry(copy, path)
    assert (result.returncode, result.stdout, result.stderr) == (7, "", f"reader: -- {path}\n")
    # it wrote to a file of schedule.sh's, which is gone
    written = Path((copy / "stdout").read_text().strip())
    assert written.name.startswith("ltsflow-requests.") and not written.exists()
    # values that are no whole number of requests (6 values each) are a fault, not input
    reader.write_text("printf 'a\\0b\\0c\\0'\n")
    result = run_dry(copy, path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.endswith("error: read_messages.sh wrote 3 values: not 6 a request\n"), result.stderr
    reader.unlink()
    result = run_dry(copy, path)
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr.endswith(f"error: {reader} is missing: schedule.sh reads its input with it\n"), result.stderr
