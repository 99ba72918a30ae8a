"""The JSON reader (read_messages.sh's, which schedule.sh runs) against Python's json, and the input
forms end to end.

The reader is driven through the built read_messages.sh itself: its text up to `main "$@"`,
then a harness that replaces add_message (print the object read) and read_file_list
(say the text went there), and calls read_input on each file in a subshell. So the
texts pass read_text (NUL bytes, UTF-8), the byte order mark and the choice between
messages and a list of files, exactly as in a run.

The oracle is Python's json with what the reader deliberately refuses also refused:
NaN and Infinity, nesting, a lone surrogate, a NUL character, anything but objects
(one after another, or one array of them) at the top. A number is kept as its text.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.test_schedule_dry_run import run_dry

HARNESS = r"""
add_message() {
  local index
  printf 'OBJECT\0'
  for index in "${!JSON_KEYS[@]}"; do
    printf '%s\0%s\0%s\0' "${JSON_KEYS[index]}" "${JSON_KINDS[index]}" "${JSON_VALUES[index]}"
  done
}
read_file_list() {
  printf 'FILES\0'
}
for input in "$@"; do
  status=0
  (read_input "${input}") >"${input}.out" 2>"${input}.err" || status=$?
  printf '%s\n' "${status}" >"${input}.status"
done
"""

Triple = tuple[str, str, str]


class Number(str):
    """A number, as its source text."""


class Pairs(list):
    """An object, as its (key, value) pairs in order."""


def refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


DECODER = json.JSONDecoder(object_pairs_hook=Pairs, parse_int=Number, parse_float=Number,
                           parse_constant=refuse_constant)
SPACE = " \t\n\r"


def plain_string(value: str) -> str:
    if "\0" in value:
        raise ValueError("a NUL character")
    value.encode("utf-8")  # a lone surrogate cannot be encoded
    return value


def triples(pairs: object) -> list[Triple]:
    if not isinstance(pairs, Pairs):
        raise ValueError("not an object")
    result = []
    for key, value in pairs:
        if isinstance(value, Number):
            kind, text = "number", str(value)
        elif isinstance(value, str):
            kind, text = "string", plain_string(value)
        elif value is True or value is False or value is None:
            kind, text = "literal", json.dumps(value)
        else:
            raise ValueError("a nested object or array")
        result.append((plain_string(key), kind, text))
    return result


def oracle(data: bytes) -> list[list[Triple]] | None:
    """The objects a strict reader finds in data, or None where it must refuse the text."""
    try:
        text = data.decode("utf-8")
        if text.startswith("\ufeff"):
            text = text[1:]
        start = len(text) - len(text.lstrip(SPACE))
        if text[start:start + 1] == "[":
            value = DECODER.decode(text)
            if not isinstance(value, list) or isinstance(value, Pairs):
                return None
            return [triples(item) for item in value]
        objects, at = [], start
        while at < len(text):
            value, at = DECODER.raw_decode(text, at)
            objects.append(triples(value))
            at = len(text) - len(text[at:].lstrip(SPACE))
        return objects
    except (ValueError, UnicodeError):
        return None


def opens_as_messages(data: bytes) -> bool:
    """What read_input asks: after a byte order mark and whitespace, is it "{" or "["?"""
    return data.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\n\r")[:1] in (b"{", b"[")


def is_text(data: bytes) -> bool:
    """What read_text asks: UTF-8 without a NUL byte?"""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in data


def parse_output(raw: bytes) -> list[list[Triple]] | str:
    if raw == b"FILES\0":
        return "FILES"
    fields = raw.split(b"\0")
    assert fields.pop() == b""
    objects: list[list[Triple]] = []
    at = 0
    while at < len(fields):
        assert fields[at] == b"OBJECT"
        objects.append([])
        at += 1
        while at < len(fields) and fields[at] != b"OBJECT":
            key, kind, value = (f.decode("utf-8") for f in fields[at:at + 3])
            objects[-1].append((key, kind, value))
            at += 3
    return objects


@pytest.fixture(scope="module")
def read_texts(scripts_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Run the built reader on each text; (status, objects or "FILES", stderr) per text."""
    reader = (scripts_dir / "read_messages.sh").read_text()
    assert reader.endswith('\nmain "$@"\n')
    harness = tmp_path_factory.mktemp("harness") / "reader.sh"
    harness.write_text(reader.removesuffix('main "$@"\n') + HARNESS)

    def run(texts: list[bytes]) -> list[tuple[int, list[list[Triple]] | str, str]]:
        directory = tmp_path_factory.mktemp("texts")
        paths = []
        for index, text in enumerate(texts):
            path = directory / f"t{index}.json"
            path.write_bytes(text)
            paths.append(path)
        subprocess.run(["bash", str(harness), *map(str, paths)], check=True, env={"PATH": os.environ["PATH"]})
        results = []
        for path in paths:
            status = int(Path(f"{path}.status").read_text())
            output = Path(f"{path}.out").read_bytes()
            results.append((status, parse_output(output) if status == 0 else [], Path(f"{path}.err").read_text()))
        return results

    return run


