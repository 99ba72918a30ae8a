"""Fixtures that compile specs: the scripts under test are always freshly built."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from compiler.build import Compiled, build

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = ROOT / "fixtures" / "specs" / "lts-template.yaml"


def build_where_it_is(spec: Path, out: Path) -> Compiled:
    """build(spec, out) from the spec's directory, so that the scripts name the spec by its file name
    alone: a spec text written to a temporary directory then gives the same scripts in every session,
    and the compiler's cache of scripts shellcheck passed (compiler/verify.py) knows them (a build
    that runs shellcheck takes some 9 s of CPU here, one that finds its scripts there 1 s)."""
    with contextlib.chdir(spec.parent):
        return build(Path(spec.name), out.resolve())


@pytest.fixture(scope="session")
def scripts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default spec compiled once per session (read-only: copy it to change it)."""
    out = tmp_path_factory.mktemp("build") / "out"
    build(DEFAULT_SPEC, out)
    return out


@pytest.fixture(scope="session")
def compile_spec(tmp_path_factory: pytest.TempPathFactory):
    """Compile a spec given as text (the scripts name it NAME.yaml); returns the output directory."""

    def compile_text(text: str, name: str = "spec") -> Path:
        directory = tmp_path_factory.mktemp(name)
        spec = directory / f"{name}.yaml"
        spec.write_text(text)
        build_where_it_is(spec, directory / "out")
        return directory / "out"

    return compile_text


@pytest.fixture(scope="session")
def built_spec(tmp_path_factory: pytest.TempPathFactory):
    """Compile fixtures/specs/NAME.yaml once per session; returns its output directory."""
    built: dict[str, Path] = {}

    def build_named(name: str) -> Path:
        if name not in built:
            out = tmp_path_factory.mktemp(f"build-{name}") / "out"
            build(ROOT / "fixtures" / "specs" / f"{name}.yaml", out)
            built[name] = out
        return built[name]

    return build_named
