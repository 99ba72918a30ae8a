"""End-to-end wall time on a real Slurm (tests/slurmlib.py): the seed strategy vs one batched run.

As in tests/test_real_slurm.py: real slurmctld/slurmd (and slurmdbd with MariaDB), rclone against
SeaweedFS, sky2xy and astcrop behind the singularity shim; the spec passes PATH, SLURM_CONF, the shim
state and RCLONE_CONFIG to the jobs by name (``exports:``).

The clock starts before the first ``schedule.sh`` is started and stops when a listing of the bucket
first shows every crop (the bucket is listed about once a second, so the figure is late by up to that
plus one listing). The queue is then waited on until empty, so runs do not overlap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.bench.shimmed import CROP_SUFFIX, Image, objects_on, progress, write_messages
from tests.chain import compile_for_slurm, real_slurm_environment
from tests.s3server import DEFAULT_REMOTE, S3Server
from tests.slurmlib import SlurmSetup

EXPORTS = "\nexports: [PATH, SLURM_CONF, LTSFLOW_SHIM_STATE, RCLONE_CONFIG]\n"

#: (label, SlurmSetup kind, fixture spec): the one-cluster spec runs on magnus of the accounted setup,
#: because every sbatch names its cluster and --clusters needs slurmdbd.
#: Seconds between two looks at the bucket or the queue: each wait is for a condition, with a deadline,
#: and the end-to-end figure is late by at most this.
POLL = 0.2

#: The federation is measured twice for ltsflow: with cross-cluster dependencies (released by
#: slurmctld seconds after their parent ends), and as a relay (each job submits the next).
SETUPS = (("one cluster (magnus)", "plain", "single-cluster", ()),
          ("federation (zeus+magnus)", "federated", "lts-template", (("federation (zeus+magnus) relay", "relay"),)))


class RealBench:
    """One running Slurm setup, the scripts compiled for it, and the environment its runs get."""

    def __init__(self, setup: SlurmSetup, s3: S3Server, spec: str, work: Path) -> None:
        self.setup = setup
        self.s3 = s3
        self.work = work
        self.scripts = compile_for_slurm(spec, work, EXPORTS)
        self.env = real_slurm_environment(setup, s3, work)
        self._serial = 0

    def _start(self, messages: Sequence[Mapping[str, str]], name: str) -> subprocess.Popen[str]:
        directory = self.work / name
        directory.mkdir()
        source = write_messages(directory / "messages.jsonl", messages)
        return subprocess.Popen(["bash", str(self.scripts / "schedule.sh"), str(source)], cwd=directory,
                                env={**self.env, "MYSCRATCH": str(directory / "scratch")}, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def end_to_end(self, image: Image, objects: int, seed: bool, timeout: float = 1800) -> float | None:
        """Seconds from the first submission to the last crop in the bucket; None past `timeout`."""
        self._serial += 1
        bucket = f"bench-slurm-{os.getpid()}-{self._serial}"
        self.s3.make_bucket(bucket)
        self.s3.put(image.path, f"{bucket}/{image.key}")
        messages = objects_on([image], objects, bucket)
        names = []
        try:
            start = time.monotonic()
            if seed:
                names = [f"seed-{self._serial}-{i}" for i in range(objects)]
                runs = [self._start([m], n) for m, n in zip(messages, names)]
            else:
                names = [f"ltsflow-{self._serial}"]
                runs = [self._start(messages, names[0])]
            for run in runs:
                _out, err = run.communicate(timeout=600)
                if run.returncode != 0:
                    raise RuntimeError(f"schedule.sh exited {run.returncode}:\n{err[-3000:]}")
            deadline = start + timeout
            while True:
                crops = sum(k.endswith(CROP_SUFFIX) for k in self.s3.list_objects(bucket))
                if crops >= objects:
                    seconds = time.monotonic() - start
                    break
                if time.monotonic() > deadline:
                    progress(f"  not finished after {timeout:.0f} s ({crops}/{objects} crops): not measured")
                    seconds = None
                    break
                time.sleep(POLL)
            self._wait_queue_empty(deadline + 300)
            return seconds
        finally:
            for name in names:
                shutil.rmtree(self.work / name, ignore_errors=True)
            self.s3.rclone("purge", f"{DEFAULT_REMOTE}:{bucket}", check=False)

    def _wait_queue_empty(self, deadline: float) -> None:
        while True:
            queued = self.setup.run("squeue", "--clusters=all", "--noheader", "--format=%i", check=False).stdout
            left = [line for line in queued.splitlines() if line.strip() and not line.startswith("CLUSTER")]
            if not left:
                return
            if time.monotonic() > deadline:
                self.setup.run("scancel", "--clusters=all", "--user", str(os.getuid()), check=False)
                raise RuntimeError(f"jobs still queued after the run: {left}")
            time.sleep(POLL)


def measure_real_slurm(s3: S3Server, image: Image, objects: int) -> list[tuple[str, float | None, float | None]]:
    """[(setup label, seed seconds, ltsflow seconds)] for each setup in SETUPS; every daemon stopped after."""
    results = []
    base = Path(tempfile.mkdtemp(prefix="ltsf-b-", dir="/tmp"))  # short: the munge socket lives in it
    os.chmod(base, 0o755)
    try:
        for index, (label, kind, spec, variants) in enumerate(SETUPS):
            progress(f"real Slurm: starting the {kind} setup for {label}")
            setup = SlurmSetup.start(kind, base / f"s{index}")
            try:
                work = base / f"w{index}"
                work.mkdir()
                bench = RealBench(setup, s3, spec, work)
                # A first run pays for what any later one finds ready (the first job on each node, the
                # tools' first start, page cache): one unmeasured object first, so both strategies meet
                # the same warm setup.
                progress(f"real Slurm, {label}: one object first, not measured (warm-up)")
                bench.end_to_end(image, 1, seed=False)
                progress(f"real Slurm, {label}: ltsflow, one run of {objects} objects")
                ours = bench.end_to_end(image, objects, seed=False)
                progress(f"  {ours if ours is None else round(ours, 1)} s")
                progress(f"real Slurm, {label}: seed strategy, {objects} runs submitted at once")
                theirs = bench.end_to_end(image, objects, seed=True)
                progress(f"  {theirs if theirs is None else round(theirs, 1)} s")
                results.append((label, theirs, ours))
                for variant_label, variant_spec in variants:
                    (work / variant_spec).mkdir()
                    variant = RealBench(setup, s3, variant_spec, work / variant_spec)
                    variant.end_to_end(image, 1, seed=False)  # its scripts' first run: a warm-up
                    progress(f"real Slurm, {variant_label}: ltsflow ({variant_spec}.yaml), one run of {objects} objects")
                    other = variant.end_to_end(image, objects, seed=False)
                    progress(f"  {other if other is None else round(other, 1)} s")
                    results.append((variant_label, theirs, other))
            finally:
                setup.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results
