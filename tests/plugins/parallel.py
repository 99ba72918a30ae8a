"""How the tests split between pytest-xdist's workers (`make test` runs `-n 3 --dist loadfile`).

A file's tests go to one worker, which then makes the file's module fixtures once (and runs a bats file
once, `bats.py`). The real-Slurm files go to one worker together, since each worker starts the session
fixtures it uses and one set of Slurm daemons is enough.

xdist's own `xdist_group` marker would say the second, but xdist 3.8 sets it by rewriting a test's
`_nodeid`, which pytest 9 no longer reads: here the scheduler is told instead, and each test with the
`slurm` marker is checked, as it is collected, to be in one of `SLURM_FILES`.
"""

from __future__ import annotations

import pytest

SLURM_FILES = ("tests/test_real_slurm.py", "tests/test_slurm_fixtures.py")
"""The files of the tests that use the real Slurm daemons: one worker runs them all."""


def pytest_itemcollected(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is not None and item.nodeid.split("::")[0] not in SLURM_FILES:
        raise pytest.UsageError(f"{item.nodeid} uses the real Slurm: add its file to SLURM_FILES in {__file__}")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN201 - xdist's own types
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SlurmTogether(LoadFileScheduling):
        """Each file its own unit of work, but the real-Slurm files one unit, the first one given out: it is
        the longest (its daemons' start and Slurm's own timers), and would otherwise end the run alone."""

        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return "slurm" if file in SLURM_FILES else file

        def _assign_work_unit(self, node) -> None:  # noqa: ANN001 - xdist's own type
            if "slurm" in self.workqueue:
                self.workqueue.move_to_end("slurm", last=False)
            super()._assign_work_unit(node)

    return SlurmTogether(config, log)
