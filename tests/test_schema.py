"""The JSON Schema of `ltsflow schema`, checked by a validator that is not pydantic (jsonschema).

Every fixture spec validates against it; every bad spec whose mistake is one of shape (an unknown
key, a wrong type, a value out of range, a missing key) is rejected at that key; and a bad spec
whose mistake lies between keys (a name that must exist, the dependencies) passes, since only
`ltsflow check` can see it.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from compiler.cli import main
from compiler.diagnostics import SpecError
from compiler.load import load_spec

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "fixtures" / "specs"
GOOD = sorted(SPECS.glob("*.yaml"))
BAD = sorted((SPECS / "bad").glob("*.yaml"))

# Each bad spec the schema rejects: the errors, as (the dotted path of the value, the JSON Schema
# keyword that fails). An unknown or missing key fails at the mapping that holds it.
SHAPE_ERRORS = {
    "bad_container": [("steps.crop.container", "anyOf")],  # its command; its binds' format is ltsflow check's
    "bad_dependency_type": [("steps.world_to_pixel.depends_on.sync_in", "enum")],
    "bad_remote_limits": [("remotes.ceph.connect_timeout", "minimum"), ("remotes.ceph.io_timeout", "type"),
                          ("remotes.ceph.low_level_retries", "minimum"), ("remotes.ceph.retries", "maximum")],
    "bad_resources": [("steps.crop.resources.cpus", "anyOf")],
    "bad_version": [("version", "const")],
    "empty": [("", "type")],
    "federated_yes": [("federated", "type")],
    "missing_action": [("steps.crop", "required")],
    "missing_required_key": [("steps.world_to_pixel", "required")],
    "misspelt_depends_on": [("steps.crop", "additionalProperties")],
    "several_errors": [("objects", "additionalProperties"), ("steps.world_to_pixel.depends_on.sync_in", "enum"),
                       ("version", "const")],
    "unknown_nested_key": [("remotes.ceph", "additionalProperties")],
    "unknown_top_key": [("", "additionalProperties")],
    "version_string": [("version", "const"), ("version", "type")],
    "wrong_type": [("objects.crop_width", "type")],
}
# The bad specs the schema accepts: their mistake is one only `ltsflow check` sees.
BETWEEN_KEYS = {
    "bad_rclone_flags",  # which flags rclone takes, and that only sync steps take them
    "dependency_cycle", "duplicate_action", "not_federated",
    "unknown_cluster", "unknown_dependency", "unknown_partition", "unknown_remote",
    "scratch_command", "scratch_relative",  # the format of a run-time path
    "duplicate_key",  # the loader reports it; the data it loads has the key once
}
NOT_YAML = {"yaml_syntax"}  # no data to validate


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    """A validator of the schema exactly as `ltsflow schema` prints it."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["schema"]) == 0
    schema = json.loads(out.getvalue())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"  # its draft, for editors
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def data_of(spec: Path) -> Any:
    """The spec as an editor sees it: the loaded YAML as JSON (its lists are tuples until then)."""
    document = load_spec(spec.read_text(encoding="utf-8"), spec.name)
    return json.loads(json.dumps(document.data))


def errors(validator: Draft202012Validator, spec: Path) -> list[tuple[str, str]]:
    found = validator.iter_errors(data_of(spec))
    return sorted((".".join(str(part) for part in error.absolute_path), str(error.validator)) for error in found)


def test_every_bad_spec_is_classified() -> None:
    names = {spec.stem for spec in BAD}
    assert sorted(names) == sorted(set(SHAPE_ERRORS) | BETWEEN_KEYS | NOT_YAML)
    assert not set(SHAPE_ERRORS) & BETWEEN_KEYS


@pytest.mark.parametrize("spec", GOOD, ids=[spec.stem for spec in GOOD])
def test_every_fixture_spec_validates(validator: Draft202012Validator, spec: Path) -> None:
    assert errors(validator, spec) == []


def test_there_are_fixture_specs() -> None:
    assert {"lts-template", "setonix-acacia", "relay"} <= {spec.stem for spec in GOOD}


@pytest.mark.parametrize("name", sorted(SHAPE_ERRORS))
def test_a_mistake_of_shape_is_rejected_at_its_key(validator: Draft202012Validator, name: str) -> None:
    assert errors(validator, SPECS / "bad" / f"{name}.yaml") == SHAPE_ERRORS[name]


@pytest.mark.parametrize("name", sorted(BETWEEN_KEYS))
def test_a_mistake_between_keys_is_left_to_ltsflow_check(validator: Draft202012Validator, name: str) -> None:
    assert errors(validator, SPECS / "bad" / f"{name}.yaml") == []


def test_a_spec_that_is_not_yaml_has_no_data_to_validate() -> None:
    for name in NOT_YAML:
        with pytest.raises(SpecError):
            load_spec((SPECS / "bad" / f"{name}.yaml").read_text(encoding="utf-8"), name)


def test_the_schema_rejects_what_the_models_reject_in_a_list_and_a_map(validator: Draft202012Validator) -> None:
    spec = data_of(SPECS / "lts-template.yaml")
    spec["clusters"]["zeus"]["partitions"] = []
    spec["steps"]["crop"]["modules"] = "singularity"
    spec["steps"]["crop"]["container"]["engine"] = "docker"
    found = sorted((".".join(map(str, e.absolute_path)), e.validator) for e in validator.iter_errors(spec))
    assert found == [("clusters.zeus.partitions", "minItems"), ("steps.crop.container", "anyOf"),
                     ("steps.crop.modules", "type")]
