"""The spec, version 1: pydantic models at the boundary, frozen after it.

These models define what a spec may say; `validate.py` turns a loaded document
into a `Spec` and maps every problem back to a line and column. Field docs here
are the reference (the README's spec table and the JSON Schema come from them).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticKnownError, core_schema

from .diagnostics import quoted
from .fields import MessageField
from .kinds import KINDS, describe, remote_actions
from .rclone import RCLONE_FLAGS, rclone_setting
from .words import Environment, Text

STEP_NAME = re.compile(r"[a-z][a-z0-9_]*")
CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
REMOTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_WORKFLOW_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_MODULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+/-]*")
_IMAGE = re.compile(r"(docker|library|oras|shub)://[A-Za-z0-9][A-Za-z0-9._/:@+-]*|/[^\s]*\.sif")
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


def _bind(value: str) -> str:
    parse_run_time_path(value)
    if any(separator in value for separator in ",:"):
        raise ValueError(f"must not hold \",\" or \":\" (the runtime's --bind separators), got {quoted(value)}")
    return value


def _rclone_flag(value: str) -> str:
    rclone_setting(value)
    return value


_RCLONE_FLAG_LIST = "; ".join(
    f"`--{flag.name}{dict(switch='', count='=N', size='=SIZE')[flag.kind]}`: {flag.meaning}"
    for flag in RCLONE_FLAGS.values()
)


class _KindName:
    """A step's action: the name of a kind of the registry (`kinds.KINDS`), looked up when a spec is
    validated or its schema made, so a kind registered later is known. A wrong one is refused as a
    `Literal` of the names would refuse it (pydantic's literal_error), and the schema is the same."""

    def __get_pydantic_core_schema__(self, _source: Any, _handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_known_kind)

    def __get_pydantic_json_schema__(self, _schema: core_schema.CoreSchema,
                                     _handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"enum": list(KINDS), "type": "string", "description": describe()}


class _KindOptions:
    """A step's `with`: the settings of its kind, a mapping checked against the kind's `options` model
    by the validate stage (which knows the step's action), and then that model. In the JSON Schema, the
    step says which model its `with` follows for each action (`Step.__get_pydantic_json_schema__`)."""

    def __get_pydantic_core_schema__(self, _source: Any, _handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.union_schema([core_schema.is_instance_schema(BaseModel),
                                         core_schema.dict_schema(core_schema.str_schema())])

    def __get_pydantic_json_schema__(self, _schema: core_schema.CoreSchema,
                                     _handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "object", "description": "The settings of the step's kind: see the keys "
                "`steps.NAME.with.*` below, by action. A kind without settings takes no `with`."}


def _known_kind(value: Any) -> str:
    if isinstance(value, str) and value in KINDS:
        return value
    names = [repr(name) for name in KINDS]
    raise PydanticKnownError("literal_error", {"expected": " or ".join([", ".join(names[:-1]), names[-1]])
                                               if len(names) > 1 else names[0]})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Remote(_Model):
    """An rclone remote, configured in the jobs only by `RCLONE_CONFIG_<NAME>_*` variables (NAME in upper case).

    With the default time-outs and retries, a dead or silent endpoint fails a step in about two minutes
    at most, with exit 7 and a message naming the remote, its endpoint and these limits (rclone's own
    defaults kept retrying for many minutes). The step scripts set them for the remote the step uses,
    unless the job's environment sets them (name them in `exports` to pass them).
    """

    type: Annotated[str, _matching(_BACKEND, "must be an rclone backend name such as \"s3\"")] = Field(
        description="rclone backend, such as `s3`: lower-case letters and digits. Set as "
        "`RCLONE_CONFIG_<NAME>_TYPE`."
    )
    provider: Annotated[str, _matching(_PROVIDER, "must be a provider name such as \"Ceph\"")] | None = Field(
        default=None,
        description="S3 provider, such as `Ceph`: letters and digits. Set as `RCLONE_CONFIG_<NAME>_PROVIDER`.",
    )
    endpoint: Annotated[str, _matching(_ENDPOINT, "must be an http:// or https:// URL")] | None = Field(
        default=None,
        description="Endpoint URL, `http://` or `https://`. Set as `RCLONE_CONFIG_<NAME>_ENDPOINT`, unless that "
        "variable is set where `schedule.sh` runs: then the sync jobs get its value.",
    )
    staging: Literal["full", "ranged"] = Field(
        default="full",
        description="How a sync-in step from this remote stages images. `full`: each image is copied whole. "
        "`ranged`: for an uncompressed FITS image, its header is fetched alone, the pixel positions are "
        "computed from it, and only the rows the crops need are fetched (`rclone cat --offset --count`), in "
        "one more job on the sync-in step's partition; any other image is copied whole, and the log says why. "
        "See the README's \"Ranged staging\".",
    )
    credentials: tuple[Annotated[str, _matching(ENV_NAME, "must be an UPPER_CASE option name")], ...] = Field(
        default=(),
        description="The rclone options that hold secrets, in upper case, such as `ACCESS_KEY_ID` and "
        "`SECRET_ACCESS_KEY`. Their values come from `RCLONE_CONFIG_<NAME>_<OPTION>` where `schedule.sh` runs, "
        "and reach only the jobs that use the remote, in their environment, never in argv or a file.",
    )
    connect_timeout: Annotated[int, Field(ge=1, le=3600)] = Field(
        default=10,
        description="Seconds rclone waits to connect to the endpoint (`--contimeout`, set as "
        "`RCLONE_CONTIMEOUT`).",
    )
    io_timeout: Annotated[int, Field(ge=1, le=86400)] = Field(
        default=30,
        description="Seconds rclone waits for an answer or more data on a connection (`--timeout`, set as "
        "`RCLONE_TIMEOUT`).",
    )
    retries: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2,
        description="Times rclone tries the whole transfer (`--retries`, set as `RCLONE_RETRIES`).",
    )
    low_level_retries: Annotated[int, Field(ge=1, le=100)] = Field(
        default=2,
        description="Times rclone tries each request within one try of the transfer (`--low-level-retries`, "
        "set as `RCLONE_LOW_LEVEL_RETRIES`).",
    )


class Cluster(_Model):
    """A Slurm cluster, named as `sbatch --clusters` names it, and the partitions steps may use on it."""

    partitions: tuple[Annotated[str, _matching(_SLURM_WORD, "must be a Slurm partition name")], ...] = Field(
        min_length=1, description="The partitions steps may use on this cluster (`sbatch --partition`)."
    )


class Container(_Model):
    """A container image and its runtime: the job runs the tool as `RUNTIME COMMAND --bind DIR... IMAGE TOOL
    ARGS...`."""

    image: Annotated[str, _matching(_IMAGE, "must be docker://..., library://... or a .sif path")] = Field(
        description="The image: `docker://...`, `library://...`, `oras://...` or `shub://...`, or the absolute "
        "path of a `.sif` file."
    )
    runtime: Literal["singularity", "apptainer"] = Field(
        default="singularity", description="The runtime command that runs the image."
    )
    command: Literal["run", "exec"] = Field(
        default="run", description="How the runtime starts the tool: `run` (the image's runscript, given the tool "
        "and its arguments) or `exec` (the tool itself, for an image whose runscript does not run its arguments)."
    )
    binds: tuple[Annotated[str, AfterValidator(_bind)], ...] = Field(
        default=(), description="More directories the tool must see in its container, each bound at its own path, "
        "besides the scratch root and the run directory, which every container step binds. Each is written as "
        "`scratch` is (an absolute path, or one that starts with `$NAME` or `${NAME}`, expanded on the cluster; "
        "no \"..\" segment), without \",\" or \":\", which the runtime's `--bind` reads as separators. A variable "
        "named is then needed in the environment of `schedule.sh` and of the step's job."
    )


class Resources(_Model):
    """Slurm resources; each one left out is left to the cluster's default."""

    time: Annotated[str, _matching(_TIME, "must be a Slurm time such as \"30\", \"01:00:00\" or \"1-00:00:00\"")] | None = Field(
        default=None,
        description="Time limit (`sbatch --time`): MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS, "
        "DAYS-HOURS:MINUTES or DAYS-HOURS:MINUTES:SECONDS.",
    )
    memory: Annotated[str, _matching(_MEMORY, "must be a Slurm memory size such as \"4G\"")] | None = Field(
        default=None,
        description="Memory per node (`sbatch --mem`): a whole number of megabytes, or with a unit K, M, G or T, "
        "such as `4G`.",
    )
    cpus: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="CPUs per task (`sbatch --cpus-per-task`)."
    )
    account: Annotated[str, _matching(_SLURM_WORD, "must be a Slurm account name")] | None = Field(
        default=None, description="Account the job is charged to (`sbatch --account`)."
    )
    qos: Annotated[str, _matching(_SLURM_WORD, "must be a Slurm QOS name")] | None = Field(
        default=None, description="Quality of service (`sbatch --qos`)."
    )


