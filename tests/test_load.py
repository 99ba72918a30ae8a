"""Stage 1, load: YAML text -> plain data plus the 1-based position of every node."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from compiler.diagnostics import Diagnostic, Position, SpecError
from compiler.load import Document, NodePosition, load_spec

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "fixtures" / "specs" / "lts-template.yaml"

NESTED = """\
top: 1
section:
  inner: value
  list:
    - first
    - {k: v}
  flow: [a, b]
"""


def test_positions_of_keys_values_and_list_items_are_one_based() -> None:
    document = load_spec(NESTED, "f.yaml")
    positions = document.positions
    assert positions[()] == NodePosition(None, Position(1, 1))
    assert positions[("top",)] == NodePosition(Position(1, 1), Position(1, 6))
    assert positions[("section",)] == NodePosition(Position(2, 1), Position(3, 3))
    assert positions[("section", "inner")] == NodePosition(Position(3, 3), Position(3, 10))
    assert positions[("section", "list")] == NodePosition(Position(4, 3), Position(5, 5))
    # List items have no key; a block item's value starts after "- ".
    assert positions[("section", "list", 0)] == NodePosition(None, Position(5, 7))
    assert positions[("section", "list", 1)] == NodePosition(None, Position(6, 7))
    assert positions[("section", "list", 1, "k")] == NodePosition(Position(6, 8), Position(6, 11))
    assert positions[("section", "flow", 0)] == NodePosition(None, Position(7, 10))
    assert positions[("section", "flow", 1)] == NodePosition(None, Position(7, 13))


def test_every_node_of_the_default_spec_has_a_position_that_points_at_it() -> None:
    text = DEFAULT_SPEC.read_text()
    lines = text.split("\n")
    document = load_spec(text, "spec.yaml")
    assert document.diagnostics == ()
    for path, node in document.positions.items():
        if node.key is not None:
            key_text = lines[node.key.line - 1][node.key.column - 1:]
            assert key_text.startswith(f"{path[-1]}:"), (path, key_text)
    step = document.positions[("steps", "crop", "depends_on", "world_to_pixel")]
    assert step == NodePosition(Position(63, 7), Position(63, 23))
    assert document.positions[("remotes", "ceph", "credentials", 1)].value == Position(23, 34)


def test_sequences_become_tuples_and_mappings_plain_dicts() -> None:
    document = load_spec(NESTED, "f.yaml")
    assert document.data == {
        "top": 1,
        "section": {"inner": "value", "list": ("first", {"k": "v"}), "flow": ("a", "b")},
    }
    assert type(document.data["section"]["list"]) is tuple
    assert type(document.data["section"]) is dict


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("yes", "yes"),  # YAML 1.2: only true/false are booleans
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("true", True),
        ("False", False),
        ("0o17", 15),
        ("017", 17),  # YAML 1.2: decimal, not octal
        ("0x1F", 31),
        ("-12", -12),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".inf", math.inf),
        ("-.inf", -math.inf),
        ("~", None),
        ("null", None),
        ("", None),
        ("'5'", "5"),
        ('"true"', "true"),
        ("02:30", "02:30"),  # YAML 1.1 would read a sexagesimal int
    ],
)
def test_scalars_follow_yaml_1_2(text: str, expected: object) -> None:
    value = load_spec(f"key: {text}\n", "f.yaml").data["key"]
    assert value == expected
    assert type(value) is type(expected)


def test_nan_is_a_float_nan() -> None:
    value = load_spec("key: .NaN\n", "f.yaml").data["key"]
    assert isinstance(value, float) and math.isnan(value)


def test_duplicate_keys_are_reported_with_both_positions_and_the_first_value_kept() -> None:
    document = load_spec("a:\n  b: 1\n  c: 2\n  b: 3\na: 4\n", "dup.yaml")
    assert document.data == {"a": {"b": 1, "c": 2}}
    assert document.diagnostics == (
        Diagnostic("dup.yaml", 4, 3, 'key "b" is duplicated. previously defined at line:2,col:3'),
        Diagnostic("dup.yaml", 5, 1, 'key "a" is duplicated. previously defined at line:1,col:1'),
    )
    # The first definition's positions are kept, not overwritten by the duplicate.
    assert document.positions[("a", "b")].value == Position(2, 6)


def test_a_non_scalar_key_is_reported_at_the_key() -> None:
    document = load_spec("ok: 1\n? [a, b]\n: 2\n", "k.yaml")
    assert document.data == {"ok": 1}
    assert document.diagnostics == (Diagnostic("k.yaml", 2, 3, "a key must be a plain string"),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [1\nb: 2\n", "2:2: invalid YAML: expected ',' or ']', but got ':' "
                          "(while parsing a flow sequence at line:1,col:4)"),
        ('a: 1\nb: "open\n', "3:1: invalid YAML: found unexpected end of stream "
                             "(while scanning a quoted scalar at line:2,col:4)"),
        ("a: 1\n b: 2\n", "2:3: invalid YAML: mapping values are not allowed here"),
        ("a:\n\tb: 1\n", "2:1: invalid YAML: found character '\\t' that cannot start any token"),
        ("a: *missing\n", "1:4: invalid YAML: found undefined alias 'missing'"),
    ],
)
def test_a_syntax_error_raises_with_its_position(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as raised:
        load_spec(text, "syntax.yaml")
    assert [str(d) for d in raised.value.diagnostics] == [f"syntax.yaml:{expected}"]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_an_empty_document_loads_as_none(text: str) -> None:
    document = load_spec(text, "empty.yaml")
    assert document.data is None
    assert document.diagnostics == ()


def test_an_empty_document_points_problems_at_line_1() -> None:
    assert load_spec("", "empty.yaml").position_of(("anything", "below")) == Position(1, 1)


def test_position_of_falls_back_to_the_nearest_ancestor_and_prefers_keys_when_asked() -> None:
    document = load_spec(NESTED, "f.yaml")
    assert document.position_of(("section", "inner")) == Position(3, 10)
    assert document.position_of(("section", "inner"), key=True) == Position(3, 3)
    assert document.position_of(("section", "missing", "deeper")) == Position(3, 3)
    assert document.position_of(("section", "missing"), key=True) == Position(2, 1)
    assert document.position_of(("section", "list", 0), key=True) == Position(5, 7)
    assert document.position_of(()) == Position(1, 1)


def test_document_is_frozen() -> None:
    document = load_spec(NESTED, "f.yaml")
    assert isinstance(document, Document)
    with pytest.raises(AttributeError):
        document.data = {}  # type: ignore[misc]
