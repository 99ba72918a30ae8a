"""Fixtures that compile specs: the scripts under test are always freshly built."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.build import build

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = ROOT / "fixtures" / "specs" / "lts-template.yaml"


@pytest.fixture(scope="session")
def scripts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default spec compiled once per session (read-only: copy it to change it)."""
    out = tmp_path_factory.mktemp("build") / "out"
    build(DEFAULT_SPEC, out)
    return out


@pytest.fixture(scope="session")
def compile_spec(tmp_path_factory: pytest.TempPathFactory):
    """Compile a spec given as text; returns the output directory."""

    def compile_text(text: str, name: str = "spec") -> Path:
        directory = tmp_path_factory.mktemp(name)
        spec = directory / f"{name}.yaml"
        spec.write_text(text)
        build(spec, directory / "out")
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
