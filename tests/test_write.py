"""Stage 6, write: reproducible output, a manifest, and an output directory replaced atomically."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from compiler import __version__, build as build_module, write
from compiler.build import Compiled, build, compile_spec, display_path
from compiler.diagnostics import BuildError, SpecError
from compiler.write import MANIFEST, make_manifest, write_output

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "fixtures" / "specs" / "lts-template.yaml"
SCRIPTS = ["cancel.sh", "crop_image_around_pixels.sh", "get_world_2_pix.sh", "read_messages.sh", "schedule.sh",
           "status.sh", "sync.sh"]

Snapshot = dict[str, tuple[int, bytes | None]]


@pytest.fixture(autouse=True)
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Remembered shellcheck results go to a directory of this test run, not the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


def snapshot(directory: Path) -> Snapshot:
    """Every entry under `directory`: its mode and, for files, its bytes."""
    result: Snapshot = {".": (directory.stat().st_mode, None)}
    for path in sorted(directory.rglob("*")):
        mode = path.lstat().st_mode
        result[path.relative_to(directory).as_posix()] = (mode, path.read_bytes() if path.is_file() else None)
    return result


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return compile_spec(DEFAULT_SPEC)


def files_of(compiled: Compiled) -> dict[str, bytes]:
    return {s.name: s.text.encode() for s in compiled.scripts}


@pytest.fixture
def previous(tmp_path: Path, compiled: Compiled) -> Path:
    """An output directory from an earlier build, with content a new build would change."""
    out = tmp_path / "out"
    old = {"schedule.sh": b"#!/bin/bash\necho old\n", "gone.sh": b"#!/bin/bash\n"}
    write_output(out, old, make_manifest(old, "old.yaml", "0" * 64, "0.0.1"))
    return out


def assert_no_staging_left(out: Path) -> None:
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    build(DEFAULT_SPEC, tmp_path / "one")
    build(DEFAULT_SPEC, tmp_path / "two")
    one, two = snapshot(tmp_path / "one"), snapshot(tmp_path / "two")
    assert set(one) == {".", *SCRIPTS, MANIFEST}
    assert one == two
    # Building again over the first output changes nothing either.
    build(DEFAULT_SPEC, tmp_path / "one")
    assert snapshot(tmp_path / "one") == two


def test_the_manifest_lists_every_file_the_spec_and_the_version(tmp_path: Path, compiled: Compiled) -> None:
    out = tmp_path / "out"
    write_output(out, files_of(compiled), compiled.manifest)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest == {
        "files": {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in SCRIPTS},
        "ltsflow": __version__,
        "spec": {
            "path": display_path(DEFAULT_SPEC),
            "sha256": hashlib.sha256(DEFAULT_SPEC.read_bytes()).hexdigest(),
        },
    }
    assert Path(manifest["spec"]["path"]).resolve() == DEFAULT_SPEC.resolve()
    assert sorted(p.name for p in out.iterdir()) == sorted([*SCRIPTS, MANIFEST])
    assert (out / MANIFEST).read_bytes().endswith(b"}\n")


def test_make_manifest_is_sorted_and_stable() -> None:
    first = make_manifest({"b.sh": b"2", "a.sh": b"1"}, "s.yaml", "f" * 64, "9.9")
    again = make_manifest({"a.sh": b"1", "b.sh": b"2"}, "s.yaml", "f" * 64, "9.9")
    assert first == again
    assert list(json.loads(first)["files"]) == ["a.sh", "b.sh"]
    assert json.loads(first)["files"]["a.sh"] == hashlib.sha256(b"1").hexdigest()


def test_scripts_are_executable_and_the_manifest_is_not(tmp_path: Path, compiled: Compiled) -> None:
    out = tmp_path / "out"
    old_umask = os.umask(0o077)
    try:
        write_output(out, files_of(compiled), compiled.manifest)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for name in SCRIPTS:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o755, name
    assert stat.S_IMODE((out / MANIFEST).stat().st_mode) == 0o644


def test_a_new_build_replaces_the_old_output_exactly(previous: Path, compiled: Compiled) -> None:
    write_output(previous, files_of(compiled), compiled.manifest)
    assert sorted(p.name for p in previous.iterdir()) == sorted([*SCRIPTS, MANIFEST])
    assert (previous / "schedule.sh").read_bytes() == files_of(compiled)["schedule.sh"]
    assert_no_staging_left(previous)


def test_a_bad_spec_leaves_the_previous_output_as_it_was(previous: Path, tmp_path: Path) -> None:
    before = snapshot(previous)
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_SPEC.read_text().replace("version: 1", "version: 9"))
    with pytest.raises(SpecError):
        build(bad, previous)
    assert snapshot(previous) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "out"]


@pytest.mark.parametrize("stage", ["render_scripts", "verify_scripts", "plan_jobs"])
def test_a_failing_stage_leaves_the_previous_output_as_it_was(
    previous: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    before = snapshot(previous)

    def fail(*_args: object, **_kwargs: object) -> None:
        raise BuildError(f"{stage} failed")

    monkeypatch.setattr(build_module, stage, fail)
    with pytest.raises(BuildError, match=stage):
        build(DEFAULT_SPEC, previous)
    assert snapshot(previous) == before
    assert_no_staging_left(previous)


@pytest.mark.parametrize("interruption", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_an_interrupted_write_leaves_the_previous_output_and_no_staging(
    previous: Path, compiled: Compiled, monkeypatch: pytest.MonkeyPatch, interruption: BaseException
) -> None:
    before = snapshot(previous)
    real = write._write_file
    written: list[str] = []

    def write_then_fail(path: Path, data: bytes, mode: int) -> None:
        if written:
            raise interruption
        real(path, data, mode)
        written.append(path.name)

    monkeypatch.setattr(write, "_write_file", write_then_fail)
    with pytest.raises(type(interruption)):
        write_output(previous, files_of(compiled), compiled.manifest)
    assert written == [SCRIPTS[0]]
    assert snapshot(previous) == before
    assert_no_staging_left(previous)


def test_a_failing_os_write_leaves_the_previous_output(
    previous: Path, compiled: Compiled, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(previous)
    real = os.write
    calls: list[int] = []

    def flaky(descriptor: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.EIO, "Input/output error")
        return real(descriptor, data)

    monkeypatch.setattr(write.os, "write", flaky)
    with pytest.raises(OSError, match="Input/output error"):
        write_output(previous, files_of(compiled), compiled.manifest)
    monkeypatch.undo()
    assert len(calls) == 2
    assert snapshot(previous) == before
    assert_no_staging_left(previous)


def test_a_failing_exchange_leaves_the_previous_output(
    previous: Path, compiled: Compiled, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(previous)

    def fail(_first: Path, _second: Path) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(write, "_exchange", fail)
    with pytest.raises(OSError):
        write_output(previous, files_of(compiled), compiled.manifest)
    assert snapshot(previous) == before
    assert_no_staging_left(previous)


def test_the_exchange_works_without_renameat2(
    previous: Path, compiled: Compiled, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoRenameat2:
        def __init__(self, *_args: object, **_kwargs: object) -> None:
            pass

    monkeypatch.setattr(write.ctypes, "CDLL", NoRenameat2)
    write_output(previous, files_of(compiled), compiled.manifest)
    assert sorted(p.name for p in previous.iterdir()) == sorted([*SCRIPTS, MANIFEST])
    assert_no_staging_left(previous)


@pytest.mark.parametrize("manifest", [None, b"not json", b'{"other": 1}\n'])
def test_refuses_to_replace_a_directory_that_is_not_ltsflow_output(
    tmp_path: Path, compiled: Compiled, manifest: bytes | None
) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    if manifest is not None:
        (out / MANIFEST).write_bytes(manifest)
    before = snapshot(out)
    refused = "refusing to replace .*precious: it is not empty and holds no ltsflow manifest.json"
    with pytest.raises(BuildError, match=refused):
        write_output(out, files_of(compiled), compiled.manifest)
    assert snapshot(out) == before
    assert_no_staging_left(out)


def test_refuses_to_replace_a_file(tmp_path: Path, compiled: Compiled) -> None:
    out = tmp_path / "out"
    out.write_text("a file")
    with pytest.raises(BuildError, match="refusing to replace"):
        write_output(out, files_of(compiled), compiled.manifest)
    assert out.read_text() == "a file"


def test_an_empty_directory_is_replaced(tmp_path: Path, compiled: Compiled) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_output(out, files_of(compiled), compiled.manifest)
    assert sorted(p.name for p in out.iterdir()) == sorted([*SCRIPTS, MANIFEST])
    assert_no_staging_left(out)


def test_first_build_into_a_missing_directory(tmp_path: Path, compiled: Compiled) -> None:
    out = tmp_path / "not" / "yet" / "there"
    write_output(out, files_of(compiled), compiled.manifest)
    assert (out / MANIFEST).read_bytes() == compiled.manifest
    assert {name: (out / name).read_bytes() for name in SCRIPTS} == files_of(compiled)
    assert_no_staging_left(out)
