"""Runs of the compiled chain under the fake Slurm shims, with the real tools and the real S3 server.

Only the stable interface is used: ``schedule.sh MESSAGES...`` (its run directory is not read), the
shims' ``drain``, the shims' call records, and the crops listed in the bucket (keys ending in
``_crop.fits``). What went over the wire is counted by a ``CountingProxy`` in front of the S3 server.

- ``measure_seed``: the seed's strategy, one ``schedule.sh`` run per object, each with its own empty
  scratch and its own shim state, as K independent chains would run;
- ``measure_ltsflow``: one ``schedule.sh`` run with every message in one JSON Lines file, then drain.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import shutil
import subprocess
import tempfile
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.bench.proxy import CountingProxy
from tests.fitsimages import make_image
from tests.s3server import DEFAULT_REMOTE, S3Server
from tests.shimlib import ShimState

CROP_SUFFIX = "_crop.fits"
MARGIN = 50  # pixels kept clear of every edge when picking an object


def progress(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Image:
    """An image made by code, with its WCS; ``key`` is where it goes in a bucket."""

    path: Path
    key: str
    nx: int
    ny: int
    wcs: object

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def make_images(directory: Path, count: int, nx: int, ny: int, stem: str) -> list[Image]:
    images = []
    for index in range(count):
        path = directory / f"{stem}{index}.fits"
        wcs = make_image(path, nx=nx, ny=ny, ra=150.0 + index, dec=2.0 - index / 10, seed=index, zero_block=None)
        images.append(Image(path, f"data/{stem}{index}.fits", nx, ny, wcs))
    return images


def objects_on(images: Sequence[Image], count: int, bucket: str, seed: int = 0) -> list[dict[str, str]]:
    """`count` messages, object N on image N mod F, at a seeded random pixel well inside it."""
    rng = random.Random(seed)
    messages = []
    for index in range(count):
        image = images[index % len(images)]
        x = rng.uniform(MARGIN, image.nx - MARGIN)
        y = rng.uniform(MARGIN, image.ny - MARGIN)
        ra, dec = image.wcs.pixel_to_world_values(x - 1, y - 1)  # 1-based pixel -> astropy's 0-based
        messages.append({"file": f"{bucket}/{image.key}", "ra": f"{float(ra):.7f}", "dec": f"{float(dec):.7f}",
                         "label": f"o{index}"})
    return messages


def write_messages(path: Path, messages: Sequence[Mapping[str, str]]) -> Path:
    path.write_text("".join(json.dumps(m, separators=(",", ":")) + "\n" for m in messages))
    return path


@dataclass(frozen=True)
class Measured:
    """What one strategy did for one case: counted, never computed."""

    sbatch_calls: int
    tool_runs: int
    bytes_fetched: int
    fetches: int  # object GETs seen by the proxy
    crops: int
    seconds: float
    staging_seconds: float  # the sync-in jobs' (sync in and, when ranged, its rows job) wall time, summed


@dataclass(frozen=True)
class RunCounts:
    sbatch_calls: int
    tool_runs: int
    staging_seconds: float


class Bench:
    """The S3 server, the counting proxy in front of it, the compiled scripts and a work directory."""

    def __init__(self, scripts: Path, s3: S3Server, proxy: CountingProxy, work: Path) -> None:
        self.scripts = scripts.resolve()
        self.s3 = s3
        self.proxy = proxy
        self.work = work
        self._serial = 0
        # A directory holding only `rclone` -> the real one, put before the shims: the shims' rclone
        # records each call (a Python start, about 0.05 s), which the bench does not count and which
        # would weigh on ranged staging's many short calls.
        self.direct_rclone = Path(tempfile.mkdtemp(prefix="ltsflow-bench-rclone-"))
        weakref.finalize(self, shutil.rmtree, self.direct_rclone, True)
        shims = Path(__file__).resolve().parent.parent / "shims"
        path = os.pathsep.join(p for p in s3.env().get("PATH", "").split(os.pathsep)
                               if p and Path(p).resolve() != shims)
        real = shutil.which("rclone", path=path)
        if real is None:
            raise RuntimeError("no rclone on PATH")
        (self.direct_rclone / "rclone").symlink_to(real)

    def fresh_dir(self, hint: str) -> Path:
        self._serial += 1
        path = self.work / f"{hint}-{self._serial}"
        path.mkdir(parents=True)
        return path

    def fresh_bucket(self, images: Sequence[Image]) -> str:
        self._serial += 1
        bucket = f"bench-{os.getpid()}-{self._serial}"
        self.s3.make_bucket(bucket)
        for image in images:
            self.s3.put(image.path, f"{bucket}/{image.key}")
        return bucket

    def drop_bucket(self, bucket: str) -> None:
        self.s3.rclone("purge", f"{DEFAULT_REMOTE}:{bucket}", check=False)

    def crops(self, bucket: str) -> int:
        return sum(key.endswith(CROP_SUFFIX) for key in self.s3.list_objects(bucket))

    def one_run(self, messages: Sequence[Mapping[str, str]], directory: Path,
                extra_env: Mapping[str, str] | None = None) -> RunCounts:
        """schedule.sh with `messages` in one file, with its own scratch and shim state, then drain.

        Returns the sbatch calls and tool runs the shims recorded, and the sync-in jobs' seconds. Every job
        must have completed.
        """
        state = ShimState(directory / "slurm")
        workdir = directory / "cwd"
        workdir.mkdir()
        env = state.env(self.s3.env(), MYSCRATCH=str(directory / "scratch"), RCLONE_RETRIES="1",
                        RCLONE_LOW_LEVEL_RETRIES="1", RCLONE_CONFIG_CEPH_ENDPOINT=self.proxy.endpoint,
                        **(extra_env or {}))
        env["PATH"] = f"{self.direct_rclone}{os.pathsep}{env['PATH']}"
        source = write_messages(workdir / "messages.jsonl", messages)
        scheduled = subprocess.run(["bash", str(self.scripts / "schedule.sh"), str(source)], cwd=workdir, env=env,
                                   capture_output=True, text=True, check=False, timeout=3600)
        if scheduled.returncode != 0:
            raise RuntimeError(f"schedule.sh exited {scheduled.returncode}:\n{scheduled.stderr[-3000:]}")
        # One job per drain call, to time each: a call's time is its job's plus the drain's own start
        # (about 0.1 s of Python), the same for every job.
        staging = 0.0
        started = 0
        while True:
            begin = time.monotonic()
            drained = state.drain(env, cwd=workdir, max_jobs=1, timeout=7200)
            seconds = time.monotonic() - begin
            jobs = state.jobs()
            ran = [j for j in jobs if j.get("run_order") is not None]
            if drained.returncode != 0 or len(ran) == started:
                break
            started = len(ran)
            last = max(ran, key=lambda j: j["run_order"])
            if "-sync_in" in last["name"]:
                staging += seconds
        failed = [j for j in jobs if j["state"] != "COMPLETED"]
        if drained.returncode != 0 or failed:
            logs = "".join(Path(p).read_text(errors="replace")[-1500:] for j in failed for p in j["logs"]
                           if Path(p).exists())
            raise RuntimeError(f"drain exited {drained.returncode}; jobs not COMPLETED: "
                               f"{[(j['name'], j['state'], j['exit_code']) for j in failed]}\n{drained.stderr}\n{logs}")
        return RunCounts(len(state.sbatch_calls()), len(state.calls("singularity")) + len(state.calls("apptainer")),
                         staging)


def measure_ltsflow(bench: Bench, images: Sequence[Image], objects: int,
                    extra_env: Mapping[str, str] | None = None) -> Measured:
    """One schedule.sh run with all `objects` messages in one JSON Lines file, then drain."""
    bucket = bench.fresh_bucket(images)
    directory = bench.fresh_dir("ltsflow")
    try:
        before = bench.proxy.tally()
        start = time.monotonic()
        counts = bench.one_run(objects_on(images, objects, bucket), directory, extra_env)
        seconds = time.monotonic() - start
        wire = bench.proxy.tally() - before
        crops = bench.crops(bucket)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        bench.drop_bucket(bucket)
    if crops != objects:
        raise RuntimeError(f"ltsflow run: {crops} crops in the bucket for {objects} objects")
    return Measured(counts.sbatch_calls, counts.tool_runs, wire.object_bytes, wire.object_gets, crops, seconds,
                    counts.staging_seconds)


def seed_run_seconds(bench: Bench, images: Sequence[Image], extra_env: Mapping[str, str] | None = None) -> float:
    """Wall time of one seed-strategy run (one object, empty scratch): to estimate a case before running it."""
    bucket = bench.fresh_bucket(images[:1])
    directory = bench.fresh_dir("probe")
    try:
        start = time.monotonic()
        bench.one_run(objects_on(images[:1], 1, bucket), directory, extra_env)
        return time.monotonic() - start
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        bench.drop_bucket(bucket)


def measure_seed(bench: Bench, images: Sequence[Image], objects: int, parallel: int = 1,
                 extra_env: Mapping[str, str] | None = None,
                 on_progress: Callable[[int], None] | None = None) -> Measured:
    """`objects` independent schedule.sh runs of one object each, each with its own empty scratch.

    At most `parallel` run at once; each run's scratch (its copy of the image) is removed as soon as it
    ends, so at most `parallel` copies exist at any time.
    """
    bucket = bench.fresh_bucket(images)
    messages = objects_on(images, objects, bucket)
    done = 0

    def run(message: Mapping[str, str]) -> RunCounts:
        nonlocal done
        directory = bench.fresh_dir("seed")
        try:
            return bench.one_run([message], directory, extra_env)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
            done += 1
            if on_progress is not None:
                on_progress(done)

    try:
        before = bench.proxy.tally()
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            counts = list(pool.map(run, messages))
        seconds = time.monotonic() - start
        wire = bench.proxy.tally() - before
        crops = bench.crops(bucket)
    finally:
        bench.drop_bucket(bucket)
    if crops != objects:
        raise RuntimeError(f"seed strategy: {crops} crops in the bucket for {objects} objects")
    return Measured(sum(c.sbatch_calls for c in counts), sum(c.tool_runs for c in counts), wire.object_bytes,
                    wire.object_gets, crops, seconds, sum(c.staging_seconds for c in counts))


@dataclass(frozen=True)
class ScheduleTime:
    """``schedule.sh --dry-run``'s cost, the best of several runs: wall seconds, and CPU seconds (user
    and system, of schedule.sh and every command it waited for)."""

    wall: float
    cpu: float


def schedule_seconds(scripts: Path, work: Path, counts: Sequence[int], timeout: float, one_file: bool = True,
                     rounds: int = 5) -> dict[int, ScheduleTime | None]:
    """``schedule.sh --dry-run`` on each of `counts` messages at distinct positions (each is hashed
    for its key), in one JSON Lines file or one file each: the best of `rounds` runs each. The counts
    take turns within each round, so that every count meets the same conditions (this machine is
    shared: its caches and cores are, and the best run is the least disturbed). None past `timeout`."""
    env = {**os.environ, "MYSCRATCH": str(work / "scratch"), "RCLONE_CONFIG_CEPH_ACCESS_KEY_ID": "bench",
           "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY": "bench"}
    inputs: dict[int, list[str]] = {}
    for messages in counts:
        source = work / f"dry-{messages}"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        chosen = [{"file": f"bench/data/frame{i % 10}.fits", "ra": f"{150 + i * 1e-5:.5f}", "dec": "2.01",
                   "label": f"o{i}"} for i in range(messages)]
        if one_file:
            inputs[messages] = [str(write_messages(source / "messages.jsonl", chosen))]
        else:
            inputs[messages] = [str(write_messages(source / f"{i}.json", [m])) for i, m in enumerate(chosen)]
    walls: dict[int, list[float]] = {n: [] for n in counts}
    cpus: dict[int, list[float]] = {n: [] for n in counts}
    late: set[int] = set()
    try:
        for _ in range(rounds):
            for messages in counts:
                if messages in late:
                    continue
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.monotonic()
                try:
                    subprocess.run(["bash", str(scripts / "schedule.sh"), "--dry-run", *inputs[messages]], env=env,
                                   cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True,
                                   timeout=timeout)
                except subprocess.TimeoutExpired:
                    late.add(messages)
                    continue
                walls[messages].append(time.monotonic() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus[messages].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    finally:
        for messages in counts:
            shutil.rmtree(work / f"dry-{messages}", ignore_errors=True)
    return {n: None if n in late else ScheduleTime(min(walls[n]), min(cpus[n])) for n in counts}


def parallel_runs() -> int:
    """How many seed-strategy runs go at once: one per core, at least two (each run mostly waits)."""
    return max(2, os.cpu_count() or 1)


def estimate(seconds_one: float, objects: int, parallel: int) -> float:
    return seconds_one * math.ceil(objects / parallel)