STRINGS = [
    "", "plain", "with space", "caf\u00e9", "\u65e5\u672c", "\U0001F600", "\x7f", "a/b", "100%", "$(x) `y` 'z'",
    # valid JSON, read exactly; schedule.sh's checks refuse them in a key (tests/test_odd_input.py)
    "\u0085", "a\u202eb", "\u2066x\u2069", "a\ufeffb", "\u200b", "\u2028", "a\u201bb", "5.", ".5", "0010", "-0.0",
]
ESCAPED = [
    r"\"", r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t", r"\u0041", r"\u00e9", r"\u20AC", r"\uffff",
    r"\ud83d\ude00", r"\uD834\uDD1E", r"a\\", r"a\\\\", r"\\\"", r"\"\"", r"x\"y\"z", r"\\n", r"\u005c",
    r"\u0022", r"\u001f", "tail\\\\\\\"", r"\/\/\u0020", r"\u0085", r"\u202E", r"\u2066", r"\uFEFF", r"\u201b",
]
NUMBERS = ["0", "-0", "1", "-5", "10.5", "0.25", "1e5", "1E+5", "-1.5e-3", "123456789012345678901234567890",
           "1." + "0" * 50, "9e1", "-0.0", "9E1", "1e-20", "0e0", "-0e-0", "3.6e2", "1E999999999999"]
LITERALS = ["true", "false", "null"]
BAD_VALUES = [
    "01", "-", "1.", ".5", "+1", "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity", "tru", "nul", "True",
    "'a'", '"a', '"\\x"', '"\\u12"', '"\\u12G4"', '"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"', '"\\ud800x"',
    '"\\ud800\\"', '"\\u0000"', '"a\tb"', '"a\nb"', '"\x01"', "[]", "{}", '["a"]', '{"a": 1}', "1 2", "",
    '"a" "b"',
]


def valid_texts() -> list[bytes]:
    values = ([json.dumps(s) for s in STRINGS] + [json.dumps(s, ensure_ascii=False) for s in STRINGS]
              + [f'"{e}"' for e in ESCAPED] + [f'"a{e}b{e}"' for e in ESCAPED] + NUMBERS + LITERALS)
    texts = [f'{{"k": {value}}}'.encode() for value in values]
    texts += [f'{{{json.dumps(s)}: 1}}'.encode() for s in STRINGS]
    texts += [f'{{"{e}": "{e}"}}'.encode() for e in ESCAPED]
    message = '{"file": "bucket/a.fits", "ra": "10.5", "dec": -5, "label": "x"}'
    spaced = '\t{ "file" :"bucket/a.fits" ,"ra":10.5\r\n,\n"dec"  :  -5 , "label":"x"  }  '
    texts += [s.encode() for s in [
        "{}", "{ }", " \n{}\n", "{}{}", "{} {}", "{}\n{}\n", '{"a":1}{"b":2}', '{"a":1,"a":2}',
        message, message + "\n", "\n".join([message] * 3), message * 3, spaced, spaced * 2,
        "[]", "[ ]", " [\n] \n", "[{}]", f"[{message}]", f"[{message},{message}]", f"[ {message} ,\n{spaced} ]\n",
        '[{"a":1},{"b":"2"},{}]', '{"a":"}"}', '{"a":"{"}', '{"a":"[,:]"}', '{"}":"{"}', '{"a": "\\"}\\""}',
        '{"a": "\\\\"}', '{"a":1e5}', '{"a":-0.0}', '{"a":null,"b":true,"c":false}',
    ]]
    texts += [b"\xef\xbb\xbf" + t for t in (message.encode(), b"[]", f"[{message}]".encode(), b"\n{}")]
    texts.append(('{"k": "' + "\\u00e9\\n\\\"\\\\" * 2000 + '"}').encode())
    texts.append(('{"k": "' + "x" * 100000 + '"}').encode())
    return texts


