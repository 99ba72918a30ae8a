"""What a spec may ask of rclone beyond the remote's settings: the flags a sync step may set.

A flag is never shell text. The spec names one from RCLONE_FLAGS, with a value of the kind it
takes, and the job receives it as rclone's environment variable for that flag
(`--local-no-set-modtime` is RCLONE_LOCAL_NO_SET_MODTIME=true), so argv stays as the script
wrote it. Flags that ltsflow sets itself (time-outs, retries, the upload cut-off) or that would
weaken what it checks (checksums, certificates) are not in the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .diagnostics import quoted


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str
    """"switch" (no value: it turns the behaviour on), "count" (a whole number) or "size" (a number
    of bytes, with an optional K, M, G or T suffix, as rclone writes sizes)."""
    meaning: str

    @property
    def variable(self) -> str:
        return "RCLONE_" + self.name.upper().replace("-", "_")


RCLONE_FLAGS = {flag.name: flag for flag in (
    Flag("local-no-set-modtime", "switch", "leave a copied file's modification time at the time of the copy (Pawsey "
         "asks for it on /scratch, whose purge goes by modification time)"),
    Flag("transfers", "count", "files transferred at once"),
    Flag("checkers", "count", "files checked at once"),
    Flag("multi-thread-streams", "count", "streams a large file is downloaded in"),
    Flag("buffer-size", "size", "memory buffer of each transfer"),
    Flag("bwlimit", "size", "bandwidth limit, bytes per second"),
    Flag("s3-chunk-size", "size", "part size of a multipart upload (files of 5 GiB or more)"),
    Flag("s3-upload-concurrency", "count", "parts of one multipart upload sent at once"),
)}

_VALUE = {"count": re.compile(r"[1-9][0-9]{0,4}"), "size": re.compile(r"[1-9][0-9]{0,9}[KMGT]?")}
_FLAG = re.compile(r"--([a-z0-9][a-z0-9-]*)(?:=(.*))?", re.DOTALL)


def rclone_setting(text: str) -> tuple[str, str]:
    """`--name` or `--name=value`, checked against RCLONE_FLAGS, as (variable, value) for the job."""
    match = _FLAG.fullmatch(text)
    if match is None:
        raise ValueError(f"must be an rclone flag such as \"--transfers=8\", got {quoted(text)}")
    name, value = match.group(1), match.group(2)
    flag = RCLONE_FLAGS.get(name)
    if flag is None:
        known = ", ".join(f"--{known}" for known in RCLONE_FLAGS)
        raise ValueError(f"--{name} is not an rclone flag a step may set (these are: {known})")
    if flag.kind == "switch":
        if value is not None:
            raise ValueError(f"--{name} takes no value, got {quoted(text)}")
        return flag.variable, "true"
    if value is None or not _VALUE[flag.kind].fullmatch(value):
        example = "8" if flag.kind == "count" else "16M"
        raise ValueError(f"--{name} takes a {'whole number' if flag.kind == 'count' else 'size'} "
                         f"(such as --{name}={example}), got {quoted(text)}")
    return flag.variable, value
