"""The exit codes every generated script shares, by name, and what each means.

Every script defines them as EXIT_ variables and lists them in its --help (the job graph carries
them); a failed object's outcome file records one. A meaning here names no tool and no kind: the
planner adds, in brackets, the tools of the spec's steps and what its steps' kinds say they mean by a
code (`Kind.exits`), so that a checksum workflow's --help does not speak of images and WCS.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExitCode:
    name: str
    code: int
    meaning: str
    examples: tuple[str, ...] = ()
    """What the code means whatever the steps, after what the spec's kinds say (`Kind.exits`)."""

    def told(self, examples: tuple[str, ...]) -> ExitCode:
        """The code with `examples` (the spec's own) before its own, in brackets after its meaning."""
        every = tuple(dict.fromkeys((*examples, *self.examples)))
        return ExitCode(self.name, self.code, f"{self.meaning} ({', '.join(every)})" if every else self.meaning)


EXIT_CODES = (
    ExitCode("OK", 0, "success"),
    ExitCode("UNEXPECTED", 1, "a command failed unexpectedly (the message names the file and line)"),
    ExitCode("BAD_INPUT", 2, "bad usage or input: nothing was done"),
    ExitCode("TOOL_MISSING", 3, "a tool or module is missing"),
    ExitCode("NO_SUCH_FILE", 4, "a file is missing", ("an input is absent",)),
    ExitCode("OFF_IMAGE", 5, "the object is not on the image"),
    ExitCode("BAD_IMAGE", 6, "the image is not usable"),
    ExitCode("TOOL_FAILED", 7, "a tool failed", ("a tool crashed",)),
    ExitCode("SUBMIT_FAILED", 8, "a submission failed; every job already submitted was cancelled"),
    ExitCode("SOME_FAILED", 9, "a run finished with failures: some objects or jobs failed (see its results.json)"),
    ExitCode("SCRATCH_FAILED", 10, "scratch could not be written (read-only, full or not permitted): nothing was submitted, or no report written"),
)
