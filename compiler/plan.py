"""Stage 3, plan: a validated Spec -> the JobGraph, plain frozen data and no text.

The graph says everything the scripts do, as data: which jobs `schedule.sh`
submits and in what order, with which sbatch options and script arguments; what
each step script runs. Arguments are `Word`s: literal text and references to
values `schedule.sh` only knows at run time (the run directory, each object's
fields), so the render stage quotes them without deciding anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .diagnostics import listed
from .exits import EXIT_CODES, ExitCode
from .fields import ere_escaped
from .graph import (Dependency, StepScript, bind_options, container_command, dependency_option, is_dependency,
                    remote_settings, tool_settings)
from .kinds import fields_of, images_field, kind_of
from .layout import FAILED, OUTPUT_PREFIX, RUN_DIR, SCRATCH, FileList, Output
from .spec import Spec, parse_run_time_path
from .words import Environment, ObjectField, Part, PositionDigest, RequestField, Text, Variable, Word

# ----------------------------------------------------------------- the message


@dataclass(frozen=True)
class InputField:
    """A field of the message, as read_messages.sh checks it for schedule.sh (`compiler/fields.py` holds the types)."""

    name: str
    type: str
    check: str
    """read_messages.sh's check for the type: `check_NAME WHERE VALUE ARGUMENTS...`."""
    arguments: tuple[str, ...]
    """The check's parameters for this field (a key's endings as a pattern, an integer's bounds, ...)."""
    required: bool
    default: str
    """The value of a message that does not give the field ("" for a required field)."""
    numbers: bool
    """A message may give the value as a JSON number, not only as a string."""
    rule: str
    """What a value must be, in words."""
    placeholder: str
    """How --help writes its value."""

    @property
    def variable(self) -> str:
        """The environment variable that gives the field to each image of a list of files."""
        return f"{self.name.upper()}_OBJECT"

    @property
    def requests(self) -> str:
        """schedule.sh's array of the field's value in each request."""
        return f"REQUEST_{self.name.upper()}"

    @property
    def objects(self) -> str:
        """schedule.sh's array of the field's value for each object (an `ObjectField` of the field reads it)."""
        return f"OBJECT_{self.name.upper()}"

    @property
    def default_variable(self) -> str:
        return f"DEFAULT_{self.name.upper()}"


@dataclass(frozen=True)
class RecordValue:
    """One value of a request as read_messages.sh writes it for schedule.sh."""

    value: Word
    """The value, in read_messages.sh's add_object (its source and fields are its locals)."""
    array: str
    """schedule.sh's array of the value in each request."""


@dataclass(frozen=True)
class Message:
    """The message's fields in declared order, and the ones the run's images and the position key are made of."""

    fields: tuple[InputField, ...]
    key: InputField
    """The field of the run's images, one a line in a list of files: the key field of the step that stages them."""
    right_ascension: InputField | None
    declination: InputField | None
    label: InputField | None
    """With `key`, the fields of the position key, objects.tsv's columns (a key may be made of them and the
    position's digest); None each, in a message without them."""

    @property
    def position(self) -> bool:
        """A request has a position: the message has a right ascension and a declination."""
        return self.right_ascension is not None and self.declination is not None

    @property
    def record(self) -> tuple[RecordValue, ...]:
        """The values read_messages.sh writes for a request, in order, each ended by a NUL byte (which no
        value holds): where the request came from, each field in declared order, then its position if it
        has one. schedule.sh reads them back `len(record)` at a time."""
        return (RecordValue(Word.of(Variable("source")), "REQUEST_SOURCE"),
                *(RecordValue(Word.of(Variable(field.name)), field.requests) for field in self.fields),
                *((RecordValue(Word.of(Variable("POSITION"), " ", Variable("POSITION_DEC")), "REQUEST_POSITION"),)
                  if self.position else ()))

    @property
    def checks(self) -> tuple[str, ...]:
        """The checks the fields use, once each."""
        return tuple(dict.fromkeys(field.check for field in self.fields))

    @property
    def required(self) -> tuple[InputField, ...]:
        return tuple(field for field in self.fields if field.required)

    @property
    def from_environment(self) -> tuple[InputField, ...]:
        """The fields a list of files takes from the environment: all but `key`, which each line gives."""
        return tuple(field for field in self.fields if field != self.key)

    @property
    def strings(self) -> tuple[int, ...]:
        """The places, in declared order, of the fields a message gives only as strings."""
        return tuple(place for place, field in enumerate(self.fields) if not field.numbers)

    @property
    def numbers(self) -> tuple[int, ...]:
        """The places of the fields a message may give as numbers or strings."""
        return tuple(place for place, field in enumerate(self.fields) if field.numbers)

    @property
    def expected(self) -> str:
        """The fields, for a message that names an unknown one: `"a", "b" and optionally "c"`."""
        required = [f'"{field.name}"' for field in self.required]
        optional = [f'"{field.name}"' for field in self.fields if not field.required]
        if not optional:
            return listed(required, "and")
        return (", ".join(required) + " and optionally " if required else "optionally ") + listed(optional, "and")

    @property
    def json_kinds(self) -> tuple[str, ...]:
        """Each field's name and a JSON kind its value may have, as `NAME:KIND` (`ra:number`)."""
        return tuple(f"{field.name}:{kind}" for field in self.fields
                     for kind in (("string", "number") if field.numbers else ("string",)))

    @property
    def usage_environment(self) -> list[str]:
        """How --help writes the variables a list of files takes: `RA_OBJECT=RA`, `[LABEL_OBJECT=LABEL]`."""
        return [f"{field.variable}={field.placeholder}" if field.required else f"[{field.variable}={field.placeholder}]"
                for field in self.from_environment]

    @property
    def usage_fields(self) -> list[str]:
        """--help's line for each field: its name, whether it is required (or its default) and its rule."""
        width = max(len(field.name) for field in self.fields)
        return [f"  {field.name:<{width}}  {'required' if field.required else 'default ' + field.default}: {field.rule}"
                for field in self.fields]

    @property
    def example(self) -> str:
        """One message, as --help shows it: `{"file": BUCKET/KEY, ...[, "label": LABEL]}`."""
        parts = [f'"{field.name}": {field.placeholder}' for field in self.required]
        optional = "".join(f'[, "{field.name}": {field.placeholder}]' for field in self.fields if not field.required)
        return "{" + ", ".join(parts) + optional + "}"



def _message(spec: Spec) -> Message:
    fields = tuple(InputField(
        name=name, type=field.type, check=field.check, arguments=field.arguments(), required=field.required,
        default=field.default_text or "", numbers=field.numbers, rule=field.rule(),
        placeholder=field.placeholder or name.upper(),
    ) for name, field in spec.message.items())
    by_name = {field.name: field for field in fields}
    return Message(fields, by_name[images_field(spec)], *(_only(by_name, fields_of(spec.message, kind))
                                           for kind in ("right-ascension", "declination", "label")))


def _only(by_name: dict[str, InputField], names: list[str]) -> InputField | None:
    """The one field named, or None (none, or several: the position key needs one, and validation says so)."""
    return by_name[names[0]] if len(names) == 1 else None


# ----------------------------------------------------------------- the objects' keys


@dataclass(frozen=True)
class ObjectKey:
    """What schedule.sh names each request's object by: the requests with one key are one object, done once.
    With an output, the key is the output's (which sync out uploads it to); without, the request's fields."""

    made: str
    """What a key names, in messages and objects.tsv's column NAME_key: the output's name, or "object"."""
    key: Word
    """A request's key, from its fields (RequestField, RequestStem), its position's digest and `variables`."""
    variables: tuple[tuple[str, str], ...]
    """(name, value) of each of schedule.sh's constants the key reads (OUTPUT_PREFIX, the spec's `objects.output`)."""
    form: str | None
    """An extended regular expression (bash's `=~`) of every key this run's outputs could have: schedule.sh
    refuses an image whose key matches it, which an output could replace. None without an output."""
    location: str
    """Where the outputs go, for that message: the key's text before its first part from a request (its
    bucket or prefix), or "beside each image"."""
    digests: bool
    """The key holds the position's digest: schedule.sh makes every request's first (position_digests)."""
    column: Word
    """The object's key in objects.tsv (and a result's `key`): "-" without an output, whose key is the
    object's fields, tab-separated."""
    suffix: str = ""
    """The ending of an object's output file, RUN_DIR/out/INDEX<suffix> ("" without an output)."""

    @property
    def indefinite(self) -> str:
        """`made` after "a" or "an", for messages ("an output")."""
        return ("an " if self.made[:1] in "aeiou" else "a ") + self.made


OUTPUT_KEY = Word.of(ObjectField("crop_key"))
"""Each object's output key: schedule.sh's OBJECT_CROP_KEY, which objects.tsv and sync out read."""


@dataclass(frozen=True)
class ObjectsTable:
    """RUN_DIR/objects.tsv, which schedule.sh writes and the step and control scripts read: a header, then
    a row per object, tab-separated: its index, its message's fields in declared order, its key, and the
    messages that asked for it (a column each). Readers find a column by its place, which this gives."""

    header: str
    row: tuple[Word, ...]
    """An object's row, its sources last."""
    fields: tuple[tuple[str, int], ...]
    """(name, column) of each field of the message, as results.json names them."""
    image_column: int
    """The column of the field of the run's images (`Message.key`)."""
    key_column: int
    sources_column: int
    """The first of the sources: every column from it on is one."""

    @property
    def format(self) -> str:
        """printf's format of a row (and `header` is printf's too: tabs and the newline as \\t and \\n)."""
        return "\\t".join(["%s"] * len(self.row)) + "\\n"


def _objects_table(message: Message, keys: ObjectKey) -> ObjectsTable:
    names = [field.name for field in message.fields]
    return ObjectsTable(
        header="\\t".join(("index", *names, f"{keys.made}_key", "sources...")) + "\\n",
        row=(Word.of(ObjectField("index")), *(Word.of(ObjectField(name)) for name in names), keys.column,
             Word.of(ObjectField("sources"))),
        fields=tuple((name, column) for column, name in enumerate(names, start=1)),
        image_column=1 + names.index(message.key.name),
        key_column=1 + len(names),
        sources_column=2 + len(names),
    )


def _object_key(spec: Spec, output: Output | None) -> ObjectKey:
    if output is None:
        # the fields apart by a tab, which no field's value holds
        fields: list[str | Part] = [part for name in spec.message for part in ("\t", RequestField(name))][1:]
        return ObjectKey(made="object", key=Word.of(*fields), variables=(), form=None,
                         location="", digests=False, column=Word.of("-"))
    # schedule.sh's constants, as the spec sets them; any other variable of a key may hold anything
    constants = {OUTPUT_PREFIX.name: _prefix(spec.objects.output)}
    parts = output.key.parts
    variables = tuple(dict.fromkeys((p.name, constants[p.name]) for p in parts
                                    if isinstance(p, Variable) and p.name in constants))
    values = dict(variables)
    form = "^" + "".join(_key_form(spec, part, values) for part in parts) + "$"
    leading = []
    for part in parts:
        if not (isinstance(part, Text) or isinstance(part, Variable) and part.name in values):
            break
        leading.append(part.text if isinstance(part, Text) else values[part.name])
    return ObjectKey(made=output.name, key=output.key, variables=variables, suffix=output.suffix,
                     form=form.removeprefix("^.*"),  # a leading ".*" is no condition
                     location="".join(leading) or "beside each image",
                     digests=any(isinstance(part, PositionDigest) for part in parts), column=OUTPUT_KEY)


def _key_form(spec: Spec, part: Part, values: dict[str, str]) -> str:
    """What part `part` of a key may hold, as an extended regular expression (`.*`: anything)."""
    if isinstance(part, Text):
        return ere_escaped(part.text)
    if isinstance(part, Variable) and part.name in values:
        return ere_escaped(values[part.name])
    if isinstance(part, RequestField):
        return spec.message[part.field].value_pattern() or ".*"
    if isinstance(part, PositionDigest):
        return "[0-9a-f]{12}"
    return ".*"


# ----------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Job:
    """One sbatch submission of schedule.sh."""

    name: str
    action: str
    script: str
    cluster: str
    partition: str
    depends_on: tuple[Dependency, ...]
    job_name: Word
    options: tuple[Word, ...]
    """Every sbatch option but --parsable and --export (always ALL, from a pruned environment)."""
    exports: tuple[str, ...]
    """Variables the job must receive; schedule.sh refuses to run without them."""
    optional_exports: tuple[str, ...]
    """Variables the job receives only when set: overrides of the remote's settings, the spec's
    `exports`, then BASE_ENVIRONMENT. Nothing else of the submitting environment reaches the
    job but Slurm's own SLURM_* and SBATCH_* variables."""
    settings: tuple[tuple[str, str], ...]
    """(variable, value) the job runs with whatever the submitting environment holds: the step's
    tool flags, as its tool's variables for them (`graph.tool_settings`)."""
    per_object: bool
    """The job handles every object of the run in one batch, its tool running once per image; each
    object's line of the batch file holds its outcome file and its arguments. (Not a job array: in
    Slurm 22.05 a federated afterok on a job array on another cluster is never fulfilled.)"""
    command: tuple[Word, ...]
    """What sbatch runs: the step script and its arguments, or (relay) schedule.sh --job RUN_DIR STEP."""
    step_command: tuple[Word, ...]
    """The step script and its arguments (the same as `command` unless the chain is a relay)."""
    task_arguments: tuple[Word, ...]
    """For a per-object step: one object's line of the batch file, its outcome file first, then its
    arguments as the script takes them for one object (with ObjectField parts); else empty."""
    file_list: FileList | None
    container: str | None
    binds: tuple[Word, ...]
    """The directories the step's container must see, each given to its script as `--bind DIR`
    (first, before its arguments): the scratch root (the images), the run directory, then the
    container's `binds`. Empty without a container."""
    spec_line: int


@dataclass(frozen=True)
class SubmitRetry:
    """How schedule.sh retries an sbatch that failed on the way to or from slurmctld."""

    attempts: int
    """sbatch calls at most, for one job (each after a look-up that finds no job of its name)."""
    delay: int
    """Seconds before the first retry; each wait doubles it, up to `longest`."""
    longest: int
    transient: tuple[str, ...]
    """What sbatch says when slurmctld (or slurmdbd, with --clusters) could not be reached or did not
    answer in time: the job may or may not have been queued. Any other failure is final."""


SUBMIT_RETRY = SubmitRetry(
    attempts=5, delay=4, longest=30,
    transient=(
        "Unable to contact slurm controller",
        "Socket timed out on send/recv operation",
        "Zero Bytes were transmitted or received",
        "Communication connection failure",
        "Message receive failure",
        "Message send failure",
        "Connection refused",
        "Connection reset by peer",
        "Resource temporarily unavailable",
        "Slurm temporarily unable to accept job",
        "backup controller in standby mode",
        "Problem talking to database",
        # with --clusters, while the cluster's slurmctld is down (slurmdbd has no address for it)
        "can't be reached now",
    ),
)
"""At most 5 sbatch calls, 4 + 8 + 16 + 30 s apart (about a minute, plus sbatch's own waits)."""