def invalid_texts() -> list[bytes]:
    texts = [f'{{"k": {value}}}'.encode() for value in BAD_VALUES]
    message = '{"file": "bucket/a.fits", "ra": "10.5", "dec": -5, "label": "x"}'
    texts += [s.encode() for s in [
        "{", "{,}", '{"a"}', '{"a":}', '{"a":1,}', '{"a":1 "b":2}', '{"a" 1}', '{a:1}', "{'a':1}",
        '{"a":1}}', '{"a":1}]', '{"a":1} x', '{"a":1},{"b":2}', '{"a":1} []', "[", "[{}", "[{},]", "[,{}]",
        "[{}{}]", "[{}] {}", "[{}][]", "[1]", '["a"]', "[[]]", "[[{}]]", "[{}],", " [ {} ] x", '{"a":[1]}',
        '{"a":{"b":1}}', '{"a":1', '{"a":"b', '{"a', '{"', '{"a":"b\\', '{"a":"b\\"}', "\ufeff\ufeff{}",
        " \ufeff{}", "{}\ufeff", '{"a":1}\x00', '{"a\x00":1}', "{\x0b}", '{"a":1}\x0c', '{"a":\u00a01}',
    ]]
    texts += [b'{"a": "\xe9"}', b'{"a": "\xed\xa0\x80"}', b'{"a": "\xc0\xaf"}', b"\xef\xbb{}", b'{"a": "\xf4\x90\x80\x80"}']
    array = f"[{message}, {message}]"
    texts += [text.encode()[:cut] for text in (message, array) for cut in range(1, len(text))]
    return texts


def mutated_texts() -> list[bytes]:
    """Seeded single-byte edits of a message: each is whatever the oracle says."""
    source = '[{"file": "b/a\\u00e9.fits", "ra": 1.5e2, "dec": "-5", "label": null}, {"x": true}]'
    alphabet = '{}[],:"\\ \n\t0123456789-+.eEuatrfnl\x01\x7f'
    generator = random.Random(20240601)
    texts = []
    for _ in range(300):
        at = generator.randrange(len(source))
        edit = generator.choice(["insert", "replace", "delete"])
        char = generator.choice(alphabet)
        if edit == "insert":
            text = source[:at] + char + source[at:]
        elif edit == "replace":
            text = source[:at] + char + source[at + 1:]
        else:
            text = source[:at] + source[at + 1:]
        texts.append(text.encode())
    return texts


CORPUS = valid_texts() + invalid_texts() + mutated_texts()


def test_the_corpus_has_both_sides() -> None:
    verdicts = [oracle(text) is not None for text in CORPUS]
    assert sum(verdicts) > 150
    assert len(verdicts) - sum(verdicts) > 200
    assert all(oracle(text) is not None for text in valid_texts())
    assert all(oracle(text) is None for text in invalid_texts())


