"""Benchmark: real-size fit and simulation speed (issue 16), figures next to their targets.

    PYTHONPATH=$PWD .venv/bin/python bench/fit_speed.py [--quick] [--json out.json]

1. `olmix fit` (run_fit: default `auto` with 5-fold CV, proposal, plots) on Ai2's DCLM swarm, 127 × 24 × 110:
   target ≤ 30 s wall on 2 cores.
2. The same on a synthetic 512-run × 60-domain × 110-metric swarm: target ≤ 120 s.
3. The simulation proposer over 1,000,000 candidates × 13 metrics (RegMix 1M swarm, 512 runs) with every model
   kind fitted on it: target ≤ 10 s each. `--quick`: 100,000 candidates, the time ×10 shown as the estimate.

The machine is shared with other jobs: CPU (user) seconds are printed next to wall seconds, and the load average;
wall time on a loaded machine overstates what a user's idle 2-core machine takes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from _common import clock, load_average, load_published, shared_dir

from olmix_core.fit.constraints import resolve_bounds
from olmix_core.fit.fitting import fit_models
from olmix_core.fit.objective import build_objective
from olmix_core.fit.options import ConstraintsOptions
from olmix_core.fit.proposers import Problem, propose
from olmix_core.fit.run import FitOptions, run_fit
from olmix_core.fit.synthetic import make_law, make_swarm, write_swarm
from olmix_core.fit.tables import load_tables

KINDS = ["lightgbm", "log_linear", "log_linear_power", "linear", "gp", "bimix", "search", "auto"]


def _run_fit_on(X: np.ndarray, Y: np.ndarray, domains: list[str], metrics: list[str]) -> tuple[float, float, str]:
    with tempfile.TemporaryDirectory() as tmp:
        r, m = f"{tmp}/ratios.csv", f"{tmp}/metrics.csv"
        write_swarm(X, Y, domains, metrics, r, m)
        with clock() as c:
            res = run_fit(r, m, f"{tmp}/out", FitOptions())
    return c.wall, c.cpu, f"{res.report['seconds']} ({res.proposal.proposer if res.proposal else '-'} proposer)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--olmix-data", default=str(shared_dir("olmix", "OLMIX_DCLM_DATA")))
    ap.add_argument("--regmix-data", default=str(shared_dir("regmix", "OLMIX_REGMIX_DATA")))
    ap.add_argument("--quick", action="store_true", help="1e5 simulation candidates (time ×10 as the estimate)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["dclm", "synthetic", "simulation"])
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    rows: list[tuple[str, float, float, float, str]] = []
    print(f"load average at start: {load_average()} (2-core machine shared with other jobs)", flush=True)

    if "dclm" not in args.skip:
        t = load_published(Path(args.olmix_data))
        w, c, info = _run_fit_on(t.X, t.Y, t.domains, t.metrics)
        rows.append(("olmix fit, auto, DCLM 127 × 24 × 110", w, c, 30.0, info))
        print(f"  DCLM: {w:.1f}s wall, {c:.1f}s CPU {info}", flush=True)

    if "synthetic" not in args.skip:
        d, m, n = 60, 110, 512
        law = make_law(d, m, seed=0)
        prior = np.random.default_rng(1).dirichlet(np.ones(d) * 3)
        X, Y = make_swarm(law, n, prior, seed=0)
        w, c, info = _run_fit_on(X, Y, [f"d{i}" for i in range(d)], [f"m{k}" for k in range(m)])
        rows.append((f"olmix fit, auto, synthetic {n} × {d} × {m}", w, c, 120.0, info))
        print(f"  synthetic: {w:.1f}s wall, {c:.1f}s CPU {info}", flush=True)

    if "simulation" not in args.skip:
        data = Path(args.regmix_data)
        train = load_tables(data / "train_mixture_1m.csv", data / "train_pile_loss_1m.csv")
        prior = train.X.mean(0)
        bounds = resolve_bounds(ConstraintsOptions(), train.domains)
        obj = build_objective(train.metrics, prior)
        n_cand = 100_000 if args.quick else 1_000_000
        scale = 1_000_000 // n_cand
        for kind in KINDS:
            models = fit_models(train, kind, seed=0, n_jobs=2)
            with clock() as c:
                propose(Problem(models, obj, bounds, prior, seed=0), "simulation", num_samples=n_cand)
            label = f"simulation 1e6 × {len(train.metrics)} metrics, {kind} models" + (
                f" (1e5 measured ×{scale})" if scale > 1 else ""
            )
            rows.append((label, c.wall * scale, c.cpu * scale, 10.0, ""))
            print(f"  {label}: {c.wall * scale:.1f}s wall, {c.cpu * scale:.1f}s CPU", flush=True)

    print("\n| task | wall s | CPU user s | target (wall, 2 cores) | met (wall) | detail |\n|---|---|---|---|---|---|")
    for label, w, c, target, info in rows:
        print(f"| {label} | {w:.1f} | {c:.1f} | ≤ {target:g} | {'yes' if w <= target else 'no'} | {info} |")
    print(f"\nload average at end: {load_average()}")
    if args.json:
        Path(args.json).write_text(json.dumps([dict(zip(["task", "wall", "cpu", "target"], r)) for r in rows], indent=2))


if __name__ == "__main__":
    main()
