"""Small synthetic swarms (known law) written as olmix- and RegMix-format CSVs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from olmix_core.fit.synthetic import make_law, make_swarm, write_swarm

DOMAINS = ["web:news", "web:blogs", "code", "wiki:science", "books"]
METRICS = ["loss/web", "loss/code", "acc:qa"]


@pytest.fixture(scope="session")
def law():
    return make_law(len(DOMAINS), len(METRICS), seed=3)


@pytest.fixture(scope="session")
def prior():
    return np.array([0.3, 0.2, 0.2, 0.2, 0.1])


@pytest.fixture(scope="session")
def swarm(law, prior):
    return make_swarm(law, 80, prior, seed=3)


@pytest.fixture
def swarm_files(tmp_path, swarm):
    """(ratios.csv, metrics.csv, priors.json) in the olmix layout; domain names contain ':'."""
    X, Y = swarm
    r, m = tmp_path / "ratios.csv", tmp_path / "metrics.csv"
    write_swarm(X, Y, DOMAINS, METRICS, str(r), str(m))
    pri = tmp_path / "priors.json"
    pri.write_text(
        json.dumps(
            {
                "relative_sizes": dict(zip(DOMAINS, [0.3, 0.2, 0.2, 0.2, 0.1])),
                "token_counts": dict(zip(DOMAINS, [3e9, 2e9, 2e9, 2e9, 1e9])),
            }
        )
    )
    return r, m, pri


@pytest.fixture
def regmix_files(tmp_path, swarm):
    """The same swarm in RegMix's layout (index, then columns; metric columns named metric/...)."""
    X, Y = swarm
    idx = np.arange(1, len(X) + 1)
    r, m = tmp_path / "train_mixture.csv", tmp_path / "train_loss.csv"
    pd.DataFrame({"index": idx, **{f"train_{d}": X[:, i] for i, d in enumerate(DOMAINS)}}).to_csv(r, index=False)
    pd.DataFrame({"index": idx, **{f"metric/{k}": Y[:, j] for j, k in enumerate(METRICS)}}).to_csv(m, index=False)
    return r, m


def _shared_benchmarks() -> Path:
    """`shared/benchmarks/` as published: $OLMIX_SHARED_BENCHMARKS, else the first `shared/benchmarks` found
    walking up from the repo root (the repo's sibling `../shared` in CI, `/work/shared` from a worktree)."""
    env = os.environ.get("OLMIX_SHARED_BENCHMARKS")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "benchmarks" / "olmix").is_dir():
            return parent / "shared" / "benchmarks"
    raise FileNotFoundError("no shared/benchmarks/ above the repo; set OLMIX_SHARED_BENCHMARKS")


@pytest.fixture(scope="session")
def published() -> Path:
    """The published benchmark folder (read-only): olmix/ (Ai2's DCLM swarm and fit configs), regmix/."""
    return _shared_benchmarks()
