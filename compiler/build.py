"""The whole pipeline: load -> validate -> plan -> render -> verify -> write."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .diagnostics import Diagnostic, SpecError
from .load import Document, load_spec
from .plan import JobGraph, plan_jobs
from .render import Provenance, RenderedScript, render_scripts
from .spec import Spec
from .validate import validate_spec
from .verify import verify_scripts
from .write import make_manifest, write_output


@dataclass(frozen=True)
class Compiled:
    spec: Spec
    graph: JobGraph
    scripts: tuple[RenderedScript, ...]
    manifest: bytes


def build(spec_path: Path, out_dir: Path) -> Compiled:
    """Compile the spec at `spec_path` and write the scripts into `out_dir`."""
    compiled = compile_spec(spec_path)
    verify_scripts(compiled.scripts)
    write_output(out_dir, {s.name: s.text.encode() for s in compiled.scripts}, compiled.manifest)
    return compiled


def compile_spec(spec_path: Path) -> Compiled:
    """Everything but verify and write: the spec, its job graph, the scripts and their manifest."""
    source = spec_path.read_bytes()
    document = load_spec(_decode(source, spec_path), display_path(spec_path))
    spec = validate_spec(document)
    graph = plan_jobs(spec, step_lines(document))
    provenance = Provenance(document.file, hashlib.sha256(source).hexdigest(), __version__)
    scripts = render_scripts(graph, provenance)
    files = {s.name: s.text.encode() for s in scripts}
    return Compiled(spec, graph, scripts, make_manifest(files, provenance.spec_path, provenance.spec_sha256, __version__))


def check_spec(spec_path: Path) -> JobGraph:
    """Load, validate and plan: every problem of the spec, without rendering anything."""
    document = load_spec(_decode(spec_path.read_bytes(), spec_path), display_path(spec_path))
    return plan_jobs(validate_spec(document), step_lines(document))


def _decode(source: bytes, spec_path: Path) -> str:
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError([Diagnostic(display_path(spec_path), 1, 1, f"not UTF-8 text: {error.reason} at byte {error.start}")]) from None


def step_lines(document: Document) -> dict[str, int]:
    """The line each step is declared on, for the plan's table and for messages."""
    return {str(path[1]): position.key.line for path, position in document.positions.items()
            if len(path) == 2 and path[0] == "steps" and position.key is not None}


def display_path(path: Path) -> str:
    """The spec's path as the user would write it: relative to here when inside it."""
    relative = os.path.relpath(path)
    return Path(relative).as_posix() if not relative.startswith("..") else Path(os.path.abspath(path)).as_posix()
