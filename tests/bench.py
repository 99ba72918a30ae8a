"""make bench: the product's targets, measured in one run and reported as ratios.

- shellcheck findings (all optional checks): the original scripts vs the generated ones;
- jobs per run of K objects on F images: the original (4 per object) vs schedule.sh;
- bytes fetched per run: the original (each object fetches its image) vs schedule.sh;
- ltsflow build of the default spec: a cold build (no shellcheck cache) and a warm one.

Job and byte counts come from schedule.sh --dry-run: what it would submit and fetch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT.parent / "shared" / "seed"
SPEC = ROOT / "fixtures" / "specs" / "lts-template.yaml"
BIN = Path(sys.executable).parent
IMAGE_BYTES = 4096 * 4096 * 4  # a 4096x4096 float32 image


def shellcheck_findings(paths: list[Path]) -> int:
    result = subprocess.run([str(BIN / "shellcheck"), "--enable=all", "--format=json1", *map(str, paths)],
                            capture_output=True, text=True, check=False)
    return len(json.loads(result.stdout)["comments"])


def build(out: Path, cold: bool) -> float:
    env = {**os.environ, **({"LTSFLOW_NO_CACHE": "1"} if cold else {})}
    start = time.perf_counter()
    subprocess.run([str(BIN / "ltsflow"), "build", str(SPEC), "-o", str(out)], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - start


def dry_run(out: Path, work: Path, objects: int, images: int) -> tuple[int, int]:
    """(sbatch commands, distinct images fetched) for `objects` objects spread over `images` images."""
    inputs = []
    for index in range(objects):
        message = work / f"m{index}.json"
        message.write_text(json.dumps({"file": f"bucket/data/image{index % images}.fits", "ra": "10.5",
                                       "dec": "-5", "label": f"object{index}"}))
        inputs.append(str(message))
    result = subprocess.run(["bash", str(out / "schedule.sh"), "--dry-run", *inputs], capture_output=True, text=True,
                            check=True, env={**os.environ, "MYSCRATCH": "/scratch"})
    lines = result.stdout.splitlines()
    return (sum(line.startswith("sbatch ") for line in lines), sum(line.startswith("# sync_in.list") for line in lines))


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        out = work / "out"
        cold = build(out, cold=True)
        warm = min(build(out, cold=False) for _ in range(3))
        seed_findings = shellcheck_findings(sorted(SEED.glob("*.sh")))
        ours = shellcheck_findings(sorted(out.glob("*.sh")))
        rows.append(("shellcheck findings (-o all)", f"{seed_findings}", f"{ours}", "-"))
        for objects, images in ((1, 1), (50, 1), (50, 5)):
            jobs, fetched = dry_run(out, work, objects, images)
            seed_jobs, seed_fetched = 4 * objects, objects
            rows.append((f"jobs, K={objects} on F={images}", str(seed_jobs), str(jobs), f"{seed_jobs / jobs:.1f}x fewer"))
            rows.append((f"bytes fetched, K={objects} on F={images}", f"{seed_fetched * IMAGE_BYTES / 1e6:.0f} MB",
                         f"{fetched * IMAGE_BYTES / 1e6:.0f} MB", f"{seed_fetched / fetched:.1f}x fewer"))
        rows.append(("ltsflow build (cold, no cache)", "-", f"{cold:.2f} s", "-"))
        rows.append(("ltsflow build (warm)", "-", f"{warm:.2f} s", f"{cold / warm:.1f}x faster than cold"))
    widths = [max(len(row[i]) for row in rows + [("measure", "original", "ltsflow", "ratio")]) for i in range(4)]
    for row in [("measure", "original", "ltsflow", "ratio"), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
