"""Benchmark: mixture reuse vs full recomputation over a synthetic domain-set evolution with a known law.

    .venv/bin/python bench/reuse.py [--seeds 3] [--json out.json]

Every domain has its own known effect (a column of `olmix_core.fit.synthetic.SyntheticLaw`: T and B), so the true
optimum after each update is known. Start with 12 domains, then five updates: add 3, add 2, revise one (its column
changes), remove one, partition one into three (children near the parent's effect). After each update

* full recomputation: a fresh swarm over every current domain (3 runs per domain, the same rule as reuse's
  default swarm size), fit, propose;
* reuse: the config's `reuse:` block against the previous reuse proposal; the swarm, fit and proposal go through
  the same library code as `olmix swarm` (`olmix_core.reuse`: plan, reduced sampling, reduced tables, reduced fit
  inputs, expanded proposal).

Both arms start from the same initial mixture (a swarm of 6 runs per domain, outside the totals): reuse inherits
whatever that mixture gets wrong, so it should be a good one. Proxy "training" is the law plus noise. Regret = (f(proposal) − f*) / (f(prior) − f*), the prior being the
token-proportional mixture. Targets: reuse uses ≤ 35% of full recomputation's runs over the five updates, and its
final regret is within 0.02 of full recomputation's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from olmix_core.config import ExperimentConfig
from olmix_core.fit import run_fit
from olmix_core.fit.constraints import Bounds
from olmix_core.fit.synthetic import SyntheticLaw
from olmix_core.reuse import expand_mixtures, propose_expanded, reduce_weights, reduced_fit_inputs, resolve_reuse
from olmix_core.sampling import generate_mixtures

METRICS = 3
NOISE = 0.005
TARGET_RUN_SHARE = 0.35
TARGET_REGRET_GAP = 0.02
TARGET_TOKENS = 1_000_000
RUNS_PER_DOMAIN = 3  # full recomputation: the same rule as a reuse swarm's default size
INITIAL_RUNS_PER_DOMAIN = 6  # the mixture being maintained comes from a thorough swarm (shared, outside the totals)
FIT = {"regression": {"type": "auto", "n_jobs": 1}, "proposer": {"kl_reg": 0.05}, "plots": False}


class World:
    """The current domains, their token counts and their law columns."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.cols: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.tokens: dict[str, int] = {}
        self.c = self.rng.uniform(2.0, 3.0, METRICS)
        self.A = self.rng.uniform(0.8, 1.5, METRICS)

    def column(self) -> tuple[np.ndarray, np.ndarray]:
        t = self.rng.normal(0.0, 0.6, METRICS)
        if self.rng.random() < 0.4:  # a "home" domain of one metric
            t[self.rng.integers(METRICS)] -= self.rng.uniform(1.5, 3.0)
        return t, self.rng.uniform(0.0, 0.08, METRICS)

    def add(self, name: str, col: tuple[np.ndarray, np.ndarray] | None = None, tokens: int | None = None) -> None:
        self.cols[name] = col or self.column()
        self.tokens[name] = tokens or int(self.rng.uniform(5, 50) * TARGET_TOKENS)

    def law(self) -> SyntheticLaw:
        names = list(self.cols)
        T = np.stack([self.cols[n][0] for n in names], axis=1)
        B = np.stack([self.cols[n][1] for n in names], axis=1)
        return SyntheticLaw(self.c, self.A, T, B)

    def config(self, name: str, reuse: dict | None = None, variants: int | None = None) -> ExperimentConfig:
        """Sources as leaves (`d05:a` is topic `a` of source `d05`), with known token counts."""
        sources: dict[str, list[str]] = {}
        for leaf in self.cols:
            sources.setdefault(leaf.split(":")[0], []).append(leaf)
        srcs = []
        for src, leaves in sources.items():
            if leaves == [src]:
                srcs.append({"name": src, "paths": [f"/bench/{src}"]})
            else:
                srcs.append({"name": src, "topics": [{"name": leaf.split(":")[1], "paths": [f"/bench/{leaf}"]} for leaf in leaves]})
        data = {"name": name, "max_tokens": TARGET_TOKENS, "sources": srcs, "priors": {"token_counts": dict(self.tokens)}, "seed": 7}
        if variants is not None:
            data["variants"] = variants
        if reuse is not None:
            data["reuse"] = reuse
        return ExperimentConfig.from_dict(data)


def _swarm(world: World, config: ExperimentConfig, work: Path, rng: np.random.Generator) -> tuple[dict[str, float], int]:
    """One swarm through the library: sample (reduced when reusing), train (the law on the leaf mixtures), tables
    over the swarm's domains, fit, propose, expand. Returns (proposal over every leaf, runs used)."""
    config, plan = resolve_reuse(config)
    if plan is not None and not plan.needs_swarm:
        return dict(plan.final_weights or {}), 0
    leaves = config.leaf_names()
    mixtures = generate_mixtures(config, world.tokens)
    leaf_mixes = expand_mixtures(config, mixtures, world.tokens)
    X = np.array([[m[leaf][0] for leaf in leaves] for m in leaf_mixes])
    Y = world.law()(X) + rng.normal(0.0, NOISE, (len(X), METRICS))
    ids = [f"{config.name}-00000000-{i:04d}" for i in range(len(X))]
    rows = [reduce_weights(config, dict(zip(leaves, x))) for x in X]
    assert all(isinstance(r, dict) for r in rows)
    domains = list(rows[0])
    work.mkdir(parents=True, exist_ok=True)
    ratios, metrics = str(work / "ratios.csv"), str(work / "metrics.csv")
    pd.DataFrame([{"run": i, "name": i, **r} for i, r in zip(ids, rows)], columns=["run", "name", *domains]).to_csv(ratios, index=False)
    pd.DataFrame({"run": ids, "name": ids, **{f"m{k}": Y[:, k] for k in range(METRICS)}}).to_csv(metrics, index=False)
    total = sum(world.tokens.values())
    priors = {"relative_sizes": {k: v / total for k, v in world.tokens.items()}, "token_counts": dict(world.tokens)}
    options = {**FIT, "regression": {**FIT["regression"], "seed": config.seed},
               "constraints": {"target_tokens": float(TARGET_TOKENS), "repetition_factor": config.leaf_repetition_caps()}}
    options, priors = reduced_fit_inputs(config, options, priors)
    fit = run_fit(ratios, metrics, str(work / "fit"), options, priors=priors)
    _, proposal = propose_expanded(config, fit, ratios, metrics, str(work / "fit"), options, priors)
    return proposal.expanded, len(X)


