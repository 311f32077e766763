"""Shared helpers of the benchmarks: locating shared/ data, reading the published olmix swarm, CPU timing."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from olmix_core.errors import DataError
from olmix_core.fit.tables import SwarmTable, load_tables


def shared_dir(name: str, env: str) -> Path:
    """`$env`, else the first `shared/benchmarks/<name>` found walking up from this file (worktrees included)."""
    if os.environ.get(env):
        return Path(os.environ[env])
    for parent in Path(__file__).resolve().parents:
        for cand in (parent / "shared" / "benchmarks" / name, parent.parent / "shared" / "benchmarks" / name):
            if cand.is_dir():
                return cand
    return Path("../shared/benchmarks") / name


def load_published(data: Path) -> SwarmTable:
    """The published ratios.csv / metrics.csv as they are: the project's reader when it takes the leading unnamed
    pandas index column, else pandas with index_col=0 and the name/index columns dropped."""
    try:
        return load_tables(data / "ratios.csv", data / "metrics.csv")
    except DataError:
        pass
    r = pd.read_csv(data / "ratios.csv", index_col=0).drop(columns=["name", "index"], errors="ignore")
    m = pd.read_csv(data / "metrics.csv", index_col=0).drop(columns=["name", "index"], errors="ignore")
    m = m.set_index("run").loc[r["run"]]
    domains = [c for c in r.columns if c != "run"]
    return SwarmTable(
        [str(x) for x in r["run"]], None, "run", domains, list(m.columns), r[domains].to_numpy(float), m.to_numpy(float)
    )


def subset(t: SwarmTable, idx: np.ndarray) -> SwarmTable:
    return SwarmTable([t.ids[i] for i in idx], None, t.id_column, t.domains, t.metrics, t.X[idx], t.Y[idx])


class Clock:
    wall = 0.0
    cpu = 0.0


def _shutdown_workers() -> None:
    try:
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    except Exception:  # noqa: BLE001 - timing only
        pass


@contextmanager
def clock() -> Iterator[Clock]:
    """Wall seconds and CPU (user) seconds of this process and of worker processes that ended inside the block
    (joblib's reusable workers are shut down at its end so that their time is counted)."""
    c = Clock()
    _shutdown_workers()  # workers left from earlier work would count their CPU here when they end
    w0 = time.perf_counter()
    s0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    k0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    try:
        yield c
    finally:
        _shutdown_workers()
        c.wall = time.perf_counter() - w0
        c.cpu = (
            resource.getrusage(resource.RUSAGE_SELF).ru_utime
            - s0
            + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
            - k0
        )


def load_average() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"
