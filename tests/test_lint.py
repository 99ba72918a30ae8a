"""The project's own shell code is held to shellcheck too: bats files, helpers, CI and fixtures.

The generated scripts pass every optional check (tests/test_verify.py); the test code
passes the default checks (its bats-provided variables would only add noise).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_projects_shell_code_is_shellcheck_clean() -> None:
    files = sorted([*ROOT.glob("tests/bats/*.bats"), *ROOT.glob("tests/bats/*.bash"), *ROOT.glob("tests/slurm/*.sh"),
                    ROOT / "tests" / "system-packages.sh", ROOT / ".ci" / "run"])
    assert len(files) >= 10
    result = subprocess.run([str(Path(sys.executable).parent / "shellcheck"), *map(str, files)],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout
