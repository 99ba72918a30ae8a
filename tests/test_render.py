"""Stage 4, render: the quoting filter, the scripts, and the source map back to the templates."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jinja2
import pytest

from compiler import __version__
from compiler.build import compile_spec, step_lines
from compiler.load import load_spec
from compiler.plan import CONTROL_SCRIPTS, JobGraph, plan_jobs
from compiler.words import (Environment, EveryObject, ObjectField, PositionDigest, RequestField, RequestStem, Text,
                            Variable, Word)
from compiler.render import (
    Provenance,
    RenderedScript,
    comment_text,
    find_templates,
    make_environment,
    render_scripts,
    shell_quote,
)
from compiler.validate import validate_spec
from tests.fitsimages import make_image

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = (ROOT / "fixtures" / "specs" / "lts-template.yaml").read_text()
PROVENANCE = Provenance("fixtures/specs/lts-template.yaml", "ab" * 32)
TEMPLATES = find_templates()

NASTY = [
    "",
    " ",
    "plain",
    "two words",
    "  leading and trailing  ",
    "it's",
    "'",
    "''",
    '"',
    'say "hi"',
    "$HOME",
    "${HOME}",
    "$(rm -rf /)",
    "`id`",
    "a;b",
    "a && b || c",
    "a|b",
    "a > /tmp/x",
    "<in",
    "new\nline",
    "\n",
    "tab\there",
    "\r\n",
    "-n",
    "--help",
    "-e",
    "*",
    "?",
    "[a-z]",
    "~",
    "~root",
    "#not a comment",
    "a#b",
    "!",
    "!!",
    "\\",
    "back\\slash\\n",
    "{a,b}",
    "%s%d",
    "=",
    "a=b c",
    "émoji 🚀 ünïcödé",
    "日本語",
    "\u00a0nbsp",
    "\x01\x7f control",
    "$'\\x41'",
    "'\"'\"'",
    "&",
    "(subshell)",
    "ends with backslash\\",
]


def bash_words(script: str, env: dict[str, str] | None = None) -> list[str]:
    """Run `script` in bash and split its NUL-terminated output into words."""
    result = subprocess.run(["bash", "-c", script], capture_output=True, env=env or {}, check=True)
    assert result.stderr == b""
    out = result.stdout.decode()
    assert out.endswith("\0") or out == ""
    return out.split("\0")[:-1]


def test_quoted_text_reads_back_exactly_in_bash() -> None:
    script = "printf '%s\\0' " + " ".join(shell_quote(value) for value in NASTY)
    assert bash_words(script) == NASTY


@pytest.mark.parametrize("value", NASTY)
def test_each_quoted_text_reads_back_as_one_word(value: str) -> None:
    quoted = shell_quote(value)
    assert bash_words(f"printf '%s\\0' {quoted}") == [value]
    # Beside another argument it is still exactly one word.
    assert bash_words(f"printf '%s\\0' {quoted} {quoted}") == [value, value]


def test_safe_text_is_left_bare_and_the_rest_single_quoted() -> None:
    assert shell_quote("docker://curtinfop/wcstools") == "docker://curtinfop/wcstools"
    assert shell_quote("--partition=debugq") == "--partition=debugq"
    assert shell_quote("two words") == "'two words'"
    assert shell_quote("it's") == "'it'\\''s'"
    assert shell_quote("") == "''"


def test_numbers_and_sequences() -> None:
    assert shell_quote(0) == "0"
    assert shell_quote(-7) == "-7"
    assert shell_quote(("a b", 3, "c")) == "'a b' 3 c"
    assert shell_quote(["x"]) == "x"
    assert shell_quote(()) == ""
    assert bash_words("printf '%s\\0' " + shell_quote(tuple(NASTY))) == NASTY


@pytest.mark.parametrize("value", [True, False, None, 1.5, {"a": 1}, b"bytes", object(), {1, 2}])
def test_values_without_an_obvious_shell_form_are_refused(value: object) -> None:
    with pytest.raises(TypeError):
        shell_quote(value)


@pytest.mark.parametrize("name", ["a b", "1x", "x$(id)", "", "x-y"])
def test_a_bad_variable_name_in_a_word_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        shell_quote(Word((Variable(name),)))
    with pytest.raises(ValueError):
        shell_quote(Word.of("text", ObjectField(name)))


WORD_SETUP = "OBJECT_FILE=({files}); OBJECT_LABEL=({labels}); index=1; "
FILES = ("a b.fits", "$(id).fits", "it's\n.fits")
LABELS = ("x", "l'2 `id`", "z")


@pytest.mark.parametrize("text", NASTY)
def test_words_mixing_text_and_variables_read_back_exactly(text: str) -> None:
    value = "v'\"$(id) `x` ${HOME}\n;"
    words = [
        Word.of(text, Variable("V"), text),
        Word.of(Environment("E"), "/", text),
        Word.of(text, ObjectField("file"), "-", ObjectField("label")),
        Word((Text(text),)),
    ]
    setup = WORD_SETUP.format(files=shell_quote(FILES), labels=shell_quote(LABELS))
    script = setup + "printf '%s\\0' " + " ".join(shell_quote(w) for w in words)
    assert bash_words(script, {"V": value, "E": "/env dir"}) == [
        text + value + text,
        "/env dir/" + text,
        text + FILES[1] + "-" + LABELS[1],
        text,
    ]


def test_a_requests_key_reads_back_exactly() -> None:
    """An object's key from its request: a field less its extension, the position's digest, and fields
    apart by a tab, which bash reads as $'\\t' between the quoted parts of one word."""
    setup = ("REQUEST_FILE=(x 'b/a b.v1.fits'); REQUEST_LABEL=(y 'l `id`'); DIGESTS=(z 0123456789ab); "
             "OUTPUT_PREFIX=o/; index=1; ")
    key = Word.of(Variable("OUTPUT_PREFIX"), RequestStem("file"), "_", RequestField("label"), "_", PositionDigest(),
                  "_crop.fits")
    fields = Word.of(RequestField("file"), "\t", RequestField("label"))
    assert shell_quote(fields) == '"${REQUEST_FILE[index]}"$\'\\t\'"${REQUEST_LABEL[index]}"'
    assert bash_words(setup + "printf '%s\\0' " + shell_quote(key) + " " + shell_quote(fields)) == [
        "o/b/a b.v1_l `id`_0123456789ab_crop.fits", "b/a b.v1.fits\tl `id`"]


def test_every_object_expands_to_one_word_per_object() -> None:
    setup = WORD_SETUP.format(files=shell_quote(FILES), labels=shell_quote(LABELS))
    script = setup + "printf '%s\\0' " + shell_quote(Word((EveryObject("file"),)))
    assert bash_words(script) == list(FILES)


def test_an_unset_environment_reference_fails_instead_of_expanding_to_nothing() -> None:
    script = "printf '%s\\0' " + shell_quote(Word.of(Environment("MISSING_VAR"), "/data"))
    result = subprocess.run(["bash", "-c", script], capture_output=True, env={})
    assert result.returncode != 0
    assert b"MISSING_VAR" in result.stderr
    assert result.stdout == b""


def test_comment_text_is_always_one_line() -> None:
    assert comment_text("a\nb\r\n  c\td") == "a b   c d"
    assert comment_text("  MESSAGE.json  a queue message\n") == "  MESSAGE.json  a queue message"
    assert "\n" not in comment_text("x\n$(id)\n")


# ----------------------------------------------------------------- scripts and the source map


@pytest.fixture(scope="module")
def graph() -> JobGraph:
    document = load_spec(DEFAULT_TEXT, "s.yaml")
    return plan_jobs(validate_spec(document), step_lines(document))


@pytest.fixture(scope="module")
def scripts(graph: JobGraph) -> tuple[RenderedScript, ...]:
    return render_scripts(graph, PROVENANCE)


def test_render_makes_every_script_sorted_by_name(scripts: tuple[RenderedScript, ...]) -> None:
    assert [s.name for s in scripts] == [
        "cancel.sh", "crop_image_around_pixels.sh", "get_world_2_pix.sh", "read_messages.sh", "schedule.sh",
        "status.sh", "sync.sh",
    ]
    for script in scripts:
        assert script.text.startswith("#!/bin/bash\n")
        assert script.text.endswith("\n") and not script.text.endswith("\n\n")
        assert "\n\n\n" not in script.text
        assert f"Generated by ltsflow {__version__} from fixtures/specs/lts-template.yaml" in script.text
        assert f"(spec sha256 {'ab' * 32})" in script.text
        assert script.text.rstrip("\n").split("\n")[-1] == 'main "$@"'


def test_rendering_is_deterministic(graph: JobGraph, scripts: tuple[RenderedScript, ...]) -> None:
    assert render_scripts(graph, PROVENANCE) == scripts


def test_no_marker_bytes_or_trailing_spaces_in_the_output(scripts: tuple[RenderedScript, ...]) -> None:
    for script in scripts:
        assert "\x1e" not in script.text
        assert all(line == line.rstrip() for line in script.text.split("\n")), script.name


def test_every_line_has_an_origin(scripts: tuple[RenderedScript, ...]) -> None:
    for script in scripts:
        lines = script.text.split("\n")[:-1]
        assert len(script.origins) == len(lines), script.name
        for number, (line, origin) in enumerate(zip(lines, script.origins), start=1):
            if line.strip():
                assert origin is not None, f"{script.name}:{number}: {line!r}"


def _template_line(template: str, line: int) -> str:
    return (TEMPLATES / template).read_text().split("\n")[line - 1]


def test_origins_point_at_the_template_line_that_wrote_the_text(scripts: tuple[RenderedScript, ...]) -> None:
    literal, expression = _check_origins(scripts)
    assert literal > 800 and expression > 100


@pytest.mark.parametrize(("spec", "partials"), [
    ("relay.yaml", {"_schedule_relay.sh.j2"}),
    ("ranged.yaml", {"_fetch_rows_bands.sh.j2", "_fits_scan.sh.j2", "_fits_window.sh.j2", "_fits_server.sh.j2"}),
])
def test_origins_point_at_their_text_in_the_partials_of_relay_and_ranged_staging(spec: str, partials: set[str]) -> None:
    scripts = compile_spec(ROOT / "fixtures" / "specs" / spec).scripts
    _check_origins(scripts)
    traced = {origin.template for script in scripts for origin in script.origins if origin is not None}
    assert partials <= traced


def _check_origins(scripts: tuple[RenderedScript, ...]) -> tuple[int, int]:
    """Each line's origin holds its text (a literal line) or every piece of it outside tags; the counts of each."""
    literal = expression = 0
    for script in scripts:
        for number, (line, origin) in enumerate(zip(script.text.split("\n"), script.origins), start=1):
            if not line.strip() or origin is None:
                continue
            source = _template_line(origin.template, origin.line)
            where = f"{script.name}:{number} <- {origin.template}:{origin.line}"
            if "{{" not in source and "{%" not in source:
                literal += 1
                assert source.rstrip() == line, where
            else:
                expression += 1
                pieces = [p.strip() for p in re.split(r"\{\{.*?\}\}|\{%.*?%\}", source) if p.strip()]
                assert all(piece in line for piece in pieces), (where, line, source)
    return literal, expression


