"""The spec, version 1: pydantic models at the boundary, frozen after it.

These models define what a spec may say; `validate.py` turns a loaded document
into a `Spec` and maps every problem back to a line and column. Field docs here
are the reference (the README's spec table and the JSON Schema come from them).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .diagnostics import quoted
from .rclone import rclone_setting
from .words import Environment, Text

ACTIONS = ("sync-in", "world-to-pixel", "crop", "sync-out", "report")
"""What a step does; each has one script (SCRIPT_OF_ACTION). All but report are required."""
REQUIRED_ACTIONS = ("sync-in", "world-to-pixel", "crop", "sync-out")

SCRIPT_OF_ACTION = {
    "sync-in": "sync.sh",
    "world-to-pixel": "get_world_2_pix.sh",
    "crop": "crop_image_around_pixels.sh",
    "sync-out": "sync.sh",
    "report": "status.sh",
}
"""The script each action runs: steps that share a script must configure it alike."""

REMOTE_ACTIONS = ("sync-in", "sync-out")

DATA_FLOW = (("world-to-pixel", "sync-in"), ("crop", "world-to-pixel"), ("sync-out", "crop"))
"""(consumer, producer): the consumer reads what the producer wrote, so it must wait for it."""

STEP_NAME = re.compile(r"[a-z][a-z0-9_]*")
CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
REMOTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_WORKFLOW_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_MODULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+/-]*")
_IMAGE = re.compile(r"(docker|library|oras|shub)://[A-Za-z0-9][A-Za-z0-9._/:@+-]*|/[^\s]*\.sif")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PLACE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._-]+)*/?")
_TIME = re.compile(r"\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+(:\d{2}(:\d{2})?)?")
_MEMORY = re.compile(r"[1-9]\d*[KMGT]?")
_SLURM_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_BACKEND = re.compile(r"[a-z0-9]+")
_PROVIDER = re.compile(r"[A-Za-z0-9]+")
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.-]+(:\d+)?(/[^\s'\"\\`$]*)?")
_PATH_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_PATH_LITERAL = re.compile(r"[A-Za-z0-9_./@+,:=-]*")


def _matching(pattern: re.Pattern[str], what: str):
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{what}, got {quoted(value)}")
        return value

    return AfterValidator(check)


def parse_run_time_path(value: str) -> tuple[Text | Environment, ...]:
    """Split `$MYSCRATCH/lts-template/data` into references and literal text.

    Only `$NAME` and `${NAME}` are allowed: no other expansion, no quoting, so a
    value can never be interpreted by the shell beyond naming a variable.
    """
    parts: list[Text | Environment] = []
    position = 0
    for match in _PATH_REFERENCE.finditer(value):
        parts.extend(_literal(value[position : match.start()]))
        parts.append(Environment(match.group(1) or match.group(2)))
        position = match.end()
    parts.extend(_literal(value[position:]))
    if not parts or (isinstance(parts[0], Text) and not parts[0].text.startswith("/")):
        raise ValueError(f"must be an absolute path or start with $VARIABLE, got {quoted(value)}")
    if any(segment == ".." for segment in value.split("/")):
        raise ValueError(f"must not contain \"..\" segments, got {quoted(value)}")
    return tuple(parts)


def _literal(text: str) -> list[Text]:
    if not text:
        return []
    if not _PATH_LITERAL.fullmatch(text):
        raise ValueError(
            "may hold only letters, digits, \"/._-@+,:=\" and $VARIABLE references, "
            f"got {quoted(text)}"
        )
    return [Text(text)]


def _run_time_path(value: str) -> str:
    parse_run_time_path(value)
    return value


def _rclone_flag(value: str) -> str:
    rclone_setting(value)
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Remote(_Model):
    """An rclone remote, configured on the cluster only by RCLONE_CONFIG_<NAME>_* variables."""

    type: Annotated[str, _matching(_BACKEND, "must be an rclone backend name such as \"s3\"")] = Field(
        description="rclone backend (RCLONE_CONFIG_<NAME>_TYPE)."
    )
    provider: Annotated[str, _matching(_PROVIDER, "must be a provider name such as \"Ceph\"")] | None = Field(
        default=None, description="S3 provider (RCLONE_CONFIG_<NAME>_PROVIDER)."
    )
    endpoint: Annotated[str, _matching(_ENDPOINT, "must be an http:// or https:// URL")] | None = Field(
        default=None,
        description="Endpoint URL (RCLONE_CONFIG_<NAME>_ENDPOINT); the environment may override it.",
    )
    staging: Literal["full", "ranged"] = Field(
        default="full",
        description="How a sync-in step from this remote stages images. full: each image is copied whole. "
        "ranged: for an uncompressed FITS image, its header is fetched alone, the pixel positions are "
        "computed from it, and only the rows the crops need are fetched (rclone cat --offset --count), in "
        "one more job on the sync-in step's partition; any other image is copied whole, and the log says why.",
    )
    credentials: tuple[Annotated[str, _matching(ENV_NAME, "must be an UPPER_CASE option name")], ...] = Field(
        default=(),
        description="Names of the rclone options that hold secrets, e.g. ACCESS_KEY_ID. Their "
        "values come from RCLONE_CONFIG_<NAME>_<OPTION> in the submitting environment and "
        "reach jobs by name only.",
    )
    connect_timeout: Annotated[int, Field(ge=1, le=3600)] = Field(
        default=10,
        description="Seconds rclone waits to connect to the endpoint (`--contimeout`, set as RCLONE_CONTIMEOUT).",
    )
    io_timeout: Annotated[int, Field(ge=1, le=86400)] = Field(
        default=30,
        description="Seconds rclone waits for an answer or more data on a connection (`--timeout`, set as "
        "RCLONE_TIMEOUT).",
    )
    retries: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2,
        description="Times rclone tries the whole transfer (`--retries`, set as RCLONE_RETRIES).",
    )
    low_level_retries: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2,
        description="Times rclone tries each request in one try of the transfer (`--low-level-retries`, set as "
        "RCLONE_LOW_LEVEL_RETRIES).",
    )


class Cluster(_Model):
    """A Slurm cluster (`sbatch -M NAME`) and the partitions steps may use on it."""

    partitions: tuple[Annotated[str, _matching(_SLURM_WORD, "must be a Slurm partition name")], ...] = Field(
        min_length=1, description="Partitions on this cluster."
    )


class Container(_Model):
    """The container a step's tool runs in (`RUNTIME run IMAGE TOOL ARGS...`)."""

    image: Annotated[str, _matching(_IMAGE, "must be docker://..., library://... or a .sif path")] = Field(
        description="Image reference."
    )
    runtime: Literal["singularity", "apptainer"] = Field(default="singularity", description="Container runtime.")


