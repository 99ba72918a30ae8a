"""The bench's own measuring code, run once on a tiny case: the counts it returns are exact.

No timing is asserted: only what the shims recorded, what the counting proxy saw go over the wire and
what the bucket holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.proxy import CountingProxy
from tests.bench.shimmed import Bench, make_images, measure_ltsflow, measure_seed, objects_on
from tests.s3server import S3Server

pytestmark = pytest.mark.s3


@pytest.fixture
def proxy(s3_server: S3Server):
    with CountingProxy(s3_server.endpoint) as counting:
        yield counting


def test_the_proxy_counts_exactly_the_object_bytes_received_full_and_ranged(s3_server: S3Server, s3_bucket: str,
                                                                            proxy: CountingProxy,
                                                                            tmp_path: Path) -> None:
    data = bytes(range(256)) * 4099  # not a multiple of the proxy's 1 MiB piece
    s3_server.put_bytes(data, f"{s3_bucket}/dir/image.fits")
    through = {"RCLONE_CONFIG_CEPH_ENDPOINT": proxy.endpoint}
    before = proxy.tally()
    ranged = s3_server.rclone("cat", "--offset", "1000", "--count", "5000", f"ceph:{s3_bucket}/dir/image.fits",
                              env_extra=through, text=False)
    assert ranged.stdout == data[1000:6000]
    assert (proxy.tally() - before).per_key == {f"{s3_bucket}/dir/image.fits": 5000}
    s3_server.rclone("copy", f"ceph:{s3_bucket}/dir", tmp_path / "got", env_extra=through)
    assert (tmp_path / "got" / "image.fits").read_bytes() == data
    wire = proxy.tally() - before
    assert (wire.object_bytes, wire.object_gets) == (5000 + len(data), 2)
    s3_server.rclone("copyto", tmp_path / "got" / "image.fits", f"ceph:{s3_bucket}/up.fits", env_extra=through)
    assert (proxy.tally() - before).object_bytes == 5000 + len(data)  # an upload is not a fetch
    assert s3_server.get_bytes(f"{s3_bucket}/up.fits") == data


def test_seed_strategy_and_batched_run_are_counted_exactly(scripts_dir: Path, s3_server: S3Server,
                                                           proxy: CountingProxy, tmp_path: Path) -> None:
    images = make_images(tmp_path, 1, 120, 90, "tiny")
    bench = Bench(scripts_dir, s3_server, proxy, tmp_path / "runs")
    seed = measure_seed(bench, images, 2, parallel=2)
    ours = measure_ltsflow(bench, images, 2)
    assert (seed.sbatch_calls, seed.tool_runs, seed.crops) == (8, 4, 2)
    assert (seed.bytes_fetched, seed.fetches) == (2 * images[0].size, 2)
    assert (ours.sbatch_calls, ours.crops) == (4, 2)
    assert ours.tool_runs == 2  # the tools run once per image
    assert (ours.bytes_fetched, ours.fetches) == (images[0].size, 1)
    assert list((tmp_path / "runs").iterdir()) == []  # every run's scratch was removed
    assert [b for b in s3_server.buckets() if b.startswith("bench-")] == []  # and every bucket it made


def test_a_ranged_run_is_counted_exactly(built_spec, s3_server: S3Server, proxy: CountingProxy,
                                         tmp_path: Path) -> None:
    images = make_images(tmp_path, 1, 400, 300, "tall")
    ours = measure_ltsflow(Bench(built_spec("ranged"), s3_server, proxy, tmp_path / "runs"), images, 2)
    assert (ours.sbatch_calls, ours.crops) == (5, 2)
    assert ours.tool_runs == 2  # one sky2xy and one astcrop, however many bands of rows
    # the header (8 blocks asked for) and at most two bands of 21 rows of 400 float32 pixels
    assert 0 < ours.bytes_fetched <= 8 * 2880 + 2 * 21 * 400 * 4 < images[0].size


def test_objects_are_on_their_image_and_labelled_distinctly(tmp_path: Path) -> None:
    images = make_images(tmp_path, 2, 200, 150, "wcs")
    messages = objects_on(images, 6, "b")
    assert [m["label"] for m in messages] == [f"o{i}" for i in range(6)]
    assert [m["file"] for m in messages] == [f"b/{images[i % 2].key}" for i in range(6)]
    for index, message in enumerate(messages):
        image = images[index % 2]
        x, y = image.wcs.world_to_pixel_values(float(message["ra"]), float(message["dec"]))
        assert 49 <= x <= image.nx - 49 and 49 <= y <= image.ny - 49