@dataclass(frozen=True)
class JobGraph:
    workflow: str
    description: str | None
    scratch: Word
    scratch_placeholder: str
    """The scratch root as a dry run shows it without its variables: <MYSCRATCH>/lts-template/data."""
    scratch_variables: tuple[str, ...]
    required_variables: tuple[str, ...]
    message: Message
    crop_width: int
    results_bucket: str
    """The bucket of each run's results.json; "" is the bucket of the run's first image."""
    results_prefix: str
    """Put before the run id in the results' key: BUCKET/PREFIX<run id>.json."""
    output: Output | None
    """The objects' outputs, which sync out uploads (the step that writes them is the spec's only one)."""
    object_key: ObjectKey
    objects_table: ObjectsTable
    relay: bool
    """Each job submits the next when it ends (chain: relay); else all are submitted at once."""
    jobs: tuple[Job, ...]
    scripts: tuple[StepScript, ...]
    generated: tuple[str, ...]
    """Every script the build writes: a relay run copies them into its run directory."""
    file_lists: tuple[FileList, ...]
    exit_codes: tuple[ExitCode, ...]
    submit_retry: SubmitRetry = SUBMIT_RETRY

    def children_of(self, name: str) -> tuple[Job, ...]:
        """The jobs that wait for job `name`."""
        return tuple(job for job in self.jobs if any(d.job == name for d in job.depends_on))


# ----------------------------------------------------------------- planning

CONTROL_SCRIPTS = ("status.sh", "cancel.sh", "read_messages.sh")
"""Generated for every spec, whatever its steps: status.sh and cancel.sh act on a run, and read_messages.sh
reads and checks the messages for schedule.sh."""
BASE_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "MODULESHOME", "MODULEPATH")
"""What every job keeps of the submitting environment, when set: where the tools are, whose job
it is, the locale, and where the module system is (a step script that finds no `module` command
starts it from MODULESHOME). Not the login environment: fetching it costs slurmd a login shell
per job."""


def plan_jobs(spec: Spec, step_lines: dict[str, int] | None = None) -> JobGraph:
    """Turn `spec` into its JobGraph: jobs in dependency order, scripts by name."""
    lines = step_lines or {}
    jobs = tuple(_job(spec, name, lines.get(name, 0)) for name in _topological_order(spec))
    jobs = _refined(spec, jobs)
    if spec.chain == "relay":
        jobs = _relayed(jobs)
    jobs = tuple(replace(job, optional_exports=_optional(job, (*job.optional_exports, *spec.exports,
                                                               *BASE_ENVIRONMENT))) for job in jobs)
    scripts = _scripts(spec) + _extra_scripts(spec)
    scripts = tuple(sorted(scripts, key=lambda script: script.name))
    required = _scratch_variables(spec) + tuple(sorted({name for job in jobs for name in job.exports}))
    output = next((planned.output for planned in (kind_of(step.action).plan(spec, step) for step in spec.steps.values())
                   if planned.output), None)
    message = _message(spec)
    keys = _object_key(spec, output)
    return JobGraph(
        workflow=spec.name,
        description=spec.description,
        scratch=Word(parse_run_time_path(spec.scratch)),
        scratch_placeholder="".join(
            p.text if isinstance(p, Text) else f"<{p.name}>" for p in parse_run_time_path(spec.scratch)),
        scratch_variables=_scratch_variables(spec),
        required_variables=required,
        message=message,
        crop_width=spec.objects.crop_width,
        results_bucket=(spec.objects.results or "").split("/", 1)[0],
        results_prefix=_prefix(spec.objects.results).partition("/")[2] if spec.objects.results else "results/",
        output=output,
        object_key=keys,
        objects_table=_objects_table(message, keys),
        relay=spec.chain == "relay",
        jobs=jobs,
        scripts=scripts,
        generated=tuple(sorted({"schedule.sh", *CONTROL_SCRIPTS, *(script.name for script in scripts)})),
        file_lists=tuple(job.file_list for job in jobs if job.file_list is not None),
        exit_codes=_exit_codes(spec, scripts),
    )


