"""Running a compiled chain in tests: schedule.sh, then the fake Slurm's drain, against S3.

Shared by the end-to-end tests under the shims (tests/test_end_to_end.py, tests/test_relay.py).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from tests.fitsimages import expected_crop, expected_pixel, read_crop
from tests.plugins.build import build_where_it_is
from tests.s3server import S3Server
from tests.shimlib import ShimState

RA, DEC = 150.0, 2.0
ROOT = Path(__file__).resolve().parents[1]
SHIMS = ROOT / "tests" / "shims"


class Run:
    """One schedule.sh run: its environment, result, run directory and jobs."""

    def __init__(self, scripts: Path, state: ShimState, s3: S3Server, tmp_path: Path, remote: str = "ceph",
                 **extra: str) -> None:
        self.scripts = scripts
        self.state = state
        self.workdir = tmp_path / "cwd"
        self.workdir.mkdir(exist_ok=True)
        self.scratch = tmp_path / "scratch"
        # The scratch here is under /tmp, which containers see by default, where a cluster's scratch is
        # not: the site's containers do not bind /tmp, so only what the plan binds reaches the tools.
        self.env = state.env(s3.env(remote), MYSCRATCH=str(self.scratch), RCLONE_RETRIES="1",
                             RCLONE_LOW_LEVEL_RETRIES="1", LTSFLOW_SHIM_NO_MOUNT="tmp", **extra)
        self.result: subprocess.CompletedProcess[str] | None = None

    def schedule(self, *inputs: str) -> subprocess.CompletedProcess[str]:
        self.result = subprocess.run(["bash", str(self.scripts / "schedule.sh"), *inputs], cwd=self.workdir,
                                     env=self.env, capture_output=True, text=True, check=False, timeout=120)
        return self.result

    def drain(self) -> dict[str, dict]:
        drained = self.state.drain(self.env, cwd=self.workdir)
        assert drained.returncode == 0, drained.stderr
        return {step_of(job): job for job in self.state.jobs()}

    @property
    def run_dir(self) -> Path:
        assert self.result is not None and self.result.returncode == 0, self.result and self.result.stderr
        return Path(self.result.stdout.strip())

    def log(self, job: dict) -> str:
        return "".join(Path(p).read_text(errors="replace") for p in job["logs"])

    def message(self, name: str = "message.json", **fields: object) -> str:
        (self.workdir / name).write_text(json.dumps(fields))
        return name

    def results(self) -> dict:
        """The run's results.json, as the sync-out step wrote it in the run directory."""
        return json.loads((self.run_dir / "results.json").read_text())

    @property
    def results_key(self) -> str:
        return (self.run_dir / "results.key").read_text().strip()

    def status(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(self.scripts / "status.sh"), str(self.run_dir)], cwd=self.workdir,
                              env=self.env, capture_output=True, text=True, check=False, timeout=60)


def step_of(job: dict, workflow: str = "lts-template") -> str:
    """The step a job runs, from its name WORKFLOW-STEP-RUN_ID (step names have no "-")."""
    return job["name"].removeprefix(f"{workflow}-").split("-", 1)[0]


def assert_crop_in_bucket(s3: S3Server, key: str, image: Path, xy_file: Path, ra: float, dec: float, width: int,
                          tmp_path: Path) -> None:
    """The crop at `key` is astropy's cutout around the pixel the chain used, which is astropy's pixel."""
    fields = xy_file.read_text().split()
    x, y = float(fields[4]), float(fields[5])
    expected_x, expected_y = expected_pixel(WCS(fits.getheader(image)), ra, dec)
    assert abs(x - expected_x) < 0.01 and abs(y - expected_y) < 0.01
    local = tmp_path / "downloaded.fits"
    local.write_bytes(s3.get_bytes(key))
    expected = expected_crop(fits.getdata(image), x, y, width)
    actual = read_crop(local)
    assert expected is not None and actual.shape == expected.shape
    assert np.array_equal(actual, expected, equal_nan=True)


# ----------------------------------------------------------------- crop keys, computed independently

def _twelve(digits: str) -> int:
    padded = (digits + "0" * 13)
    return int(padded[:12]) + (1 if padded[12] in "56789" else 0)


