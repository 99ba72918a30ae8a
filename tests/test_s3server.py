"""The S3 test server (SeaweedFS) and its helpers behave like the S3 store sync.sh talks to."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from pathlib import Path

import pytest

from tests.plugins.s3 import bucket_name
from tests.s3server import RCLONE, VENV_BIN, WEED, S3Server, S3ServerError

pytestmark = pytest.mark.s3

# Keys a pipeline might produce, and keys that would break naive shell quoting.
AWKWARD_KEYS = {
    "plain.fits": b"SIMPLE  =                    T",
    "dir with spaces/file name.fits": b"spaces",
    "quote's \"double\".txt": b"quotes",
    "$(touch pwned)/`id`;rm -rf x.fits": b"\x00\x01binary\xff\xfe" * 100,
    "semi;colon&amp|pipe>gt<lt.txt": b"metachars",
    "ünïcödé/データ/ファイル.fits": "unicode ✓".encode(),
    "#hash first.txt": b"hash",
    "a/b/c/deep.fits": b"deep",
    "empty.txt": b"",
}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_tools_come_from_the_venv(s3_server):
    assert RCLONE == VENV_BIN / "rclone" and WEED == VENV_BIN / "weed"
    r = s3_server.rclone("version")
    assert re.match(r"rclone v1\.(7[0-9]|[89][0-9])", r.stdout), r.stdout
    env = s3_server.env()
    assert "AWS_CA_BUNDLE" not in env
    assert Path(env["RCLONE_CONFIG"]).read_text() == ""
    assert env["PATH"].split(os.pathsep)[0] == str(VENV_BIN)


def test_rclone_env_is_exactly_the_five_variables(s3_server):
    env = s3_server.rclone_env("ceph")
    assert env == {
        "RCLONE_CONFIG_CEPH_TYPE": "s3",
        "RCLONE_CONFIG_CEPH_PROVIDER": "Other",
        "RCLONE_CONFIG_CEPH_ENDPOINT": s3_server.endpoint,
        "RCLONE_CONFIG_CEPH_ACCESS_KEY_ID": s3_server.access_key,
        "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY": s3_server.secret_key,
    }
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", s3_server.endpoint)
    assert s3_server.access_key != s3_server.secret_key
    assert len(s3_server.secret_key) >= 32
    # Another remote name works too, alongside the default one.
    other = s3_server.rclone_env("lts2")
    assert set(other) == {k.replace("CEPH", "LTS2") for k in env}
    r = s3_server.rclone("lsf", "lts2:", env_extra=other)
    assert r.returncode == 0


def test_server_listens_only_on_loopback(s3_server):
    inodes = set()
    fd_dir = Path(f"/proc/{s3_server.pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            if state == "0A" and inode in inodes:  # 0A = LISTEN
                listening.append((table, local))
    assert len(listening) >= 8, listening  # master, volume, filer, s3: http + grpc each
    for table, local in listening:
        addr = local.split(":")[0]
        assert table == "/proc/net/tcp" and addr == "0100007F", (table, local)


def test_round_trip_awkward_keys(s3_server, s3_bucket):
    for key, data in AWKWARD_KEYS.items():
        s3_server.put_bytes(data, f"{s3_bucket}/{key}")
    for key, data in AWKWARD_KEYS.items():
        assert s3_server.get_bytes(f"{s3_bucket}/{key}") == data, key
    assert s3_server.list_objects(s3_bucket) == {k: md5(v) for k, v in AWKWARD_KEYS.items()}
    assert not (Path.cwd() / "pwned").exists()


def test_put_file_and_listing(s3_server, s3_bucket, tmp_path):
    src = tmp_path / "local name with 'quotes'.fits"
    src.write_bytes(b"x" * 70_000)
    s3_server.put(src, f"{s3_bucket}/cutouts/run 1/obj.fits")
    s3_server.put_bytes(b"log", f"{s3_bucket}/logs/run.log")
    assert s3_server.list_objects(s3_bucket) == {
        "cutouts/run 1/obj.fits": md5(b"x" * 70_000),
        "logs/run.log": md5(b"log"),
    }
    assert s3_server.list_objects(s3_bucket, prefix="cutouts/") == {
        "cutouts/run 1/obj.fits": md5(b"x" * 70_000)
    }
    assert s3_bucket in s3_server.buckets()
    everything = s3_server.all_objects()
    assert everything[f"{s3_bucket}/logs/run.log"] == md5(b"log")
    snap = s3_server.snapshot()
    assert snap[f"{s3_bucket}/cutouts/run 1/obj.fits"] == sha256(b"x" * 70_000)
    assert snap[f"{s3_bucket}/logs/run.log"] == sha256(b"log")
    # Overwrite changes the snapshot entry of that object only.
    s3_server.put_bytes(b"log2", f"{s3_bucket}/logs/run.log")
    snap2 = s3_server.snapshot()
    assert snap2.pop(f"{s3_bucket}/logs/run.log") == sha256(b"log2")
    snap.pop(f"{s3_bucket}/logs/run.log")
    assert snap2 == snap


def test_s3_bucket_is_fresh_and_valid(s3_server, s3_bucket):
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", s3_bucket)
    assert s3_server.list_objects(s3_bucket) == {}
    assert bucket_name("Test[x-1] ünï/..") != bucket_name("Test[x-1] ünï/..")
    for hint in ("", "A" * 200, "--", "test_x[param-1]"):
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", bucket_name(hint)), hint


def test_wrong_secret_is_rejected(s3_server, s3_bucket):
    s3_server.put_bytes(b"secret data", f"{s3_bucket}/k")
    wrong = {"RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY": s3_server.secret_key[:-1] + "x"}
    r = s3_server.rclone("lsf", "--retries=1", f"ceph:{s3_bucket}", env_extra=wrong, check=False)
    assert r.returncode == 1, r
    assert "403" in r.stderr and "SignatureDoesNotMatch" in r.stderr
    assert r.stdout == ""
    # A write with the wrong secret fails and stores nothing.
    r = s3_server.rclone(
        "rcat", "--retries=1", f"ceph:{s3_bucket}/evil", input=b"x", env_extra=wrong, check=False
    )
    assert r.returncode != 0 and b"SignatureDoesNotMatch" in r.stderr
    # An unknown access key is refused too.
    r = s3_server.rclone(
        "lsf",
        "--retries=1",
        f"ceph:{s3_bucket}",
        env_extra={"RCLONE_CONFIG_CEPH_ACCESS_KEY_ID": "AKNOSUCHKEY"},
        check=False,
    )
    assert r.returncode == 1 and "InvalidAccessKeyId" in r.stderr
    assert s3_server.list_objects(s3_bucket) == {"k": md5(b"secret data")}


def test_missing_bucket_and_missing_object(s3_server, s3_bucket, tmp_path):
    missing = bucket_name("missing")
    r = s3_server.rclone("lsf", f"ceph:{missing}", check=False)
    assert r.returncode == 3 and "directory not found" in r.stderr
    r = s3_server.rclone("copyto", f"ceph:{missing}/k", tmp_path / "out", check=False)
    assert r.returncode == 3 and not (tmp_path / "out").exists()
    with pytest.raises(S3ServerError, match="exit 3"):
        s3_server.list_objects(missing)
    assert missing not in s3_server.buckets()

    # A missing key in an existing bucket is NOT an error for rclone: copyto and lsf exit 0,
    # and nothing is written. Only --error-on-no-transfer turns it into exit 9.
    r = s3_server.rclone("copyto", f"ceph:{s3_bucket}/nokey", tmp_path / "out", check=False)
    assert r.returncode == 0 and not (tmp_path / "out").exists()
    r = s3_server.rclone("lsf", f"ceph:{s3_bucket}/nokey", check=False)
    assert (r.returncode, r.stdout) == (0, "")
    r = s3_server.rclone(
        "copyto", "--error-on-no-transfer", f"ceph:{s3_bucket}/nokey", tmp_path / "out", check=False
    )
    assert r.returncode == 9 and not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError):
        s3_server.get_bytes(f"{s3_bucket}/nokey")


def test_files_from_raw_copies_exactly_the_listed_keys(s3_server, s3_bucket, tmp_path):
    for key, data in AWKWARD_KEYS.items():
        s3_server.put_bytes(data, f"{s3_bucket}/in/{key}")
    wanted = ["plain.fits", "$(touch pwned)/`id`;rm -rf x.fits", "#hash first.txt",
              "ünïcödé/データ/ファイル.fits"]
    listing = tmp_path / "list"
    listing.write_bytes("".join(k + "\n" for k in wanted).encode())

    # Download: exactly the listed keys arrive, with their content.
    dest = tmp_path / "dest"
    s3_server.rclone("copy", "--files-from-raw", listing, f"ceph:{s3_bucket}/in", dest)
    got = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert got == set(wanted)
    for k in wanted:
        assert (dest / k).read_bytes() == AWKWARD_KEYS[k]

    # Upload: exactly the listed files are stored; every other object is unchanged.
    local = tmp_path / "local"
    for key in AWKWARD_KEYS:
        (local / key).parent.mkdir(parents=True, exist_ok=True)
        (local / key).write_bytes(b"new " + key.encode())
    before = s3_server.snapshot()
    s3_server.rclone("copy", "--files-from-raw", listing, local, f"ceph:{s3_bucket}/out")
    after = s3_server.snapshot()
    added = {k: v for k, v in after.items() if k not in before}
    assert added == {f"{s3_bucket}/out/{k}": sha256(b"new " + k.encode()) for k in wanted}
    assert {k: after[k] for k in before} == before


def test_second_server_starts_and_stop_leaves_no_process(s3_server, tmp_path):
    server = S3Server()
    try:
        server.start(tmp_path / "s3")
        assert server.endpoint != s3_server.endpoint
        assert server.buckets() == []  # the readiness probe cleaned up after itself
        assert (server.access_key, server.secret_key) != (s3_server.access_key, s3_server.secret_key)
        # Credentials of one server are refused by the other.
        other_keys = {
            "RCLONE_CONFIG_CEPH_ACCESS_KEY_ID": s3_server.access_key,
            "RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY": s3_server.secret_key,
        }
        r = server.rclone("lsf", "--retries=1", "ceph:", env_extra=other_keys, check=False)
        assert r.returncode == 1 and "InvalidAccessKeyId" in r.stderr
        server.make_bucket("second")
        server.put_bytes(b"hi", "second/k")
        assert server.snapshot() == {"second/k": sha256(b"hi")}
        assert any((tmp_path / "s3" / "data").iterdir())
        pid, pgid = server.pid, server.pgid
        assert pgid == pid and os.getpgid(pid) == pid != os.getpgid(0)
        port = int(server.endpoint.rsplit(":", 1)[1])
        grpc_ports = [p for name, p in server.ports.items() if name.endswith(".grpc")]
    finally:
        server.stop()  # SIGTERM, then SIGKILL after a short grace: it returns once the group is gone

    assert not Path(f"/proc/{pid}").exists()
    in_group = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getpgid(int(d.name)) == pgid:
                    in_group.append(d.name)
            except (ProcessLookupError, PermissionError):
                pass
    assert in_group == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    for p in grpc_ports:
        assert not list(Path("/tmp").glob(f"seaweedfs-*-grpc-{p}.sock"))
    server.stop()  # idempotent
    # The session server is untouched.
    assert s3_server.proc.poll() is None
    assert json.loads(s3_server.rclone("lsjson", "ceph:").stdout) is not None
