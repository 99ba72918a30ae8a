"""make bench: measure the seed's strategy against ltsflow's batched run, in one run, from a clean clone.

    python -m tests.bench [--quick] [--parts shim,schedule,build,slurm] [--out out/bench.json]

Writes a list of rows {"objects", "images", "image_size", "staging", "metric", "seed", "ltsflow",
"ratio"} (ratio = seed / ltsflow) to out/bench.json and prints them as a table; progress goes to stderr.
A figure that was not measured is null, never estimated. See tests/bench/__init__.py for the metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from compiler.build import build
from tests.bench.proxy import CountingProxy
from tests.bench.shimmed import (Bench, Image, Measured, estimate, make_images, measure_ltsflow, measure_seed,
                                 parallel_runs, progress, schedule_seconds, seed_run_seconds)
from tests.s3server import S3Server

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "fixtures" / "specs" / "lts-template.yaml"
SDSS = (2048, 1489)  # an SDSS frame's size, float32
BIG = (8192, 8192)  # 256 MB of float32
SEED_BUDGET = 600.0  # seconds: a seed-strategy case estimated to take longer is not run
SCHEDULE_TIMEOUT = 900.0


@dataclass(frozen=True)
class Staging:
    """How images reach the cluster: whole, or by ranges (headers, then the rows the crops need)."""

    name: str
    spec: Path


STAGINGS = (Staging("full", SPEC), Staging("ranged", ROOT / "fixtures" / "specs" / "ranged.yaml"))


def cases(quick: bool) -> list[tuple[int, int, tuple[int, int]]]:
    """(objects, images, (nx, ny)) of every shim case."""
    if quick:
        return [(k, f, SDSS) for f in (1, 10) for k in (1, 10)]
    return [(k, f, SDSS) for f in (1, 10) for k in (1, 10, 100, 1000)] + [(1, 1, BIG), (100, 1, BIG)]


def row(objects: int | None, images: int | None, size: str | None, staging: str | None, metric: str,
        seed: float | None, ltsflow: float | None, ratio: float | None = None, note: str | None = None) -> dict:
    if ratio is None and seed is not None and ltsflow:
        ratio = round(seed / ltsflow, 2)
    out = {"objects": objects, "images": images, "image_size": size, "staging": staging, "metric": metric,
           "seed": seed, "ltsflow": ltsflow, "ratio": ratio}
    if note:
        out["note"] = note
    return out


def size_label(nx: int, ny: int) -> str:
    return f"{nx}x{ny} float32"


def shim_rows(scripts: dict[str, Path], work: Path, quick: bool) -> list[dict]:
    rows: list[dict] = []
    s3 = S3Server()
    try:
        s3.start(work / "s3")
        with CountingProxy(s3.endpoint) as proxy:
            images_dir = work / "images"
            images_dir.mkdir()
            made: dict[tuple[int, int], list[Image]] = {}
            per_run: dict[tuple[int, int], float] = {}  # effective seconds per seed run, at `parallel`
            parallel = parallel_runs()
            for objects, count, (nx, ny) in cases(quick):
                if (nx, ny) not in made or len(made[(nx, ny)]) < count:
                    for old in made.pop((nx, ny), []):
                        old.path.unlink()
                    progress(f"making {count} image(s) of {nx}x{ny}")
                    made[(nx, ny)] = make_images(images_dir, count, nx, ny, f"frame{nx}x{ny}-")
                images = made[(nx, ny)][:count]
                # The seed's strategy fetches whole images, whatever the staging: it is measured once a case.
                seed_bench = Bench(scripts["full"], s3, proxy, work / "runs")
                label = f"K={objects} F={count} {nx}x{ny}"
                if (nx, ny) not in per_run:
                    per_run[(nx, ny)] = seed_run_seconds(seed_bench, images)
                    progress(f"  one seed-strategy run of a {nx}x{ny} image: {per_run[(nx, ny)]:.1f} s")
                guess = estimate(per_run[(nx, ny)], objects, parallel)
                theirs: Measured | None = None
                if guess <= SEED_BUDGET:
                    progress(f"{label}: seed strategy, {objects} runs, {parallel} at once (about {guess:.0f} s)")
                    step = max(1, objects // 10)
                    theirs = measure_seed(seed_bench, images, objects, parallel,
                                          on_progress=lambda n, t=objects, s=step: n % s == 0 and progress(
                                              f"  {n}/{t} seed runs done"))
                    if objects >= 4 * parallel:  # enough runs for the pool to be busy all along
                        per_run[(nx, ny)] = theirs.seconds / objects * parallel
                    progress(f"  {theirs}")
                else:
                    progress(f"{label}: seed strategy NOT run: about {guess:.0f} s > {SEED_BUDGET:.0f} s")
                for staging in STAGINGS:
                    bench = Bench(scripts[staging.name], s3, proxy, work / "runs")
                    progress(f"{label} {staging.name}: ltsflow, one run")
                    ours = measure_ltsflow(bench, images, objects)
                    progress(f"  {ours}")
                    for metric in ("sbatch_calls", "tool_runs", "bytes_fetched", "staging_seconds"):
                        mine, seeds = getattr(ours, metric), getattr(theirs, metric) if theirs else None
                        if metric == "staging_seconds":
                            mine, seeds = _round(mine), _round(seeds)
                        rows.append(row(objects, count, size_label(nx, ny), staging.name, metric, seeds, mine))
                shutil.rmtree(work / "runs", ignore_errors=True)
    finally:
        s3.stop()
    return rows


def schedule_rows(scripts: Path, work: Path, quick: bool) -> list[dict]:
    """schedule.sh's wall and CPU seconds on the small and the large count of messages, in one file
    and in one file each; the large row holds the small figure in "seed" and the growth as "ratio"."""
    small, large = (100, 1000) if quick else (1000, 10000)
    timeout = 120.0 if quick else SCHEDULE_TIMEOUT
    rows = []
    for one_file, form in ((True, "in one file"), (False, "one file each")):
        progress(f"schedule.sh --dry-run on {small} and {large} messages {form}, in turn, best of five each "
                 f"(timeout {timeout:.0f} s)")
        times = schedule_seconds(scripts, work / "dry", (small, large), timeout, one_file=one_file)
        for count in (small, large):
            measured = times[count]
            progress(f"  {count}: {'not measured: timed out' if measured is None else f'{measured.wall:.1f} s, {measured.cpu:.1f} s CPU'}")
        for metric, field in (("schedule_seconds", "wall"), ("schedule_cpu_seconds", "cpu")):
            few, many = (getattr(times[n], field) if times[n] else None for n in (small, large))
            late = f"not measured: over {timeout:.0f} s"
            rows.append(row(small, None, None, None, metric, None, _round(few),
                            note=f"messages {form}" if few is not None else late))
            rows.append(row(large, None, None, None, metric, _round(few), _round(many),
                            ratio=round(many / few, 2) if few and many else None,
                            note=f"messages {form}" if many is not None else late))
    return rows


def build_rows(work: Path) -> tuple[list[dict], dict[str, Path]]:
    env_cold = {**os.environ, "LTSFLOW_NO_CACHE": "1"}
    ltsflow = Path(sys.executable).parent / "ltsflow"

    def timed(env: dict[str, str], out: Path) -> float:
        start = time.perf_counter()
        subprocess.run([str(ltsflow), "build", str(SPEC), "-o", str(out)], env=env, check=True, capture_output=True)
        return time.perf_counter() - start

    progress("ltsflow build: cold (LTSFLOW_NO_CACHE=1) and warm, best of three each")
    cold = min(timed(env_cold, work / "build-cold") for _ in range(3))
    warm = min(timed(dict(os.environ), work / "build-warm") for _ in range(3))
    progress(f"  cold {cold:.2f} s, warm {warm:.2f} s")
    scripts = {}
    for staging in STAGINGS:
        scripts[staging.name] = work / f"scripts-{staging.name}"
        build(staging.spec, scripts[staging.name])
    return [row(None, None, None, None, "build_seconds_cold", None, round(cold, 3)),
            row(None, None, None, None, "build_seconds_warm", None, round(warm, 3))], scripts


def slurm_rows(work: Path) -> list[dict]:
    from tests.bench.real_slurm import measure_real_slurm

    objects = 50
    s3 = S3Server()
    rows = []
    try:
        s3.start(work / "s3-slurm")
        image = make_images(work, 1, *SDSS, "slurm-frame")[0]
        for label, seed, ours in measure_real_slurm(s3, image, objects):
            metric = "end_to_end_seconds_" + ("federation" if "federation" in label else "one_cluster") + (
                "_relay" if "relay" in label else "")
            rows.append(row(objects, 1, size_label(*SDSS), "full", metric, _round(seed), _round(ours),
                            note=None if seed is not None and ours is not None else "a run did not finish in time"))
    finally:
        s3.stop()
    return rows


# Metrics with nothing of the seed's to compare (the large schedule rows hold the small figure as "seed").
SEEDLESS_METRICS = ("schedule_seconds", "schedule_cpu_seconds", "build_seconds_cold", "build_seconds_warm")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def table(rows: list[dict]) -> str:
    def cell(value: object, metric: str) -> str:
        if value is None:
            return "-"
        if metric == "bytes_fetched":
            return f"{value / 1e6:.1f} MB"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    header = ("objects", "images", "image size", "staging", "metric", "seed", "ltsflow", "ratio", "note")
    lines = [header]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:g}x"
        ltsflow = cell(r["ltsflow"], r["metric"]) if r["ltsflow"] is not None else "not measured"
        seed = cell(r["seed"], r["metric"])
        if r["metric"] not in SEEDLESS_METRICS and r["seed"] is None:
            seed = "not measured"
        lines.append((cell(r["objects"], ""), cell(r["images"], ""), r["image_size"] or "-", r["staging"] or "-",
                      r["metric"], seed, ltsflow, ratio, r.get("note", "")))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1",
                        help="only the small cases, no real Slurm (also BENCH_QUICK=1)")
    parser.add_argument("--parts", default="build,shim,schedule,slurm",
                        help="comma-separated subset of build,shim,schedule,slurm")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench.json")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if args.quick:
        parts.discard("slurm")
    rows: list[dict] = []
    failed = []
    work = Path(tempfile.mkdtemp(prefix="ltsflow-bench-"))
    try:
        build_part, scripts = build_rows(work)
        if "build" in parts:
            rows += build_part
        runs = {"shim": lambda: shim_rows(scripts, work, args.quick),
                "schedule": lambda: schedule_rows(scripts["full"], work, args.quick),
                "slurm": lambda: slurm_rows(work)}
        for name, run in runs.items():
            if name in parts:
                try:  # a part that fails writes no row, and the others still run
                    rows += run()
                except Exception:  # noqa: BLE001 - reported, and the exit status says so
                    progress(f"the {name} part failed, its rows are not written:\n{traceback.format_exc()}")
                    failed.append(name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    progress(f"wrote {args.out}" + (f"; FAILED parts: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
