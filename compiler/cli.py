"""The command line: `ltsflow build|check|plan|schema|reference`.

Exit codes: 0 ok, 1 I/O or internal failure, 2 the spec is wrong (or bad usage).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .build import build, check_spec
from .diagnostics import BuildError, SpecError
from .plan import JobGraph
from .reference import BEGIN, END, MESSAGE_BEGIN, MESSAGE_END, message_reference, reference, splice
from .spec import Spec

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_SPEC = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        return int(arguments.run(arguments))
    except SpecError as error:
        for diagnostic in error.diagnostics:
            print(diagnostic, file=sys.stderr)
        count = len(error.diagnostics)
        print(f"ltsflow: {count} problem{'s' if count != 1 else ''} in the spec", file=sys.stderr)
        return EXIT_BAD_SPEC
    except BuildError as error:
        print(f"ltsflow: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as error:
        print(f"ltsflow: error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_FAILURE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltsflow",
        description="Compile a YAML pipeline spec into standalone, shellcheck-clean bash scripts for Slurm.",
        epilog="Exit codes: 0 ok, 1 I/O or internal failure, 2 bad spec or usage.",
    )
    parser.add_argument("--version", action="version", version=f"ltsflow {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    build_parser = commands.add_parser("build", help="compile SPEC into scripts", description=(
        "Compile SPEC into schedule.sh, the step scripts and manifest.json. The output directory is "
        "replaced atomically: a failed build leaves it as it was."))
    build_parser.add_argument("spec", type=Path, metavar="SPEC")
    build_parser.add_argument("-o", "--output", type=Path, default=Path("out"), metavar="DIR",
                              help="output directory (default: out)")
    build_parser.set_defaults(run=_build)

    check_parser = commands.add_parser("check", help="report every problem in SPEC", description=(
        "Check SPEC and print every problem as file:line:col: message. Prints nothing when it is valid."))
    check_parser.add_argument("spec", type=Path, metavar="SPEC")
    check_parser.set_defaults(run=_check)

    plan_parser = commands.add_parser("plan", help="show the job graph", description=(
        "Show the job graph SPEC compiles to: a table, or JSON, Mermaid or DOT for documentation."))
    plan_parser.add_argument("spec", type=Path, metavar="SPEC")
    plan_parser.add_argument("--format", choices=("table", "json", "mermaid", "dot"), default="table")
    plan_parser.set_defaults(run=_plan)

    schema_parser = commands.add_parser("schema", help="print the spec's JSON Schema", description=(
        "Print the JSON Schema (draft 2020-12) of the spec, for editors and other tools. It is made from the "
        "same models as `ltsflow check`, and checks every key and type, but not what `ltsflow check` "
        "checks across keys (names that must exist, dependencies, the formats of names and paths)."))
    schema_parser.set_defaults(run=_schema)

    reference_parser = commands.add_parser("reference", help="print the spec reference (markdown)", description=(
        "Print the spec reference, a markdown table of every key of the spec, made from the same models as "
        "the JSON Schema. With --write FILE, replace the reference in FILE (between the lines "
        f"{BEGIN!r} and {END!r}) instead, as `make reference` does for README.md."))
    reference_parser.add_argument("--write", type=Path, metavar="FILE",
                                  help="rewrite the reference in FILE in place instead of printing it")
    reference_parser.add_argument("--spec", type=Path, metavar="SPEC",
                                  help="also the table of SPEC's message fields (with --write: between the lines "
                                  f"{MESSAGE_BEGIN!r} and {MESSAGE_END!r})")
    reference_parser.set_defaults(run=_reference)
    return parser


def _build(arguments: argparse.Namespace) -> int:
    compiled = build(arguments.spec, arguments.output)
    names = ", ".join(s.name for s in compiled.scripts)
    print(f"ltsflow: wrote {arguments.output}/ ({names}, manifest.json)", file=sys.stderr)
    return EXIT_OK


def _check(arguments: argparse.Namespace) -> int:
    check_spec(arguments.spec)
    return EXIT_OK


def _plan(arguments: argparse.Namespace) -> int:
    graph = check_spec(arguments.spec)
    print({"table": plan_table, "json": plan_json, "mermaid": plan_mermaid, "dot": plan_dot}[arguments.format](graph))
    return EXIT_OK


def _schema(_arguments: argparse.Namespace) -> int:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Spec.model_json_schema()}
    print(json.dumps(schema, indent=2, sort_keys=True))
    return EXIT_OK


def _reference(arguments: argparse.Namespace) -> int:
    table = reference()
    message = message_reference(check_spec(arguments.spec).message) if arguments.spec else None
    if arguments.write is None:
        print(table + ("\n" + message if message else ""), end="")
        return EXIT_OK
    path: Path = arguments.write
    text = path.read_text(encoding="utf-8")
    try:
        updated = splice(text, table)
        if message:
            updated = splice(updated, message, MESSAGE_BEGIN, MESSAGE_END)
    except ValueError as error:
        raise BuildError(f"{path} {error}") from None
    if updated == text:
        print(f"ltsflow: {path}: the spec reference is up to date", file=sys.stderr)
        return EXIT_OK
    temporary = path.with_name(f".{path.name}.ltsflow-tmp")
    temporary.write_text(updated, encoding="utf-8")
    os.replace(temporary, path)
    print(f"ltsflow: {path}: rewrote the spec reference", file=sys.stderr)
    return EXIT_OK


def _depends(job_depends: tuple) -> str:
    return ", ".join(f"{d.job} ({d.kind})" for d in job_depends) or "-"


def plan_table(graph: JobGraph) -> str:
    header = ("step", "script", "cluster", "partition", "depends on", "container")
    rows = [header] + [
        (job.name + (" [batch]" if job.per_object else ""), job.script, job.cluster, job.partition,
         _depends(job.depends_on), job.container or "-")
        for job in graph.jobs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def plan_json(graph: JobGraph) -> str:
    jobs = [{"step": job.name, "action": job.action, "script": job.script, "cluster": job.cluster,
             "partition": job.partition, "per_object": job.per_object, "container": job.container,
             "depends_on": [{"step": d.job, "type": d.kind} for d in job.depends_on],
             "exports": list(job.exports)} for job in graph.jobs]
    return json.dumps({"workflow": graph.workflow, "jobs": jobs}, indent=2)


def plan_mermaid(graph: JobGraph) -> str:
    lines = ["flowchart LR"]
    for job in graph.jobs:
        lines.append(f'  {job.name}["{job.name}<br/>{job.script}<br/>{job.cluster}/{job.partition}"]')
    for job in graph.jobs:
        lines.extend(f"  {d.job} -->|{d.kind}| {job.name}" for d in job.depends_on)
    return "\n".join(lines)


def plan_dot(graph: JobGraph) -> str:
    lines = [f'digraph "{graph.workflow}" {{', "  rankdir=LR;"]
    for job in graph.jobs:
        lines.append(f'  "{job.name}" [shape=box, label="{job.name}\\n{job.script}\\n{job.cluster}/{job.partition}"];')
    for job in graph.jobs:
        lines.extend(f'  "{d.job}" -> "{job.name}" [label="{d.kind}"];' for d in job.depends_on)
    lines.append("}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