def _regret(world: World, weights: dict[str, float]) -> float:
    law = world.law()
    names = list(world.cols)
    d = len(names)
    bounds = Bounds(names, np.zeros(d), np.ones(d), np.zeros(d, bool), 0.0, {})
    _, f_opt = law.optimum(bounds, starts=8)
    tokens = np.array([world.tokens[n] for n in names], float)
    f_prior = float(law.objective(tokens / tokens.sum())[0])
    x = np.array([weights.get(n, 0.0) for n in names])
    return (float(law.objective(x)[0]) - f_opt) / (f_prior - f_opt)


def run(seed: int, work: Path) -> list[dict]:
    world = World(seed)
    for i in range(12):
        world.add(f"d{i:02d}")
    rng = np.random.default_rng(seed + 1000)

    def full(step: str, per_domain: int = RUNS_PER_DOMAIN) -> tuple[dict[str, float], int]:
        cfg = world.config(f"full-{step}", variants=per_domain * len(world.cols))
        return _swarm(world, cfg, work / f"full-{step}", rng)

    start, n0 = full("0", INITIAL_RUNS_PER_DOMAIN)
    previous = work / "reuse-0.json"
    previous.write_text(json.dumps(start))
    rows = [{"update": "0 initial (shared)", "domains": len(world.cols), "full_runs": n0, "reuse_runs": n0,
             "full_regret": _regret(world, start), "reuse_regret": _regret(world, start)}]

    def add(names: list[str]) -> list[str]:
        for n in names:
            world.add(n)
        return []

    def revise() -> list[str]:
        world.cols["d03"] = world.column()
        return ["d03"]

    def remove() -> list[str]:
        del world.cols["d07"], world.tokens["d07"]
        return []

    def partition() -> list[str]:
        t, b = world.cols.pop("d05")
        n = world.tokens.pop("d05")
        for part in "abc":
            world.add(f"d05:{part}", (t + world.rng.normal(0.0, 0.3, METRICS), b * world.rng.uniform(0.5, 1.5, METRICS)), n // 3)
        return []

    updates = [
        ("1 add 3", lambda: add(["d12", "d13", "d14"])),
        ("2 add 2", lambda: add(["d15", "d16"])),
        ("3 revise d03", revise),
        ("4 remove d07", remove),
        ("5 partition d05 into 3", partition),
    ]
    for k, (label, change) in enumerate(updates, start=1):
        recompute = change()
        x_full, n_full = full(str(k))
        reuse = {"previous": str(previous), "recompute": recompute}
        x_reuse, n_reuse = _swarm(world, world.config(f"reuse-{k}", reuse=reuse), work / f"reuse-{k}", rng)
        previous = work / f"reuse-{k}.json"
        previous.write_text(json.dumps(x_reuse))
        rows.append({"update": label, "domains": len(world.cols), "full_runs": n_full, "reuse_runs": n_reuse,
                     "full_regret": _regret(world, x_full), "reuse_regret": _regret(world, x_reuse)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="independent domain-set evolutions (laws, swarms)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="olmix-bench-reuse-") as tmp:
        for seed in range(args.seeds):
            rows = run(seed, Path(tmp) / f"seed{seed}")
            results.append(rows)
            print(f"\nseed {seed}")
            print(f"{'update':<26}{'domains':>8}{'full runs':>11}{'reuse runs':>12}{'full regret':>13}{'reuse regret':>14}")
            for r in rows:
                print(f"{r['update']:<26}{r['domains']:>8}{r['full_runs']:>11}{r['reuse_runs']:>12}{r['full_regret']:>13.4f}{r['reuse_regret']:>14.4f}")
    full_runs = sum(r["full_runs"] for rows in results for r in rows[1:])
    reuse_runs = sum(r["reuse_runs"] for rows in results for r in rows[1:])
    share = reuse_runs / full_runs
    final_full = float(np.mean([rows[-1]["full_regret"] for rows in results]))
    final_reuse = float(np.mean([rows[-1]["reuse_regret"] for rows in results]))
    gap = final_reuse - final_full
    ok_runs, ok_regret = share <= TARGET_RUN_SHARE, gap <= TARGET_REGRET_GAP
    print(f"\nover the five updates, {args.seeds} seeds ({time.perf_counter() - t0:.0f} s):")
    print(f"  proxy runs: reuse {reuse_runs} / full {full_runs} = {share:.1%}   target <= {TARGET_RUN_SHARE:.0%}   {'OK' if ok_runs else 'MISSED'}")
    print(f"  final regret (mean): reuse {final_reuse:.4f}, full {final_full:.4f}, gap {gap:+.4f}   target gap <= {TARGET_REGRET_GAP}   {'OK' if ok_regret else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"seeds": results, "run_share": share, "final_regret": {"reuse": final_reuse, "full": final_full}}, indent=2))
    return 0 if ok_runs and ok_regret else 1


if __name__ == "__main__":
    sys.exit(main())