class Resources(_Model):
    """Slurm resources for a step; each one left out is left to the cluster's default."""

    time: Annotated[str, _matching(_TIME, "must be a Slurm time such as \"30\", \"01:00:00\" or \"1-00:00:00\"")] | None = Field(
        default=None, description="`--time`."
    )
    memory: Annotated[str, _matching(_MEMORY, "must be a Slurm memory size such as \"4G\"")] | None = Field(
        default=None, description="`--mem`."
    )
    cpus: Annotated[int, Field(ge=1)] | None = Field(default=None, description="`--cpus-per-task`.")
    account: Annotated[str, _matching(_SLURM_WORD, "must be a Slurm account name")] | None = Field(
        default=None, description="`--account`."
    )
    qos: Annotated[str, _matching(_SLURM_WORD, "must be a Slurm QOS name")] | None = Field(
        default=None, description="`--qos`."
    )


class Step(_Model):
    """One Slurm job of the chain."""

    action: Literal["sync-in", "world-to-pixel", "crop", "sync-out", "report"] = Field(
        description="What the step does: sync-in (rclone, remote -> scratch), world-to-pixel "
        "(sky2xy), crop (astcrop), sync-out (rclone, scratch -> remote), report (optional: "
        "records every job's final state in the run directory; give it afterany)."
    )
    cluster: str = Field(description="Cluster to submit to (`sbatch -M`); a key of `clusters`.")
    partition: str = Field(description="Partition (`sbatch -p`); one of the cluster's partitions.")
    remote: str | None = Field(default=None, description="Remote (sync steps only); a key of `remotes`.")
    modules: tuple[Annotated[str, _matching(_MODULE, "must be an environment module name")], ...] = Field(
        default=(), description="Environment modules loaded before the tool runs."
    )
    container: Container | None = Field(default=None, description="Run the tool in this container.")
    rclone_flags: tuple[Annotated[str, AfterValidator(_rclone_flag)], ...] = Field(
        default=(),
        description="Sync steps only: rclone flags for this step's copies, each one of a fixed list "
        "(`ltsflow check` names them), such as --local-no-set-modtime or --transfers=8. The job gets each "
        "as rclone's environment variable (RCLONE_LOCAL_NO_SET_MODTIME=true), never on a command line.",
    )
    resources: Resources = Field(default_factory=Resources, description="Slurm resources.")
    depends_on: dict[str, Literal["afterok", "afterany", "afternotok"]] = Field(
        default_factory=dict,
        description="Steps this one waits for, each with its Slurm dependency type.",
    )