def test_origins_of_known_lines(scripts: tuple[RenderedScript, ...]) -> None:
    schedule = next(s for s in scripts if s.name == "schedule.sh")
    lines = schedule.text.split("\n")
    origin_of = {line: schedule.origins[index] for index, line in enumerate(lines) if line.strip()}
    assert origin_of["#!/bin/bash"] == (origin := origin_of["#!/bin/bash"]) and origin.template == "_header.sh.j2"
    assert origin.line == 1
    # Text written after an include: the include's trailing line must not claim it.
    description = "# Crop an object out of a large FITS image in object storage."
    assert origin_of[description].template == "schedule.sh.j2"
    assert _template_line("schedule.sh.j2", origin_of[description].line) == "# {{ graph.description|comment }}"
    # A line holding an inline {% for %}: its own template line, not the one before it.
    log_line = next(line for line in lines if line.startswith("  log '%s run %s"))
    assert "{% for job in graph.jobs %}" in _template_line("schedule.sh.j2", origin_of[log_line].line)
    assert "submit_{{ job.name|identifier }}" in _template_line("schedule.sh.j2", origin_of["  submit_crop"].line)
    # Through includes two deep, and the text that follows an include inside a partial.
    reader = next(s for s in scripts if s.name == "read_messages.sh")
    lines = reader.text.split("\n")
    origin_of = {line: reader.origins[index] for index, line in enumerate(lines) if line.strip()}
    assert origin_of["valid_bucket() {"].template == "_messages_checks.sh.j2"
    after_include = next(line for line in lines if line.startswith("# read_messages SOURCE"))
    assert origin_of[after_include].template == "_messages_input.sh.j2"
    assert _template_line("_messages_input.sh.j2", origin_of[after_include].line).startswith("# read_messages SOURCE")


