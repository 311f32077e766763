"""Launcher test helpers: a small config with known token counts and the stand-in trainer's command."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from olmix_core.config import ExperimentConfig
from tests.builders import experiment_config

FAKE_TRAINER = [sys.executable, str(Path(__file__).parents[1] / "fakes" / "trainer.py")]


def launch_config(tmp_path: Path, **overrides) -> ExperimentConfig:
    training = {"threads_per_run": 1, **overrides.pop("training", {})}
    return experiment_config(overrides.pop("storage_root", tmp_path / "store"), **{"variants": 3, **overrides, "training": training})


def wait_supervisor_exit(launcher, timeout_s: float = 30.0) -> None:
    """Wait for the group's supervisor (started by this launcher) to exit, so the next one sees a fresh environment."""
    deadline = time.monotonic() + timeout_s
    while launcher.supervisor_alive():
        assert time.monotonic() < deadline, "supervisor did not exit"
        time.sleep(0.1)
    if launcher.supervisor is not None:
        launcher.supervisor.wait(timeout=timeout_s)


@pytest.fixture
def fake_env(monkeypatch):
    """Fast stand-in training by default; tests override FAKE_TRAIN_SECONDS / FAKE_TRAIN_FAIL."""
    monkeypatch.setenv("FAKE_TRAIN_SECONDS", "0.3")
    monkeypatch.delenv("FAKE_TRAIN_FAIL", raising=False)
    return monkeypatch