def _exit_codes(spec: Spec, scripts: tuple[StepScript, ...]) -> tuple[ExitCode, ...]:
    """The exit codes, each told with what the spec's steps mean by it: a missing tool, the tools and
    container runtimes the steps run (in step order); the others, what their kinds say (`Kind.exits`)."""
    tool_of = {script.name: script.tool for script in scripts}
    tools: list[str] = []
    told: dict[str, list[str]] = {}
    for name, step in spec.steps.items():
        kind = kind_of(step.action)
        if step.container is not None:
            tools.append(step.container.runtime)
        tools.append(tool_of.get(kind.script_of(name, step.with_), ""))
        for code, example in kind.exits:
            told.setdefault(code, []).append(example)
    told["TOOL_MISSING"] = [tool for tool in tools if tool]
    return tuple(code.told(tuple(told.get(code.name, ()))) for code in EXIT_CODES)


def _prefix(place: str | None) -> str:
    """BUCKET or BUCKET/PREFIX as a key prefix that ends in "/" ("" for none)."""
    return "" if place is None else place.rstrip("/") + "/"


def _optional(job: Job, names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` once each, less those the job requires anyway."""
    return tuple(name for name in dict.fromkeys(names) if name not in job.exports)


def _scratch_variables(spec: Spec) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.name for p in parse_run_time_path(spec.scratch) if isinstance(p, Environment)))


def _topological_order(spec: Spec) -> list[str]:
    """Steps ordered so each comes after what it depends on; ties keep declaration order."""
    order: list[str] = []
    placed: set[str] = set()
    remaining = list(spec.steps)
    while remaining:
        ready = next(name for name in remaining if set(spec.steps[name].depends_on) <= placed)
        order.append(ready)
        placed.add(ready)
        remaining.remove(ready)
    return order


def _job(spec: Spec, name: str, spec_line: int) -> Job:
    step = spec.steps[name]
    remote = step.remote
    exports: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    if remote is not None:
        settings = remote_settings(spec, remote)
        exports = settings.credentials
        optional = tuple(f"{settings.prefix}_{key}" for key, _ in settings.settings)
    kind = kind_of(step.action)
    planned = kind.plan(spec, step)
    arguments, file_list, per_object = planned.arguments, planned.file_list, planned.per_object
    script = kind.script_of(name, step.with_)
    script_path = Word.of(Variable("SCRIPT_DIR"), "/", script)
    job_name = Word.of(f"{spec.name}-{name}-", Variable("RUN_ID"))
    log_file = Word.of("--output=", RUN_DIR, f"/logs/{name}-%j.log")
    fixed = (Word.of(f"--clusters={step.cluster}"), Word.of(f"--partition={step.partition}"),
             Word.of("--job-name=", *job_name.parts), log_file, Word.of("--kill-on-invalid-dep=yes"))
    binds = _binds(spec, name)
    step_command = ((script_path, *bind_options(binds), Word.of("--batch"), Word.of(RUN_DIR, f"/tasks/{name}.tsv"))
                    if per_object else (script_path, *bind_options(binds), *arguments))
    depends_on = tuple(Dependency(how, parent) for parent, how in step.depends_on.items())
    return Job(
        name=name,
        action=step.action,
        script=script,
        cluster=step.cluster,
        partition=step.partition,
        depends_on=depends_on,
        job_name=job_name,
        options=fixed + _resource_options(spec, name) + dependency_option(depends_on),
        exports=(*exports, *_variables(binds)),
        optional_exports=optional,
        settings=tool_settings(step),
        per_object=per_object,
        command=step_command,
        step_command=step_command,
        task_arguments=(FAILED, *arguments) if per_object else (),
        file_list=file_list,
        container=step.container.image if step.container else None,
        binds=binds,
        spec_line=spec_line,
    )


def _binds(spec: Spec, name: str) -> tuple[Word, ...]:
    """What step `name`'s container must see: the images under the scratch root, and the run directory
    (its batch file, outcome files, pixel files, crops and, with ranged staging, headers and windows of rows).
    A container sees only its image, its runtime's default binds ($HOME, /tmp, the working directory)
    and what it is given to bind; a cluster's scratch is none of those. Then the container's own `binds`."""
    container = spec.steps[name].container
    if container is None:
        return ()
    return (Word.of(SCRATCH), Word.of(RUN_DIR), *(Word(parse_run_time_path(bind)) for bind in container.binds))


def _variables(words: tuple[Word, ...]) -> tuple[str, ...]:
    """The environment variables the spec's paths in `words` name, once each: the job must receive them."""
    return tuple(dict.fromkeys(part.name for word in words for part in word.parts if isinstance(part, Environment)))


def _refined(spec: Spec, jobs: tuple[Job, ...]) -> tuple[Job, ...]:
    """The planned jobs as each step's kind rewrites them (`Kind.refine`), step by step in declaration order."""
    for name, step in spec.steps.items():
        refine = kind_of(step.action).refine
        if refine is not None:
            jobs = refine(spec, name, jobs)
    return jobs


def _extra_scripts(spec: Spec) -> tuple[StepScript, ...]:
    """The scripts each step's kind adds to its own (`Kind.extra_scripts`)."""
    scripts: list[StepScript] = []
    for name, step in spec.steps.items():
        extra = kind_of(step.action).extra_scripts
        if extra is not None:
            scripts.extend(extra(spec, name))
    return tuple(scripts)


def _relayed(jobs: tuple[Job, ...]) -> tuple[Job, ...]:
    """The relay chain: no --dependency (each job is submitted once the ones it waits for have
    ended), every job runs `schedule.sh --job RUN_DIR STEP`, and each job carries every
    variable a later job needs, since it is the one that submits that job."""
    exports = tuple(dict.fromkeys(name for job in jobs for name in job.exports))
    optional = tuple(dict.fromkeys(name for job in jobs for name in job.optional_exports))
    return tuple(
        replace(
            job,
            options=tuple(o for o in job.options if not is_dependency(o)),
            command=(Word.of(Variable("SCRIPT_DIR"), "/schedule.sh"), Word.of("--job"), Word.of(RUN_DIR),
                     Word.of(job.name)),
            exports=exports,
            optional_exports=optional,
        )
        for job in jobs
    )


def _resource_options(spec: Spec, name: str) -> tuple[Word, ...]:
    resources = spec.steps[name].resources
    pairs = (("--time", resources.time), ("--mem", resources.memory), ("--cpus-per-task", resources.cpus),
             ("--account", resources.account), ("--qos", resources.qos))
    return tuple(Word.of(f"{flag}={value}") for flag, value in pairs if value is not None)


def _scripts(spec: Spec) -> tuple[StepScript, ...]:
    scripts: dict[str, StepScript] = {}
    script_of = {name: kind_of(step.action).script_of(name, step.with_) for name, step in spec.steps.items()}
    for name in spec.steps:
        step = spec.steps[name]
        kind = kind_of(step.action)
        if kind.template is None:
            continue
        remotes = tuple(
            remote_settings(spec, s.remote)
            for other, s in spec.steps.items()
            if script_of[other] == script_of[name] and s.remote is not None
        )
        planned = kind.plan(spec, step)
        scripts.setdefault(script_of[name], StepScript(
            name=script_of[name],
            template=kind.template,
            tool=planned.tool or kind.tool or "",
            modules=step.modules,
            container=container_command(step),
            image=step.container.image if step.container else "",
            remotes=tuple(dict.fromkeys(remotes)),
            hdu=spec.objects.hdu,
            settings=planned.settings,
        ))
    return tuple(scripts.values())
