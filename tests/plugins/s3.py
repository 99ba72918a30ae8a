"""Fixtures for a real S3 server (SeaweedFS) on loopback; see tests/s3server.py.

- ``s3_server`` (session): one S3Server, started on first use and always stopped at the end of
  the session, whatever happened in between. A start failure is an error, never a skip.
- ``s3_bucket`` (function): the name of a fresh, empty bucket on ``s3_server``, unique to the
  test; the bucket and its contents are deleted afterwards.
"""

from __future__ import annotations

import re
import secrets

import pytest

from tests.s3server import DEFAULT_REMOTE, S3Server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    server = S3Server()
    try:
        server.start(tmp_path_factory.mktemp("s3server"))
        yield server
    finally:
        server.stop()


def bucket_name(hint: str = "") -> str:
    """A valid, unique S3 bucket name (3-63 chars of [a-z0-9-], alphanumeric at both ends)."""
    slug = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{secrets.token_hex(4)}" if slug else f"t-{secrets.token_hex(6)}"


@pytest.fixture
def s3_bucket(s3_server: S3Server, request: pytest.FixtureRequest):
    name = bucket_name(request.node.name)
    s3_server.make_bucket(name)
    yield name
    s3_server.rclone("purge", f"{DEFAULT_REMOTE}:{name}", check=False)
