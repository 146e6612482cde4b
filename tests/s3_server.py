"""A local S3-compatible server for the object-storage tests: moto's server mode (`moto_server`),
on a free port of this machine, reached through s3fs like any S3 endpoint.

Credentials and the endpoint reach s3fs, the engine's workers and `thresher` subprocesses the
standard way, through AWS_* environment variables; the secret is a recognisable string so tests can
check it is written nowhere."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SECRET = "thresher-test-secret-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def moto_server(cache: Path) -> Iterator[str]:
    """Start `moto_server` and point the AWS environment at it; yield its endpoint URL."""
    command = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [command, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
    environment = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "THRESHER_CACHE": str(cache),
    }
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # fsspec keeps instances: one made for an earlier server is stale
    try:
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        process.terminate()
        process.wait()


def s3_filesystem():
    """A fresh s3fs filesystem on the server (no listing cache)."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)