def test_the_reader_agrees_with_python_json(read_texts) -> None:
    disagreements = []
    for text, (status, objects, stderr) in zip(CORPUS, read_texts(CORPUS)):
        expected = oracle(text)
        if not opens_as_messages(text):
            # read_text refuses it, or read_input hands it to read_file_list (which refuses it too).
            verdict = (0, "FILES") if is_text(text) else (2, [])
            if expected is not None or (status, objects) != verdict:
                disagreements.append((text, verdict, status, objects, stderr))
        elif expected is None:
            if status != 2 or objects:
                disagreements.append((text, "should be refused", status, stderr))
        elif status != 0 or objects != expected:
            disagreements.append((text, expected, status, objects, stderr))
    assert disagreements == []


def test_a_refusal_names_the_source_and_the_byte(read_texts) -> None:
    cases = {
        b'{"a": 1,}': 8,
        b'{"a": "b\x01c"}': 8,
        b'{"a": "\\x"}': 7,
        b'{"a": "b\\u00e9\\ud800x"}': 20,
        b'\xef\xbb\xbf  {"a": 01}': 11,
        b'{"a": 1}\n{"b": 2} x': 18,
        b'[{"a": 1}, {"b": 2}] {}': 21,
        b'{"a": "\\"\\\\", "b": [1]}': 19,
    }
    for (text, byte), (status, _, stderr) in zip(cases.items(), read_texts(list(cases))):
        assert status == 2, text
        assert ".json: not a valid JSON message: " in stderr, stderr
        assert stderr.rstrip().endswith(f" at byte {byte}"), (text, stderr)


def test_only_a_text_opening_with_a_brace_or_bracket_is_messages(read_texts) -> None:
    texts = [b"", b"\n", b"bucket/a.fits\n", b"\xef\xbb\xbfbucket/a.fits\n", b" x{}", b"\xef\xbb\xbf", b"\"a\""]
    assert [objects for _, objects, _ in read_texts(texts)] == ["FILES"] * len(texts)


# ---------------------------------------------------------------- end to end

def task_arguments(output: str, step: str) -> list[list[str]]:
    prefix = f"# {step} task "
    return [shlex.split(line.split(":", 1)[1]) for line in output.splitlines() if line.startswith(prefix)]


def listed_images(stdout: str) -> list[str]:
    """The images a dry run lists for sync in, in order: line N is image N (RUN_DIR/images/N.fits)."""
    return [shlex.split(line.split(": ", 1)[1])[0] for line in stdout.splitlines()
            if line.startswith("# sync_in.list: ")]


def messages(count: int) -> list[dict[str, object]]:
    return [{"file": f"bucket/data/image{i % 7}.fits", "ra": [f"{i % 360}.5", i % 360][i % 2],
             "dec": [-5, "+10:30:00", 0.25][i % 3], "label": f"object{i}"} for i in range(count)]


def test_many_messages_as_lines_or_an_array_give_the_same_objects(scripts_dir: Path, tmp_path: Path) -> None:
    # 10,000 are read in the bench (make bench); here, enough to cross every path of the reader: 504 =
    # 12 x 42 gives every combination of image (7), RA form (2) and Dec form (3) twelve times, and all
    # 360 RA values. (It was 2,000, four times the time for no other path.)
    batch = messages(504)
    lines = tmp_path / "lines.json"
    lines.write_text("".join(json.dumps(m) + "\n" for m in batch))
    array = tmp_path / "array.json"
    array.write_text("\ufeff" + json.dumps(batch, indent=1))
    from_lines = run_dry(scripts_dir, lines)
    from_array = run_dry(scripts_dir, array)
    assert from_lines.returncode == 0, from_lines.stderr
    assert from_array.returncode == 0, from_array.stderr
    assert from_array.stdout == from_lines.stdout
    world_to_pixel = task_arguments(from_lines.stdout, "world_to_pixel")
    images = listed_images(from_lines.stdout)
    assert [(images[int(task[1].rsplit("/", 1)[1].removesuffix(".fits"))], task[2], task[3])
            for task in world_to_pixel] == [(m["file"], str(m["ra"]), str(m["dec"])) for m in batch]
    crops = task_arguments(from_lines.stdout, "crop")
    assert [task[4] for task in crops] == [m["label"] for m in batch]
    assert "504 object(s)" in from_lines.stderr


