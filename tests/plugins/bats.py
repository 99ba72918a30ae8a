"""Run bats files from pytest: each `@test` is a pytest item, each file runs once.

bats runs a whole file with TAP output the first time one of its items runs;
every item then reports its own result, and a failing item shows the lines bats
printed for it. (pytest-shell, the wrapper first named for this, is unmaintained
since 2022, slow, mixes stderr into stdout and imports `pipes`, which Python 3.13
removed.)
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.shimlib import PYCACHE_ENV, shims_pycache

_TEST = re.compile(r'^\s*@test\s+(?:"((?:[^"\\]|\\.)*)"|\'([^\']*)\')\s*\{', re.MULTILINE)
_RESULT = re.compile(r"^(ok|not ok) (\d+) (.*)$")


def bats_executable() -> str:
    beside = Path(sys.executable).parent / "bats"
    if not beside.exists():
        pytest.fail("bats not found beside the Python interpreter: install the bats-core package (make test does)")
    return str(beside)


@dataclass
class _FileRun:
    results: dict[int, tuple[bool, list[str]]] = field(default_factory=dict)
    output: str = ""


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".bats":
        return BatsFile.from_parent(parent, path=file_path)
    return None


class BatsFile(pytest.File):
    run_result: _FileRun | None = None

    def collect(self):
        text = self.path.read_text()
        for number, match in enumerate(_TEST.finditer(text), start=1):
            name = match.group(1) if match.group(1) is not None else match.group(2)
            yield BatsItem.from_parent(self, name=name, number=number)

    def run_once(self) -> _FileRun:
        if self.run_result is None:
            self.run_result = _run_bats(self.path)
        return self.run_result


class BatsFailure(Exception):
    pass


class BatsItem(pytest.Item):
    def __init__(self, *, number: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.number = number

    def runtest(self) -> None:
        run = self.parent.run_once()
        if self.number not in run.results:
            raise BatsFailure(f"bats gave no result for test {self.number}:\n{run.output}")
        passed, lines = run.results[self.number]
        if not passed:
            raise BatsFailure("\n".join(lines))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, BatsFailure):
            return f"bats test failed: {self.name}\n{excinfo.value}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"bats: {self.name}"


_ROOT = Path(__file__).resolve().parents[2]
_BUILT: list[Path] = []


def _scripts() -> Path:
    """The default spec, compiled once per session for every bats file."""
    if not _BUILT:
        from compiler.build import build

        out = Path(tempfile.mkdtemp(prefix="ltsflow-bats-")) / "out"
        build(_ROOT / "fixtures" / "specs" / "lts-template.yaml", out)
        atexit.register(shutil.rmtree, out.parent, True)
        _BUILT.append(out)
    return _BUILT[0]


def _run_bats(path: Path) -> _FileRun:
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(_ROOT),
        "LTSFLOW_SCRIPTS": str(_scripts()),
        "LTSFLOW_ROOT": str(_ROOT),
        PYCACHE_ENV: str(shims_pycache()),
    }
    process = subprocess.run([bats_executable(), "--tap", str(path)], capture_output=True, text=True,
                             env=environment, check=False)
    run = _FileRun(output=process.stdout + process.stderr)
    current: int | None = None
    for line in process.stdout.splitlines():
        result = _RESULT.match(line)
        if result:
            current = int(result.group(2))
            run.results[current] = (result.group(1) == "ok", [line])
        elif current is not None and line.startswith("#"):
            run.results[current][1].append(line)
    return run