def _round_div(units: int, divisor: int) -> int:
    return (units + divisor // 2) // divisor


def _degrees(nano: int, negative: bool) -> str:
    sign = "-" if negative and nano else ""
    return f"{sign}{nano // 10**9}.{nano % 10**9:09d}"


def normal_angle(value: object, hours: bool) -> str:
    """RA (hours=True when sexagesimal means hours) or Dec as schedule.sh normalises it: decimal
    degrees with nine decimals, rounded half up on the magnitude; an RA that rounds to 360 is 0."""
    text = str(value)
    negative = text.startswith("-")
    text = text.lstrip("+-")
    if re.fullmatch(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
        # any JSON number form ("9e1", ".5", "5.", "0010"), written out exactly
        number = Decimal(text)
        whole, _, fraction = (format(number, "f") if number else "0").partition(".")
        nano = _round_div(int(whole) * 10**12 + _twelve(fraction), 1000)
    else:
        parts = re.fullmatch(r"(\d+):(\d+)(?::(\d+)(?:\.(\d+))?)?", text)
        assert parts, value
        seconds = int(parts[1]) * 3600 + int(parts[2]) * 60 + int(parts[3] or 0)
        nano = _round_div(seconds * 10**12 + _twelve(parts[4] or ""), 240000 if hours else 3600000)
    if hours and nano == 360 * 10**9:
        nano = 0
    return _degrees(nano, negative)


def crop_key(file: str, label: str, ra: object, dec: object, width: int = 20, prefix: str = "") -> str:
    """The key of the crop of one request: PREFIX + the image's key without its extension + label +
    the first 12 hex digits of sha256("RA DEC WIDTH\\n") in normalised degrees."""
    line = f"{normal_angle(ra, hours=True)} {normal_angle(dec, hours=False)} {width}\n"
    digest = hashlib.sha256(line.encode()).hexdigest()[:12]
    return f"{prefix}{file.rsplit('.', 1)[0]}_{label}_{digest}_crop.fits"


# ----------------------------------------------------------------- runs on a real Slurm

_COMPILED: dict[str, Path] = {}
"""Each spec text compile_for_slurm built in this process: its output, which callers get a copy of."""


def compile_for_slurm(spec: str, directory: Path, exports: str,
                      renames: tuple[tuple[str, str], ...] = ()) -> Path:
    """fixtures/specs/SPEC.yaml with `exports` appended (what its jobs need, by name), and each
    (old, new) of `renames` replaced in its text (for a spec of a site's cluster and partition names,
    which the real Slurm here does not have), built into DIRECTORY/out.

    A text is built once per process, from one directory of its own, and DIRECTORY/out is a copy of
    that build (the caller may change its copy). The scripts name the spec SPEC.yaml, whatever the
    directory (build_where_it_is), so a text built in an earlier session is not shellchecked again."""
    text = (ROOT / "fixtures" / "specs" / f"{spec}.yaml").read_text()
    for old, new in renames:
        assert old in text, old
        text = text.replace(old, new)
    text += exports
    if text not in _COMPILED:
        home = Path(tempfile.mkdtemp(prefix="ltsflow-slurm-spec-"))
        atexit.register(shutil.rmtree, home, True)
        source = home / f"{spec}.yaml"
        source.write_text(text)
        build_where_it_is(source, home / "out")
        _COMPILED[text] = home / "out"
    shutil.copytree(_COMPILED[text], directory / "out", symlinks=True)
    return directory / "out"


def real_slurm_environment(setup, s3: S3Server, work: Path, remote: str = "ceph") -> dict[str, str]:
    """A run's environment on the real Slurm `setup`: the remote's RCLONE_* variables, and a PATH with
    the singularity and module shims (sbatch is the real one) and this Python's tools (rclone)."""
    container = work / "container-shims"
    container.mkdir()
    for tool in ("singularity", "module"):
        (container / tool).symlink_to(SHIMS / tool)
    (work / "shim-state").mkdir()
    path = os.pathsep.join([str(container), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = setup.environ(**{k: v for k, v in s3.env(remote).items() if k.startswith("RCLONE_")})
    env.update(PATH=path, LTSFLOW_SHIM_STATE=str(work / "shim-state"))
    return env
