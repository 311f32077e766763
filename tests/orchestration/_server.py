"""A real Prefect server and `make serve` as a user starts them: `prefect server start` on a free port (with
PREFECT_SERVER_API_PORT, so its UI asks the API on that port) and `python -m deployments.serve` against it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEPLOYMENTS = ("olmix/swarm", "olmix-refit/refit", "olmix-watch-evals/watch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return None


def post_json(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Served:
    """A running server + serve process: the API URL, the UI's base URL, the environment for clients, the logs."""

    api: str
    ui: str
    env: dict[str, str]
    folder: Path

    @property
    def server_log(self) -> str:
        return (self.folder / "server.log").read_text()

    @property
    def serve_log(self) -> str:
        return (self.folder / "serve.log").read_text()

    def deployment(self, name: str) -> dict[str, Any] | None:
        found = get_json(f"{self.api}/deployments/name/{name}")
        return found if found and "id" in found else None

    def flow_runs(self, **flow_runs_filter: Any) -> list[dict[str, Any]]:
        return post_json(f"{self.api}/flow_runs/filter", {"flow_runs": flow_runs_filter})


@contextlib.contextmanager
def prefect_served(folder: Path, timeout_s: float = 180) -> Iterator[Served]:
    """`prefect server start` (SQLite and Prefect's home under `folder`) + `python -m deployments.serve`; yields
    once the server answers and every deployment is registered. Both are stopped afterwards."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(folder / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false", "PREFECT_LOGGING_LEVEL": "INFO",
           "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    server_env = {**env, "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port)}  # what `make server` sets
    client_env = {**env, "PREFECT_API_URL": api}
    logs = {name: open(folder / f"{name}.log", "w") for name in ("server", "serve")}
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start"], cwd=folder, env=server_env,
                              stdout=logs["server"], stderr=subprocess.STDOUT, start_new_session=True)
    serve = None
    try:
        deadline = time.monotonic() + timeout_s
        while get_json(f"{api}/health") is None:
            assert server.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()[-3000:]
            time.sleep(1)
        served = Served(api=api, ui=f"http://127.0.0.1:{port}", env=client_env, folder=folder)
        serve = subprocess.Popen([sys.executable, "-m", "deployments.serve"], cwd=ROOT, env=client_env,
                                 stdout=logs["serve"], stderr=subprocess.STDOUT, start_new_session=True)
        while any(served.deployment(d) is None for d in DEPLOYMENTS):
            assert serve.poll() is None and time.monotonic() < deadline, served.serve_log[-3000:]
            time.sleep(1)
        yield served
    finally:
        for proc in (serve, server):
            if proc is not None:
                stop(proc)
        for f in logs.values():
            f.close()
