"""Shared fixtures: a real S3 endpoint (moto's server mode on 127.0.0.1), small configs."""

from __future__ import annotations

import socket
import uuid

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 for the whole session; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_endpoint(s3_server, monkeypatch):
    """A fresh bucket on the local S3 server; env set so s3fs (via olmix_core.store) talks to it.

    Yields `s3://{bucket}`."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"olmix-test-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield f"s3://{bucket}"
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def token_files(tmp_path):
    """Three small raw uint32 token files in two folders; returns the folder."""
    import numpy as np

    root = tmp_path / "data"
    for name, n in [("a/part-0.bin", 1000), ("a/part-1.bin", 500), ("b/x.bin", 3000)]:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        np.arange(n, dtype=np.uint32).tofile(p)
    return root


def minimal_config(**overrides) -> dict:
    cfg = {
        "name": "test-swarm",
        "variants": 8,
        "max_tokens": 1_000_000,
        "sources": [
            {"name": "wiki", "paths": ["/data/wiki/*.bin"]},
            {"name": "code", "paths": ["/data/code/*.bin"]},
            {"name": "web", "topics": [{"name": "science", "paths": ["/data/web/sci/*.bin"]}, {"name": "sports", "paths": ["/data/web/sp/*.bin"]}]},
        ],
        "priors": {"token_counts": {"wiki": 2_000_000, "code": 1_000_000, "web:science": 3_000_000, "web:sports": 500_000}},
    }
    cfg.update(overrides)
    return cfg




class S3Process:
    """A moto S3 server in its own process, so a test can stop it (SIGKILL) or pause it (SIGSTOP) mid-run."""

    def __init__(self) -> None:
        import subprocess
        import sys
        import time
        from pathlib import Path

        import boto3

        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        exe = str(Path(sys.executable).with_name("moto_server"))
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.bucket = f"olmix-fault-{uuid.uuid4().hex[:10]}"
        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket=self.bucket)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def pause(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.resume()
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def s3_process(monkeypatch):
    """A fresh S3 endpoint in a separate process (see S3Process), env set for s3fs and for subprocesses."""
    server = S3Process()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": server.endpoint}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield server
    server.kill()
    s3fs.S3FileSystem.clear_instance_cache()
