"""Fixtures for the fake Slurm shims (tests/shims/, tests/shimlib.py).

- ``shim_state`` (function): a fresh ``ShimState`` in the test's tmp_path; use
  ``shim_state.env()`` for the environment that puts the shims first on PATH.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shimlib import ShimState


@pytest.fixture
def shim_state(tmp_path: Path) -> ShimState:
    return ShimState(tmp_path / "shim-state")