def test_a_thousand_files_of_one_message_each_are_the_same_as_one_file(scripts_dir: Path, tmp_path: Path) -> None:
    batch = messages(1_000)
    paths = []
    for index, message in enumerate(batch):
        path = tmp_path / f"m{index}.json"
        path.write_text(json.dumps(message) + "\n")
        paths.append(path)
    lines = tmp_path / "lines.json"
    lines.write_text("".join(json.dumps(m) + "\n" for m in batch))
    from_files = run_dry(scripts_dir, *paths)
    assert from_files.returncode == 0, from_files.stderr
    assert from_files.stdout == run_dry(scripts_dir, lines).stdout


def test_an_empty_array_is_no_objects(scripts_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("[]\n")
    result = run_dry(scripts_dir, empty)
    assert result.returncode == 2
    assert "no objects in the input" in result.stderr
    one = tmp_path / "one.json"
    one.write_text('[{"file": "bucket/a.fits", "ra": 1, "dec": 2}]')
    result = run_dry(scripts_dir, empty, one)
    assert result.returncode == 0, result.stderr
    assert len(task_arguments(result.stdout, "crop")) == 1


def test_a_message_in_an_array_is_named_by_its_position(scripts_dir: Path, tmp_path: Path) -> None:
    array = tmp_path / "batch.json"
    array.write_text(json.dumps([{"file": "bucket/a.fits", "ra": 1, "dec": 1},
                                 {"file": "bucket/b.fits", "ra": 1, "dec": 100}]))
    result = run_dry(scripts_dir, array)
    assert result.returncode == 2
    assert 'batch.json:2: field "dec" 100 must be' in result.stderr
    single = tmp_path / "single.json"
    single.write_text(json.dumps([{"file": "bucket/a.fits", "ra": 1, "dec": 100}]))
    result = run_dry(scripts_dir, single)
    assert 'single.json: field "dec" 100 must be' in result.stderr


def test_the_same_request_twice_is_done_once_naming_the_first(scripts_dir: Path, tmp_path: Path) -> None:
    batch = tmp_path / "batch.json"
    batch.write_text("".join(json.dumps(m) + "\n" for m in [
        {"file": "bucket/a.fits", "ra": 1, "dec": 1, "label": "x"},
        {"file": "bucket/b.fits", "ra": 1, "dec": 1, "label": "x"},
        {"file": "bucket/a.fits", "ra": 2, "dec": 2, "label": "x"},
        {"file": "bucket/a.fits", "ra": "1.0", "dec": "+01:00:00", "label": "x"}]))
    result = run_dry(scripts_dir, batch)
    assert result.returncode == 0, result.stderr
    assert f"{batch}:4 asks for the same crop as {batch}:1: done once" in result.stderr
    assert len(task_arguments(result.stdout, "crop")) == 3


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_files_txt_may_open_with_a_byte_order_mark(scripts_dir: Path, tmp_path: Path, bom: bytes) -> None:
    files = tmp_path / "files.txt"
    files.write_bytes(bom + b"bucket/a.fits\n\nbucket/b.fits\n")
    result = run_dry(scripts_dir, files, env={"RA_OBJECT": "1", "DEC_OBJECT": "2"})
    assert result.returncode == 0, result.stderr
    assert [t[1].rsplit("/images/", 1)[1] for t in task_arguments(result.stdout, "world_to_pixel")] == [
        "0.fits", "1.fits"]
    assert listed_images(result.stdout) == ["bucket/a.fits", "bucket/b.fits"]
    bad = tmp_path / "bad.txt"
    bad.write_bytes(bom + b"bucket/a.fits\n\n/abs.fits\n")
    result = run_dry(scripts_dir, bad, env={"RA_OBJECT": "1", "DEC_OBJECT": "2"})
    assert result.returncode == 2
    assert "bad.txt:3: field" in result.stderr


@pytest.mark.parametrize(("content", "expected"), [
    (b'{"file": "bucket/a.fits", "ra": 1, "dec": 1}\x00', "contains NUL bytes"),
    (b'{"file": "bucket/\xff.fits", "ra": 1, "dec": 1}', "not valid UTF-8"),
    (b" " * 1048577, "larger than 1048576 bytes"),
])
def test_read_text_refuses_what_it_must(scripts_dir: Path, tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "message.json"
    path.write_bytes(content)
    result = run_dry(scripts_dir, path)
    assert result.returncode == 2
    assert expected in result.stderr


def test_a_file_of_exactly_the_largest_size_is_read(scripts_dir: Path, tmp_path: Path) -> None:
    message = json.dumps({"file": "bucket/a.fits", "ra": 1, "dec": 1}).encode()
    path = tmp_path / "message.json"
    path.write_bytes(message + b" " * (1048576 - len(message)))
    result = run_dry(scripts_dir, path)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- read_messages.sh's output

def read_messages(scripts_dir: Path, *inputs: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(scripts_dir / "read_messages.sh"), *map(str, inputs)], capture_output=True,
                          check=False, env={"PATH": os.environ["PATH"], **(env or {})})


def test_read_messages_writes_each_request_as_values_ended_by_nul(scripts_dir: Path, tmp_path: Path) -> None:
    # a legitimate key with what would break lines, words or quoting, read back exactly
    key = "bucket/a b/$(x) 'y' \"z\";\\\u00e9\u65e5.fits"
    lines = tmp_path / "lines.json"
    lines.write_text(json.dumps({"file": key, "ra": "10:00:00", "dec": -5}) + "\n"
                     + json.dumps({"dec": "+2:30", "label": "x", "file": "bucket/b.fits", "ra": 1.5}) + "\n",
                     encoding="utf-8")
    one = tmp_path / "one.json"
    one.write_text('[{"file": "bucket/c.fits", "ra": "0010", "dec": "-0.0"}]')
    files = tmp_path / "files.txt"
    files.write_text("bucket/d.fits\n\nbucket/e.fits\n")
    result = read_messages(scripts_dir, lines, one, files, env={"RA_OBJECT": "9e1", "DEC_OBJECT": "0.25"})
    assert (result.returncode, result.stderr) == (0, b"")
    values = result.stdout.decode("utf-8").split("\0")
    assert values.pop() == ""
    # where each came from, its fields as given (the defaults where none is), its position normalised
    assert values == [
        f"{lines}:1", key, "10:00:00", "-5", "galaxy_1", "150.000000000 -5.000000000",
        f"{lines}:2", "bucket/b.fits", "1.5", "+2:30", "x", "1.500000000 2.500000000",
        f"{one}", "bucket/c.fits", "0010", "-0.0", "galaxy_1", "10.000000000 0.000000000",
        f"{files}:1", "bucket/d.fits", "9e1", "0.25", "galaxy_1", "90.000000000 0.250000000",
        f"{files}:3", "bucket/e.fits", "9e1", "0.25", "galaxy_1", "90.000000000 0.250000000",
    ]


def test_read_messages_writes_nothing_when_it_refuses_any_request(scripts_dir: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"file": "bucket/a.fits", "ra": 1, "dec": 1}')
    bad = tmp_path / "bad.json"
    bad.write_text('{"file": "bucket/a.fits", "ra": 1, "dec": 1}\n{"file": "bucket/a.fits", "ra": 1, "dec": 91}\n')
    result = read_messages(scripts_dir, good, bad)
    assert (result.returncode, result.stdout) == (2, b"")
    assert result.stderr.decode().endswith(f'error: {bad}:2: field "dec" 91 must be decimal degrees in [-90, 90] '
                                           'or sexagesimal degrees +DD:MM:SS.s\n'), result.stderr
    nothing = read_messages(scripts_dir)
    assert (nothing.returncode, nothing.stdout) == (2, b"")
    assert nothing.stderr.decode().endswith("error: give at least one MESSAGES.json or FILES.txt\n")