class Step(_Model):
    """A step: one Slurm job of the chain."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    action: Annotated[str, _KindName()]
    with_: Annotated[Any, _KindOptions()] = Field(default=None, alias="with")
    cluster: str = Field(description="The cluster the job is submitted to (`sbatch --clusters`): a key of `clusters`.")
    partition: str = Field(description="The partition (`sbatch --partition`): one of the cluster's partitions.")
    remote: str | None = Field(
        default=None,
        description=f"Only for steps whose kind uses a remote ({', '.join(f'`{a}`' for a in remote_actions())}), and "
        "required for them: the remote they copy from or to, a key of `remotes`.",
    )
    modules: tuple[Annotated[str, _matching(_MODULE, "must be an environment module name")], ...] = Field(
        default=(),
        description="Environment modules loaded (`module load`) before the tool runs. Where no `module` command "
        "is found, the step script warns and uses the tools on `PATH`.",
    )
    container: Container | None = Field(
        default=None,
        description="Run the tool in a container; without one, it runs on the node, from `PATH`. A report "
        "step takes none.",
    )
    rclone_flags: tuple[Annotated[str, AfterValidator(_rclone_flag)], ...] = Field(
        default=(),
        description="Only for steps with a `remote`: rclone flags for this step's copies, each one of a fixed list "
        f"(`compiler/rclone.py`): {_RCLONE_FLAG_LIST}. The job gets each as rclone's environment variable "
        "(`RCLONE_LOCAL_NO_SET_MODTIME=true`), never on a command line. Flags ltsflow sets itself (time-outs, "
        "retries, the upload cut-off) or that would weaken its checks are not on the list.",
    )
    resources: Resources = Field(default_factory=Resources, description="What the step's job asks Slurm for.")
    depends_on: dict[str, Literal["afterok", "afterany", "afternotok"]] = Field(
        default_factory=dict,
        description="The steps this one waits for, each with its Slurm dependency type. A step must depend, "
        "directly or not, on the step whose output it reads. Cycles are errors.",
    )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The step's schema, with `with` following its kind's model: one `if action is ... then` a kind."""
        json_schema = handler(schema)
        step = handler.resolve_ref_schema(json_schema)
        step["allOf"] = [
            {"if": {"properties": {"action": {"const": kind.action}}, "required": ["action"]},
             "then": {"properties": {"with": handler(kind.options.__pydantic_core_schema__)}}
             if kind.options is not None else {"not": {"required": ["with"]}}}
            for kind in KINDS.values()]
        return json_schema