def test_markers_change_nothing_but_the_source_map(graph: JobGraph, scripts: tuple[RenderedScript, ...]) -> None:
    plain = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        comment_start_string="{##", comment_end_string="##}",
    )
    plain.filters.update(make_environment().filters)
    by_name = {s.name: s for s in scripts}
    for name, template, script in [(n, f"{n}.j2", None) for n in ("schedule.sh", *CONTROL_SCRIPTS)] + [
        (s.name, s.template, s) for s in graph.scripts
    ]:
        text = plain.get_template(template).render(graph=graph, provenance=PROVENANCE, script=script)
        squeezed = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.split("\n"))).strip("\n") + "\n"
        assert squeezed == by_name[name].text, name


def test_no_template_is_longer_than_200_lines() -> None:
    lines = {path.name: len(path.read_text().splitlines()) for path in TEMPLATES.iterdir()}
    assert len(lines) > 30
    assert {name for name, count in lines.items() if count > 200} == set(), lines


def test_a_missing_variable_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    (tmp_path / "t.sh.j2").write_text("echo {{ graph.nothing_here|q }}\n")
    environment = make_environment(tmp_path)
    with pytest.raises(jinja2.UndefinedError, match="nothing_here"):
        environment.get_template("t.sh.j2").render(graph=object())
    (tmp_path / "u.sh.j2").write_text("echo {{ not_given }}\n")
    with pytest.raises(jinja2.UndefinedError, match="not_given"):
        environment.get_template("u.sh.j2").render()