class Objects(_Model):
    """Parameters of the objects cropped out of the images."""

    crop_width: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=20, description="Crop width in pixels (astcrop rounds an even width up to odd)."
    )
    label: Annotated[str, _matching(_LABEL, "must be letters, digits, \".\", \"_\" or \"-\" (at most 64)")] = Field(
        default="galaxy_1", description="Label of an object whose message gives none."
    )
    hdu: Annotated[int, Field(ge=0)] = Field(default=0, description="HDU of the image (astcrop -h).")
    output: Annotated[str, _matching(_PLACE, "must be BUCKET or BUCKET/PREFIX/")] | None = Field(
        default=None,
        description="Where crops go in the sync-out step's remote, as BUCKET or BUCKET/PREFIX/: a crop's key "
        "is then BUCKET/PREFIX/ followed by its image's bucket and key. Default: beside its image.",
    )
    results: Annotated[str, _matching(_PLACE, "must be BUCKET or BUCKET/PREFIX/")] | None = Field(
        default=None,
        description="Where each run's results.json goes in the sync-out step's remote, as BUCKET/PREFIX/: "
        "its key is BUCKET/PREFIX/<run id>.json. Default: results/ in the bucket of the run's first image.",
    )


class Spec(_Model):
    """An ltsflow pipeline spec."""

    version: Literal[1] = Field(description="Spec format version.")
    name: Annotated[str, _matching(_WORKFLOW_NAME, "must be lower-case letters, digits, \".\", \"_\" or \"-\"")] = Field(
        description="Workflow name, used in job names and the run directory."
    )
    description: str | None = Field(default=None, description="Free text for people.")
    scratch: Annotated[str, AfterValidator(_run_time_path)] = Field(
        description="Scratch root shared by the clusters; `$NAME` references are expanded on "
        "the cluster when schedule.sh runs, never at build time."
    )
    federated: bool = Field(
        default=False,
        description="The clusters form a Slurm federation, so a dependency may cross clusters.",
    )
    chain: Literal["dependencies", "relay"] = Field(
        default="dependencies",
        description="How the jobs wait for each other. dependencies: schedule.sh submits every job at "
        "once, each with --dependency (a dependency across clusters needs a federation). relay: "
        "schedule.sh submits the first job, and each job submits the next when it ends.",
    )
    exports: tuple[Annotated[str, _matching(re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), "must be an environment variable name")], ...] = Field(
        default=(),
        description="More environment variables every job receives by name (sbatch --export), when "
        "they are set where schedule.sh runs: jobs otherwise get the user's login environment.",
    )
    remotes: dict[str, Remote] = Field(default_factory=dict, description="rclone remotes by name.")
    clusters: dict[str, Cluster] = Field(min_length=1, description="Slurm clusters by name.")
    objects: Objects = Field(default_factory=Objects, description="Object parameters.")
    steps: dict[str, Step] = Field(min_length=1, description="The jobs, by step name.")
