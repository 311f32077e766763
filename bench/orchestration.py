"""Orchestration overhead of the `olmix` flow: a 256-variant swarm whose runs complete over time (in-process
launcher: simulated durations, 5 % preempted once, metrics from a known law), then pull, fit and propose (no verify
run, so every launcher status() call counted belongs to the polling task).

Prints, per swarm size:
- wall time of the flow run, and what it is made of: simulated training (first submission to last finish),
  time inside olmix_core outside that window (sampling, specs, submission, pull, fit, propose), and the rest =
  orchestration overhead (Prefect tasks, API calls, artifacts, cache records, poll latency);
- launcher status() calls per poll round (counted by the launcher, rounds reported by the polling task) and
  storage reads per status() call, for 64 and 256 runs (both must stay flat: batched, not per run);
- a re-run of the same group (every stage from the cache).

Targets: overhead ≤ 30 s for 256 runs on 2 cores; status calls per round O(1) in the number of runs.
Uses the Prefect API in PREFECT_API_URL, else a temporary local server (prefect_test_harness).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
if "PREFECT_API_URL" not in os.environ:
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="olmix-bench-prefect-"))

import olmix_core.fit.run  # noqa: E402
from olmix_core import stages  # noqa: E402
from olmix_core.launch import inprocess  # noqa: E402
from olmix_core.launch.inprocess import InProcessLauncher  # noqa: E402
from olmix_core.store import SwarmStore  # noqa: E402

LEAVES = 8
OPTIONS = {"run_s": 6.0, "jitter": 0.8, "preempt_fraction": 0.05}
TARGET_OVERHEAD_S = 30.0


class CoreTimer:
    """When the tasks were inside olmix_core functions (outermost calls only, as wall-clock intervals)."""

    def __init__(self) -> None:
        self.intervals: list[tuple[float, float]] = []
        self.depth = 0

    def wrap(self, fn: Any) -> Any:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.depth += 1
            t0 = time.time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.intervals.append((t0, time.time()))

        return timed

    @contextlib.contextmanager
    def installed(self) -> Iterator["CoreTimer"]:
        steps = ("store_priors", "store_mixtures", "store_run_specs", "store_config", "record_swarm")
        targets = [(stages.setup, n) for n in steps] + [
            (stages, "emit_eval_script"), (stages.runs, "submit_swarm"),
            (stages.results, "pull_results"), (stages.results, "tables_digest"),
            (olmix_core.fit.run, "run_fit"), (olmix_core.fit.run, "propose_from_fit"),
            (InProcessLauncher, "submit"), (InProcessLauncher, "status"), (InProcessLauncher, "resubmit"),
        ]
        saved = [(obj, name, obj.__dict__[name]) for obj, name in targets]
        try:
            for obj, name, fn in saved:
                setattr(obj, name, classmethod(self.wrap(fn.__func__)) if isinstance(fn, classmethod) else self.wrap(fn))
            yield self
        finally:
            for obj, name, fn in saved:
                setattr(obj, name, fn)


def config(root: str, variants: int) -> dict[str, Any]:
    sources = [{"name": f"s{i}", "paths": [f"/data/s{i}/*.bin"]} for i in range(LEAVES)]
    return {
        "name": "bench", "variants": variants, "max_tokens": 1_000_000, "sources": sources, "storage_root": root,
        "priors": {"token_counts": {f"s{i}": 1_000_000 * (i + 1) for i in range(LEAVES)}},
        "fit": {"regression_type": "log_linear", "objective": "eval/lm/target/CE loss"},
    }


def training_window(swarm: SwarmStore, runs: list[str]) -> tuple[float, float]:
    """When simulated training was going on: first submission to the last finish (of the last attempts)."""
    statuses = swarm.read_run_files("status.json")
    first = min(e["time"] for e in inprocess.submission_log(swarm) if e["run"] in runs)
    return first, max(float(statuses[r]["extra"]["finish_at"]) for r in runs)


def union_length(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def run_one(variants: int, root: str) -> dict[str, Any]:
    from flows.swarm import swarm

    gid = f"{variants:08x}"
    timer = CoreTimer()
    with timer.installed():
        t0 = time.time()
        state = swarm(config=config(root, variants), group_id=gid, launcher="inprocess", poll_interval=0.5,
                      launcher_options=OPTIONS, verify=False, return_state=True)
        t_end = time.time()
    if not state.is_completed():
        raise SystemExit(f"swarm of {variants} ended {state.type.value}: {state.message}")
    out = state.result()
    swarm_store = SwarmStore.open(root, "bench", gid)
    runs = [f"bench-{gid}-{i:04d}" for i in range(variants)]
    window = training_window(swarm_store, runs)
    core = [(max(a, t0), min(b, t_end)) for a, b in timer.intervals]
    busy = union_length([window, *core])  # training or olmix_core: the rest is orchestration
    stats = inprocess.CALLS[gid]
    t1 = time.perf_counter()
    again = swarm(config=config(root, variants), group_id=gid, launcher="inprocess", poll_interval=0.5,
                  launcher_options=OPTIONS, verify=False)
    rerun = time.perf_counter() - t1
    assert again["proposal"] == out["proposal"]
    return {
        "variants": variants, "wall": t_end - t0, "training": window[1] - window[0],
        "core": busy - (window[1] - window[0]),  # olmix_core time outside the training window
        "overhead": (t_end - t0) - busy, "status_calls": stats["status"], "rounds": out["poll"]["rounds"],
        "max_status_reads": stats["max_status_reads"],
        "preempted": sum(1 for e in inprocess.submission_log(swarm_store) if e["attempt"] > 1), "rerun": rerun,
        "predicted": out["predicted_objective"], "prior": out["prior_objective"],
    }


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    ctx = contextlib.nullcontext()
    if "PREFECT_API_URL" not in os.environ:
        from prefect.testing.utilities import prefect_test_harness

        ctx = prefect_test_harness(server_startup_timeout=120)
    rows = []
    with ctx, tempfile.TemporaryDirectory(prefix="olmix-bench-") as root:
        for variants in (64, 256):
            rows.append(run_one(variants, root))
    print(f"olmix flow orchestration, in-process launcher ({OPTIONS['run_s']:g} s ± {OPTIONS['jitter']:.0%} per run, "
          f"{OPTIONS['preempt_fraction']:.0%} preempted once), {LEAVES} leaves, {os.cpu_count()} cores")
    print(f"{'runs':>5} {'wall s':>7} {'training s':>10} {'olmix_core s':>12} {'overhead s':>10} {'rounds':>6} "
          f"{'status calls':>12} {'per round':>9} {'max reads/call':>14} {'resubmits':>9} {'re-run s':>8}")
    for r in rows:
        print(f"{r['variants']:>5} {r['wall']:>7.1f} {r['training']:>10.1f} {r['core']:>12.1f} {r['overhead']:>10.1f} {r['rounds']:>6d} "
              f"{r['status_calls']:>12d} {r['status_calls'] / r['rounds']:>9.2f} {r['max_status_reads']:>14d} {r['preempted']:>9d} {r['rerun']:>8.1f}")
    big = rows[-1]
    print(f"256-run proposal: predicted objective {big['predicted']:.4f} (at the prior {big['prior']:.4f})")
    ok_overhead = big["overhead"] <= TARGET_OVERHEAD_S
    ok_flat = all(r["status_calls"] == r["rounds"] for r in rows) and rows[0]["max_status_reads"] == rows[-1]["max_status_reads"]
    print(f"overhead for {big['variants']} runs: {big['overhead']:.1f} s (target <= {TARGET_OVERHEAD_S:.0f} s): {'ok' if ok_overhead else 'MISSED'}")
    print(f"per poll round: {rows[0]['status_calls'] / rows[0]['rounds']:.2f} / {big['status_calls'] / big['rounds']:.2f} status() calls, at most "
          f"{rows[0]['max_status_reads']} / {big['max_status_reads']} storage reads each, for {rows[0]['variants']} / {big['variants']} runs: "
          f"{'O(1)' if ok_flat else 'GROWS'}")
    return 0 if ok_overhead and ok_flat else 1


if __name__ == "__main__":
    sys.exit(main())
