"""Stage 6, write: put the scripts and the manifest into the output directory, atomically.

Everything is written into a staging directory beside the target (fsynced), then
the staging directory and the target are exchanged in one step (renameat2 with
RENAME_EXCHANGE on Linux). A build that fails or is interrupted at any point
leaves the previous output exactly as it was. The manifest is written last, so
a directory with a manifest is always complete.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .diagnostics import BuildError

MANIFEST = "manifest.json"


def make_manifest(files: dict[str, bytes], spec_path: str, spec_sha256: str, version: str) -> bytes:
    """The manifest: each file's sha256, the spec's path and sha256, the ltsflow version."""
    manifest = {
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "ltsflow": version,
        "spec": {"path": spec_path, "sha256": spec_sha256},
    }
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def write_output(out_dir: Path, files: dict[str, bytes], manifest: bytes) -> None:
    """Replace `out_dir` with exactly `files` plus the manifest, or leave it untouched."""
    target = Path(os.path.abspath(out_dir))
    if target.exists() and not _is_output_directory(target):
        raise BuildError(f"refusing to replace {out_dir}: it is not empty and holds no ltsflow {MANIFEST}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, data in sorted(files.items()):
            _write_file(staging / name, data, 0o755 if name.endswith(".sh") else 0o644)
        _write_file(staging / MANIFEST, manifest, 0o644)
        os.chmod(staging, 0o755)
        _fsync_directory(staging)
        if target.exists():
            _exchange(staging, target)
        else:
            os.rename(staging, target)
        _fsync_directory(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _is_output_directory(path: Path) -> bool:
    if not path.is_dir():
        return False
    if not any(path.iterdir()):
        return True
    try:
        return "ltsflow" in json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False


def _write_file(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(descriptor, data)
        os.fchmod(descriptor, mode)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(first: Path, second: Path) -> None:
    """Swap two directories atomically where the kernel can, else by three renames."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
        if result == 0:
            return
        error = ctypes.get_errno()
        if error not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(error, os.strerror(error), str(second))
    parked = Path(tempfile.mkdtemp(prefix=f".{second.name}.old.", dir=second.parent))
    os.rmdir(parked)
    os.rename(second, parked)
    os.rename(first, second)
    os.rename(parked, first)
