"""The exit codes every generated script shares, by name, and what each means.

Every script defines them as EXIT_ variables and lists them in its --help (the job graph carries
them); a failed object's outcome file records one. Their meanings still name the seed kinds' tools.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExitCode:
    name: str
    code: int
    meaning: str


EXIT_CODES = (
    ExitCode("OK", 0, "success"),
    ExitCode("UNEXPECTED", 1, "a command failed unexpectedly (the message names the file and line)"),
    ExitCode("BAD_INPUT", 2, "bad usage or input: nothing was done"),
    ExitCode("TOOL_MISSING", 3, "a tool or module is missing (rclone, singularity, sky2xy, astcrop)"),
    ExitCode("NO_SUCH_FILE", 4, "a file is missing (the image is not in the bucket, an input is absent)"),
    ExitCode("OFF_IMAGE", 5, "the object is not on the image (sky2xy off image/offscale, astcrop no overlap)"),
    ExitCode("BAD_IMAGE", 6, "the image is not usable (not FITS, no WCS)"),
    ExitCode("TOOL_FAILED", 7, "a tool failed (a transfer failed or was incomplete, a tool crashed)"),
    ExitCode("SUBMIT_FAILED", 8, "a submission failed; every job already submitted was cancelled"),
    ExitCode("SOME_FAILED", 9, "a run finished with failures: some objects or jobs failed (see its results.json)"),
    ExitCode("SCRATCH_FAILED", 10, "scratch could not be written (read-only, full or not permitted): nothing was submitted, or no report written"),
)
