"""Session-scoped fixtures running real Slurm 22.05 daemons on 127.0.0.1.

    slurm_single        one cluster "magnus" (munged, slurmctld, slurmd; no database)
    slurm_federation    clusters "zeus" + "magnus", MariaDB + slurmdbd, federation "fed1"
    slurm_multicluster  the same two clusters in one slurmdbd, NOT federated

Each is a ``tests.slurmlib.SlurmSetup``, started the first time a test asks for it
(never otherwise) and stopped at the end of the session; stopping checks that no
recorded daemon PID survives and fails the session teardown if one does.  They
live in one short directory /tmp/ltsf-XXXXXX (the munge socket path is limited
to 108 bytes), removed at the end unless LTSFLOW_KEEP_SLURM=1.

A setup that fails to start is tried once more in a fresh directory (a warning
says so); failing again, it is an error of every test that asks for it, with the
daemons' log tails in the message.  Nothing is ever skipped.  Tests using these
fixtures must carry the ``slurm`` marker (tests/conftest.py refuses to run them
without it), so that ``-m "not slurm"`` leaves them out.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest

from tests.slurmlib import SlurmError, SlurmSetup, processes_under, terminate

SLURM_FIXTURES = ("slurm_single", "slurm_federation", "slurm_multicluster")

# Every setup started in this process, so an abnormal exit (atexit) still stops them.
_STARTED: list[SlurmSetup] = []


def _stop_leftovers() -> None:
    for setup in _STARTED:
        try:
            setup.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


atexit.register(_stop_leftovers)


@pytest.fixture(scope="session")
def slurm_base_dir():
    """The short base directory of all Slurm setups of this session."""
    base = Path(tempfile.mkdtemp(prefix="ltsf-", dir="/tmp"))
    os.chmod(base, 0o755)
    yield base
    # Runs after every setup's own teardown: anything still running from the base
    # directory (a setup that failed half-way, a test's own SlurmSetup) is a bug.
    left = processes_under(base)
    unkillable = terminate(left) if left else {}
    if os.environ.get("LTSFLOW_KEEP_SLURM") != "1":
        shutil.rmtree(base, ignore_errors=True)
    if left:
        raise SlurmError(f"processes left running under {base}: {left}; killed now except {unkillable}")


def _setup(kind: str, base: Path, name: str):
    """Start (once more on failure, in a fresh directory with fresh ports: another
    program may take a port between our check and the daemon's bind), yield, stop."""
    errors: list[SlurmError] = []
    setup = None
    for directory in (base / name, base / f"{name}2"):
        try:
            setup = SlurmSetup.start(kind, directory)
            break
        except SlurmError as exc:
            errors.append(exc)
    if setup is None:
        pytest.fail(
            f"could not start the {kind} Slurm setup, twice.\n=== first attempt:\n{errors[0]}\n"
            f"=== second attempt:\n{errors[1]}",
            pytrace=False,
        )
    if errors:
        warnings.warn(f"the {kind} Slurm setup started at the second attempt; the first failed:\n{errors[0]}")
    _STARTED.append(setup)
    try:
        yield setup
    finally:
        setup.stop()  # raises SlurmError (a teardown error) if a daemon survives


@pytest.fixture(scope="session")
def slurm_single(slurm_base_dir):
    """One cluster "magnus", partitions debugq (default) and copyq."""
    yield from _setup("single", slurm_base_dir, "s")


@pytest.fixture(scope="session")
def slurm_federation(slurm_base_dir):
    """Clusters "zeus" and "magnus" in federation "fed1" (cross-cluster afterok works)."""
    yield from _setup("federated", slurm_base_dir, "f")


@pytest.fixture(scope="session")
def slurm_multicluster(slurm_base_dir):
    """Clusters "zeus" and "magnus" registered in one slurmdbd, not federated."""
    yield from _setup("plain", slurm_base_dir, "m")


def pytest_terminal_summary(terminalreporter):
    if not _STARTED:
        return
    parts = []
    for s in _STARTED:
        stop = f", stopped in {s.stop_seconds:.1f} s" if s.stop_seconds is not None else ""
        parts.append(f"{s.kind} ({'+'.join(s.clusters)}) up in {s.startup_seconds:.1f} s{stop}")
    terminalreporter.write_line("slurm: " + "; ".join(parts))
    if terminalreporter.config.getoption("verbose") > 0:
        for s in _STARTED:
            terminalreporter.write_line(f"--- {s.kind}\n{s.start_log.rstrip()}\n{s.stop_log.rstrip()}")