def test_the_q_filter_is_the_quoting_function(tmp_path: Path) -> None:
    (tmp_path / "t.sh.j2").write_text("echo {{ value|q }}\n")
    text = make_environment(tmp_path).get_template("t.sh.j2").render(value="$(id) x")
    assert re.sub("\x1e[^\x1e]*\x1e", "", text) == "echo '$(id) x'\n"
    with pytest.raises(TypeError):
        make_environment(tmp_path).get_template("t.sh.j2").render(value=None)


# ----------------------------------------------------------------- a container's command and binds

EXEC_WITH_BIND = DEFAULT_TEXT.replace(
    "      image: docker://curtinfop/wcstools\n",
    "      image: docker://curtinfop/wcstools\n      command: exec\n      binds: [$CALIBRATION/frames]\n")


def expanded(word: Word, values: dict[str, str]) -> str:
    """A word as bash expands it, its variables taken from `values`."""
    return "".join(part.text if isinstance(part, Text) else values[part.name]  # type: ignore[union-attr]
                   for part in word.parts)


@pytest.mark.tools
def test_a_container_may_exec_its_tool_and_bind_more_directories(shim_state, sky2xy_exe: str, tmp_path: Path) -> None:
    assert EXEC_WITH_BIND != DEFAULT_TEXT
    document = load_spec(EXEC_WITH_BIND, "s.yaml")
    graph = plan_jobs(validate_spec(document), step_lines(document))
    job = next(job for job in graph.jobs if job.name == "world_to_pixel")
    extra = Word((Environment("CALIBRATION"), Text("/frames")))
    assert job.binds == (Word.of(Variable("SCRATCH")), Word.of(Variable("RUN_DIR")), extra)
    assert job.step_command[1:7] == tuple(w for bind in job.binds for w in (Word.of("--bind"), bind))
    assert "CALIBRATION" in job.exports and "CALIBRATION" in graph.required_variables
    (script,) = (s for s in graph.scripts if s.name == job.script)
    assert script.launcher == ("singularity", "exec", "docker://curtinfop/wcstools")
    # The step script, run with the job's binds, sees an image in the extra directory only through its bind
    # (under /tmp, which a cluster's container would not see either), and runs sky2xy itself: exec.
    (rendered,) = (s for s in render_scripts(graph, PROVENANCE) if s.name == job.script)
    step_script = tmp_path / job.script
    step_script.write_text(rendered.text)
    step_script.chmod(0o755)
    values = {"SCRATCH": str(tmp_path / "scratch"), "RUN_DIR": str(tmp_path / "run"), "CALIBRATION": str(tmp_path)}
    for directory in (tmp_path / "scratch", tmp_path / "run", tmp_path / "frames"):
        directory.mkdir()
    make_image(tmp_path / "frames" / "image.fits", nx=200, ny=150, ra=150.0, dec=2.0)
    binds = [expanded(word, values) for word in job.step_command[1:7]]
    arguments = [str(tmp_path / "frames" / "image.fits"), "150.001", "2.0005", str(tmp_path / "run" / "xy.txt")]
    environment = shim_state.env(LTSFLOW_SHIM_NO_MOUNT="tmp")
    unbound = subprocess.run([str(step_script), *binds[:4], *arguments], cwd=tmp_path / "run", env=environment,
                             capture_output=True, text=True, check=False)
    assert unbound.returncode == 7 and "image.fits: No such file or directory" in unbound.stderr, unbound.stderr
    bound = subprocess.run([str(step_script), *binds, *arguments], cwd=tmp_path / "run", env=environment,
                           capture_output=True, text=True, check=False)
    assert bound.returncode == 0, bound.stderr
    assert "->" in (tmp_path / "run" / "xy.txt").read_text()
    call = shim_state.calls("singularity")[-1]
    assert (call["subcommand"], call["options"][-2:], call["command"][0]) == (
        "exec", ["--bind", str(tmp_path / "frames")], "sky2xy")
