"""The report kind: `status.sh --report`, which every build writes anyway, run as a step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..layout import RUN_DIR
from ..words import Word
from . import Kind, Planned

if TYPE_CHECKING:
    from ..spec import Spec, Step


def _report(_spec: Spec, _step: Step) -> Planned:
    return Planned((Word.of("--report"), Word.of(RUN_DIR)))


REPORT = Kind("report", "status.sh", None, None, _report, container=False, summary="`report`",
              note="A report step is optional: it runs `status.sh --report`, which writes `RUN_DIR/report.txt` with "
              "every job's final state and a last line `result: succeeded` or `result: failed (...)` (on a full or "
              "read-only scratch it prints the report to its log, says so, and exits 10); give it `afterany`.")
