"""The local-tiny swarm end to end on this machine: 8 real olmo-core proxies, pull, fit, propose, verify.

Targets (issue 5), on a 2-core machine: the whole cycle including the verify run in ≤ 10 minutes; the verified
proposal's actual objective at or below the swarm's median. Prints per-run and stage times, peak memory (per run,
and of the whole process tree sampled every 0.5 s), and where the verified proposal ranks among the swarm's runs.

    python bench/local_swarm.py [--variants 8] [--workdir DIR]

Runs in a fresh folder (demo data, store, outputs) so nothing cached from an earlier run is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from olmix_core.config import ExperimentConfig
from olmix_core.launch.local import LocalLauncher
from olmix_core.store import SwarmStore
from olmix_core.swarm import run_swarm

ROOT = Path(__file__).resolve().parents[1]

TARGET_S = 600.0
PAGE = os.sysconf("SC_PAGE_SIZE")


class TreeMemory:
    """Peak summed RSS of this process and all its descendants (supervisor, trainers, their workers), from /proc."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _descendants(os.getpid())
            total = sum(_rss(p) for p in pids)
            if total > self.peak_bytes:
                self.peak_bytes, self.peak_procs = total, len(pids)
            self._stop.wait(self.interval_s)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def bench_config(workdir: Path, variants: int) -> ExperimentConfig:
    """configs/examples/local-tiny.yaml with its demo data and store inside `workdir`."""
    text = (ROOT / "configs/examples/local-tiny.yaml").read_text()
    cfg = yaml.safe_load(text)
    cfg = json.loads(json.dumps(cfg).replace(".olmix/demo-data", str(workdir / "demo-data")))
    cfg.update(variants=variants, storage_root=str(workdir / "store"))
    return ExperimentConfig.from_dict(cfg, "local-tiny (bench)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=8)
    parser.add_argument("--workdir", default=None, help="Folder for data, store and outputs (default: a fresh temp folder).")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="olmix-bench-swarm-")).resolve()
    config = bench_config(workdir, args.variants)
    print(f"local-tiny swarm: {args.variants} variants, {config.target_tokens:,d} tokens per run, workdir {workdir}")

    started = time.perf_counter()
    with TreeMemory() as mem:
        outcome = run_swarm(config, str(workdir / "out"), progress=lambda m: print(f"  [{time.perf_counter() - started:6.1f}s] {m}", flush=True))
    total = time.perf_counter() - started

    swarm = SwarmStore.open(config.storage_root, config.name, outcome.group_id)
    statuses = LocalLauncher(config, swarm).status()
    results = swarm.read_run_files("result.json")
    objective = config.fit.filtering.objective or "eval/lm/target/CE loss"
    print(f"\n{'run':<26} {'purpose':<7} {'state':<9} {'launch s':>8} {'train s':>8} {'steps':>5} {'peak MB':>8} {objective:>24}")
    for name, st in sorted(statuses.items()):
        res = results.get(name, {})
        purpose = res.get("purpose", "swarm")
        value = res.get("metrics", {}).get(objective, float("nan"))
        print(
            f"{name:<26} {purpose:<7} {st.state.value:<9} {st.extra.get('wall_s', float('nan')):8.1f} "
            f"{res.get('wall_time_s', float('nan')):8.1f} {res.get('steps', 0):5d} {st.extra.get('max_rss_mb', float('nan')):8.0f} {value:24.4f}"
        )
    run_walls = [st.extra["wall_s"] for st in statuses.values() if "wall_s" in st.extra]
    print("\nstages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in outcome.seconds.items()))
    print(f"runs: {len(run_walls)}, mean {statistics.mean(run_walls):.1f} s per run (max {max(run_walls):.1f} s), "
          f"{LocalLauncher(config, swarm).max_concurrency} at a time")
    print(f"peak memory: {max(st.extra.get('max_rss_mb', 0) for st in statuses.values()):.0f} MB per run; "
          f"{mem.peak_bytes / 2**20:.0f} MB for the whole process tree ({mem.peak_procs} processes); "
          f"this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

    v = outcome.verify
    assert v is not None
    print("\nproposal: " + ", ".join(f"{k}={w:.3f}" for k, w in v.proposed_weights.items()))
    print(f"verify ({v.objective}): actual {v.actual_objective:.4f}, predicted {v.predicted_objective:.4f}; "
          f"swarm best {v.swarm_best_objective:.4f} ({v.best_run}), median {v.swarm_median_objective:.4f}")
    print(f"the verified proposal ranks {v.rank} of {v.n_runs + 1} (1 = best; the swarm's {v.n_runs} runs plus itself)")

    time_ok = total <= TARGET_S
    rank_ok = v.at_or_below_median
    print(f"\ntarget: whole cycle ≤ {TARGET_S:.0f} s -> {'met' if time_ok else 'MISSED'} ({total:.1f} s, {total / TARGET_S:.2f} of budget)")
    print(f"target: verified objective ≤ swarm median -> {'met' if rank_ok else 'MISSED'} "
          f"({v.actual_objective:.4f} vs {v.swarm_median_objective:.4f})")
    return 0 if time_ok and rank_ok else 1


if __name__ == "__main__":
    sys.exit(main())
