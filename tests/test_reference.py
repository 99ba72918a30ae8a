"""The spec reference: made from the models, complete, and the README's copy is current."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from compiler.cli import main
from compiler.diagnostics import BuildError
from compiler.build import check_spec
from compiler.kinds import KINDS
from compiler.reference import BEGIN, END, MESSAGE_BEGIN, MESSAGE_END, message_reference, reference, splice
from compiler.spec import Spec, Step
from tests.test_cli import run

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REGENERATE = "run `make reference` (or `ltsflow reference --spec fixtures/specs/lts-template.yaml --write README.md`) and commit README.md"




def rows(table: str) -> dict[str, list[str]]:
    """The table's rows by key, each as [type, default, meaning]."""
    found = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        found[cells[0].strip("`")] = cells[1:]
    return found


def model_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key a spec may hold, as a dotted path, read from the models' annotations (not their schema)."""
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        keys.append(key)
        if model is Step and name == "with_":  # each kind's settings, after the key
            for kind in KINDS.values():
                keys.extend(model_keys(kind.options, key + ".") if kind.options is not None else ())
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:
            values = typing.get_args(annotation)[1]
            if isinstance(values, type) and issubclass(values, BaseModel):
                keys.extend(model_keys(values, key + ".NAME."))
            elif typing.get_origin(values) is typing.Annotated:  # the message's fields: a union told apart by type
                kinds = typing.get_args(typing.get_args(values)[0])
                names = dict.fromkeys(name for kind in kinds for name in kind.model_fields if name != "type")
                keys.extend(f"{key}.NAME.{name}" for name in ("type", *names))
            continue
        for argument in (annotation, *typing.get_args(annotation)):  # X, or X | None
            if isinstance(argument, type) and issubclass(argument, BaseModel):
                keys.extend(model_keys(argument, key + "."))
    return keys


def test_the_readme_spec_reference_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert splice(text, reference()) == text, f"README.md's spec reference is stale: {REGENERATE}"


def test_the_readme_message_is_the_seed_specs() -> None:
    text = README.read_text(encoding="utf-8")
    message = message_reference(check_spec(ROOT / "fixtures" / "specs" / "lts-template.yaml").message)
    assert splice(text, message, MESSAGE_BEGIN, MESSAGE_END) == text, f"README.md's message is stale: {REGENERATE}"
    assert "| `label` | default `galaxy_1` | string |" in message


def test_the_reference_has_one_row_for_every_key_of_the_models_in_their_order() -> None:
    keys = model_keys(Spec)
    assert list(rows(reference())) == keys
    assert {"remotes.NAME.endpoint", "steps.NAME.container.image", "steps.NAME.resources.qos"} <= set(keys)


def test_every_field_and_every_model_has_a_description() -> None:
    schema = Spec.model_json_schema()
    for name, model in [("Spec", schema), *schema["$defs"].items()]:
        assert model.get("description", "").strip(), f"model {name} has no docstring"
        for field, definition in model["properties"].items():
            assert definition.get("description", "").strip(), f"{name}.{field} has no description"
    for key, (kind, default, meaning) in rows(reference()).items():
        assert kind and default and meaning, key


def test_the_columns_say_what_the_models_say() -> None:
    table = rows(reference())
    assert table["version"][:2] == ["`1`", "required"]
    assert table["federated"][:2] == ["`true` or `false`", "`false`"]
    assert table["chain"][:2] == ["`dependencies` or `relay`", "`dependencies`"]
    assert table["remotes.NAME.connect_timeout"][:2] == ["integer, 1 to 3600", "`10`"]
    assert table["clusters"][:2] == ["map of NAME to section, at least one", "required"]
    assert table["clusters.NAME.partitions"][:2] == ["list of strings, at least one", "required"]
    assert table["objects"][:2] == ["section", "its keys' defaults"]
    assert table["message.NAME.type"][1] == "required"
    assert table["message.NAME.minimum"][0].startswith("integer")
    assert table["steps.NAME.container"][:2] == ["section", "none"]
    assert table["steps.NAME.resources.cpus"][:2] == ["integer ≥ 1", "none"]
    assert table["steps.NAME.depends_on"][0] == "map of NAME to `afterok`, `afterany` or `afternotok`"
    # A section's row says what the section is (the model's docstring) after what the key is.
    assert table["remotes"][2].startswith("The rclone remotes, by name")
    assert "a dead or silent endpoint fails a step in about two minutes" in table["remotes"][2]