class Objects(_Model):
    """How the objects are cropped out of the images, and where the crops and the results go."""

    crop_width: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=20, description="Crop width in pixels. astcrop makes an even width odd (20 gives 21x21)."
    )
    hdu: Annotated[int, Field(ge=0)] = Field(default=0, description="HDU of the image (`astcrop --hdu`).")
    output: Annotated[str, _matching(_PLACE, "must be BUCKET or BUCKET/PREFIX/")] | None = Field(
        default=None,
        description="Where crops go in the sync-out step's remote, as `BUCKET` or `BUCKET/PREFIX/`: a crop's key "
        "is then `BUCKET/PREFIX/` followed by its image's bucket and key stem. Default: beside its image.",
    )
    results: Annotated[str, _matching(_PLACE, "must be BUCKET or BUCKET/PREFIX/")] | None = Field(
        default=None,
        description="Where each run's `results.json` goes in the sync-out step's remote, as `BUCKET/PREFIX/`: "
        "its key is `BUCKET/PREFIX/<run id>.json`. Default: `results/` in the bucket of the run's first image.",
    )


class Spec(_Model):
    """An ltsflow pipeline spec, version 1. Unknown keys are errors at every level."""

    version: Literal[1] = Field(description="The version of the spec format.")
    name: Annotated[str, _matching(_WORKFLOW_NAME, "must be lower-case letters, digits, \".\", \"_\" or \"-\"")] = Field(
        description="Workflow name: lower-case letters, digits, \".\", \"_\" and \"-\", starting with a "
        "letter or digit. Every job's name starts with it (`NAME-STEP-RUN_ID`)."
    )
    description: str | None = Field(
        default=None, description="Free text for people, copied into a comment at the top of `schedule.sh`."
    )
    scratch: Annotated[str, AfterValidator(_run_time_path)] = Field(
        description="Scratch root shared by the clusters, where each run has its directory (`SCRATCH/runs/RUN_ID`): "
        "an absolute path, or one that starts with `$NAME` or `${NAME}`. Such references are expanded on the "
        "cluster when `schedule.sh` runs, never at build time. Only letters, digits, \"/._-@+,:=\" and references "
        "are allowed, and no \"..\" segment."
    )
    federated: bool = Field(
        default=False,
        description="The clusters form a Slurm federation. Without one, Slurm counts an `afterok` on another "
        "cluster's job id as satisfied at once, so a dependency that crosses clusters is refused unless `chain` "
        "is `relay`.",
    )
    chain: Literal["dependencies", "relay"] = Field(
        default="dependencies",
        description="How the jobs wait for each other. `dependencies`: `schedule.sh` submits every job at "
        "once, each with `--dependency` (a dependency across clusters needs a federation). `relay`: "
        "`schedule.sh` submits the first job, and each job submits the next when it ends. See the README's "
        "\"Federation or relay\".",
    )
    exports: tuple[Annotated[str, _matching(re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), "must be an environment variable name")], ...] = Field(
        default=(),
        description="More environment variables every job receives from where `schedule.sh` runs, when they "
        "are set there (for example `SINGULARITY_BINDPATH`). A job gets nothing else but a small base, its "
        "remote's variables and Slurm's own: see the README's \"What a job's environment holds, and why\".",
    )
    remotes: dict[str, Remote] = Field(
        default_factory=dict,
        description="The rclone remotes, by name: letters, digits and \"_\", starting with a letter.",
    )
    clusters: dict[str, Cluster] = Field(
        min_length=1, description="The Slurm clusters, by name: letters, digits, \".\", \"_\" and \"-\"."
    )
    message: dict[str, MessageField] = Field(
        min_length=1,
        description="The fields of a message, by name (lower-case letters, digits and \"_\", starting with a "
        "letter), in the order a message usually gives them: `schedule.sh` checks every message against them, "
        "and its `--help` and the README's \"The message\" describe them. Each is of one `type` of a small "
        "library (`compiler/fields.py`), `required` or with a `default`. The kinds of step find the fields they "
        "read by type: a sync-in step the `key` field of its remote, a world-to-pixel step the "
        "`right-ascension` and `declination` fields, a crop step the `label` field.",
    )
    objects: Objects = Field(
        default_factory=Objects, description="The objects' settings."
    )
    steps: dict[str, Step] = Field(
        min_length=1, description="The steps, by name: lower-case letters, digits and \"_\", starting with a letter."
    )