def test_a_cell_is_one_line_with_no_html_and_no_stray_pipe() -> None:
    table = reference()
    for line in table.splitlines():
        assert line.startswith("| ") and line.endswith(" |")
        assert len(re.split(r"(?<!\\)\|", line)) == 6, line
        outside_code = re.sub(r"`[^`]*`", "", line)
        assert "<" not in outside_code, line


def test_splice_replaces_only_what_lies_between_the_markers() -> None:
    text = f"# Title\n\nprose before\n{BEGIN}\n| stale |\n{END}\n\nprose after\n"
    assert splice(text, "| new |\n") == f"# Title\n\nprose before\n{BEGIN}\n| new |\n{END}\n\nprose after\n"
    readme = README.read_text(encoding="utf-8")
    stale = splice(readme, "| key | type | default | meaning |\n")
    assert stale != readme
    assert splice(stale, reference()) == readme


@pytest.mark.parametrize("text", [
    "no markers\n",
    f"{BEGIN}\nonly the first\n",
    f"{END}\n{BEGIN}\nin the wrong order\n",
    f"{BEGIN}\n{END}\n{BEGIN}\n{END}\ntwice\n",
])
def test_splice_refuses_a_text_without_one_pair_of_markers(text: str) -> None:
    with pytest.raises(ValueError, match="spec reference"):
        splice(text, "| new |\n")


def test_reference_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "reference") == (0, reference(), "")


def test_reference_help_documents_write(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "reference", "--help")
    assert (code, err) == (0, "")
    assert out.startswith("usage: ltsflow reference [-h] [--write FILE] [--spec SPEC]\n")
    assert "--write FILE" in out and "make reference" in out
    code, out, _ = run(capsys, "--help")
    assert re.search(r"^\s+reference\s+print the spec reference", out, re.MULTILINE)


def test_reference_write_rewrites_a_stale_readme_and_then_finds_it_current(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    readme = README.read_text(encoding="utf-8")
    copy = tmp_path / "README.md"
    copy.write_text(splice(readme, "| stale |\n"), encoding="utf-8")
    assert run(capsys, "reference", "--write", str(copy)) == (0, "", f"ltsflow: {copy}: rewrote the spec reference\n")
    assert copy.read_text(encoding="utf-8") == readme
    assert run(capsys, "reference", "--write", str(copy)) == (
        0, "", f"ltsflow: {copy}: the spec reference is up to date\n")
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]


def test_reference_write_to_a_file_without_markers_exits_1_and_leaves_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "notes.md"
    other.write_text("# Notes\n", encoding="utf-8")
    code, out, err = run(capsys, "reference", "--write", str(other))
    assert (code, out) == (1, "")
    assert err.startswith(f"ltsflow: error: {other} needs the line '{BEGIN}'")
    assert other.read_text(encoding="utf-8") == "# Notes\n"
    code, out, err = run(capsys, "reference", "--write", str(tmp_path / "missing.md"))
    assert (code, out) == (1, "")
    assert err == f"ltsflow: error: No such file or directory: {tmp_path / 'missing.md'}\n"


def test_a_field_without_a_description_stops_the_reference() -> None:
    class Undocumented(BaseModel):
        """A throw-away model."""

        documented: int = Field(description="Has one.")
        bare: int

    with pytest.raises(BuildError, match=r"^bare has no description: give its field one in compiler/spec.py$"):
        reference(Undocumented)


def test_a_shape_the_reference_cannot_lay_out_stops_it_rather_than_being_left_out() -> None:
    class One(BaseModel):
        """One kind."""

        a: int = Field(description="A.")

    class Other(BaseModel):
        """Another kind."""

        b: int = Field(description="B.")

    class Either(BaseModel):
        """A throw-away model."""

        kind: One | Other = Field(description="Either kind.")

    with pytest.raises(BuildError, match="the reference cannot describe the schema .*extend compiler/reference.py"):
        reference(Either)
