"""Benchmark: adaptive swarms vs one-shot sampling at equal (and at half the) proxy runs, on synthetic laws with a
known constrained optimum (olmix_core.fit.synthetic, the fit benchmark's laws). The benchmark plays the trainer:
each chosen mixture "trains" to the true law plus noise.

Arms, per law and with / without binding token caps (the two heaviest optimal domains capped at half):
* one-shot: N runs sampled once (Dirichlet around the prior, repaired onto the caps), fit (`auto`), propose as
  `olmix fit` does; also with the residual-GP correction (`fit.proposer.residual_gp`), a second baseline;
* adaptive: N/2 sampled + 2 rounds of N/4 chosen by `olmix mix next` (olmix_core.adaptive.suggest), fit, propose
  as `olmix swarm --rounds` does (residual GP on, the default for a swarm with appended rounds); also without it;
* adaptive, half the runs: N/4 sampled + 2 rounds of N/8.

Regret of the final proposal = (f(proposal) − f*) / (median f over the one-shot swarm − f*): 0 is the optimum, 1 a
typical swarm run. Targets: adaptive regret ≤ ½ one-shot's at equal runs; adaptive with half the runs ≤ one-shot.

    python bench/adaptive.py            # 6 laws × {free, caps}, N = 96 (~3-4 min on 1 core)
    python bench/adaptive.py --quick    # 2 laws, N = 64 (~1 min)

Single laws vary several-fold (one-shot regret 0.004-0.12 on the same N), so the default averages over 6 laws:
3 laws can flip a ratio past its target either way.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from olmix_core.adaptive import suggest
from olmix_core.fit import ConstraintsOptions as Constraints
from olmix_core.fit import FitOptions, build_objective, fit_models, propose_with, resolve_bounds
from olmix_core.fit.constraints import Bounds, repair_rows
from olmix_core.fit.run import Setup
from olmix_core.fit.synthetic import SyntheticLaw, make_law, regret
from olmix_core.fit.tables import SwarmTable

D, M, NOISE = 8, 3, 0.005
DOMAINS = [f"dom:{i}" for i in range(D)]
METRICS = [f"m{k}" for k in range(M)]


def sample(law: SyntheticLaw, n: int, prior: np.ndarray, bounds: Bounds, rng: np.random.Generator) -> np.ndarray:
    """`n` swarm mixtures: Dirichlet around the prior with mixed concentrations (like `olmix mix generate`),
    repaired onto the bounds (the sampler honours token caps too)."""
    out = np.empty((0, law.d))
    while len(out) < n:
        kappa = np.exp(rng.uniform(np.log(0.5), np.log(20.0), (2 * n, 1))) * law.d
        G = rng.standard_gamma(kappa * (prior + 1e-3))
        X, ok = repair_rows(G / G.sum(1, keepdims=True), bounds)
        out = np.vstack([out, X[ok]])
    return out[:n]


def train(law: SyntheticLaw, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The benchmark as the trainer: true metrics plus noise."""
    return law(X) + rng.normal(0.0, NOISE, (len(X), M))


def table(X: np.ndarray, Y: np.ndarray) -> SwarmTable:
    return SwarmTable([str(i) for i in range(len(X))], None, "run", DOMAINS, METRICS, X, Y)


def final_proposal(X: np.ndarray, Y: np.ndarray, setup: Setup, seed: int, residual_gp: bool) -> np.ndarray:
    """What `olmix fit` proposes on these runs (auto regression, auto proposer, default options), with or without
    the residual-GP correction (on by default for a swarm with adaptive rounds, off for a sampled one)."""
    t = table(X, Y)
    options = FitOptions.from_dict({"regression": {"seed": seed}, "proposer": {"residual_gp": residual_gp}})
    return propose_with(t, fit_models(t, "auto", seed=seed, n_jobs=1), setup, options).x


def adaptive(law: SyntheticLaw, X0: np.ndarray, Y0: np.ndarray, per_round: int, setup: Setup, seed: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Two rounds of `per_round` runs chosen by olmix_core.adaptive on everything so far."""
    X, Y, eis = X0, Y0, []
    for r in range(2):
        t = table(X, Y)
        options = FitOptions.from_dict({"regression": {"seed": seed + r}})
        batch = suggest(t, fit_models(t, "auto", seed=seed, n_jobs=1), setup, options, per_round)
        Xn = np.array([[s.weights[d] for d in DOMAINS] for s in batch.suggestions])
        assert all(not setup.bounds.violations(x) for x in Xn)
        X, Y = np.vstack([X, Xn]), np.vstack([Y, train(law, Xn, rng)])
        eis.append(batch.expected_improvement)
    return X, Y, eis


def one_case(seed: int, caps: bool, n: int) -> dict[str, float]:
    law = make_law(D, M, seed)
    prior = np.random.default_rng(seed + 100).dirichlet(np.ones(D) * 3)
    x_free, _ = law.optimum(resolve_bounds(Constraints(), DOMAINS))
    top = set(np.argsort(-x_free)[:2].tolist())
    cap_tokens = {d: (x_free[i] * 0.5 if i in top else 1.0) for i, d in enumerate(DOMAINS)}
    bounds = resolve_bounds(Constraints(target_tokens=1.0) if caps else Constraints(), DOMAINS, cap_tokens if caps else None)
    _, f_opt = law.optimum(bounds)
    setup = Setup(prior, build_objective(METRICS, prior), bounds, None, [])
    rng = np.random.default_rng(seed + 7)
    X = sample(law, n, prior, bounds, rng)
    Y = train(law, X, rng)  # one swarm: the adaptive arms start from its first rows, so they share the luck of the draw
    out = {"one-shot": regret(law, final_proposal(X, Y, setup, seed, False), X, f_opt),
           "one-shot + residual GP": regret(law, final_proposal(X, Y, setup, seed, True), X, f_opt)}
    Xa, Ya, eis = adaptive(law, X[: n // 2], Y[: n // 2], n // 4, setup, seed, rng)
    out["adaptive"] = regret(law, final_proposal(Xa, Ya, setup, seed, True), X, f_opt)
    out["adaptive, no residual GP"] = regret(law, final_proposal(Xa, Ya, setup, seed, False), X, f_opt)
    out["EI round 1"], out["EI round 2"] = eis
    Xh, Yh, _ = adaptive(law, X[: n // 4], Y[: n // 4], n // 8, setup, seed, rng)
    out["adaptive, half the runs"] = regret(law, final_proposal(Xh, Yh, setup, seed, True), X, f_opt)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 laws, 64 runs")
    ap.add_argument("--laws", type=int, default=None, help="number of laws (default 6; --quick 2)")
    ap.add_argument("--runs", type=int, default=None, help="runs of the one-shot swarm (default 96; --quick 64)")
    ap.add_argument("--first-law", type=int, default=2000, help="seed of the first law (laws 2000-2005 are the "
                    "default set the candidate counts were chosen on; later ones are a held-out check)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    laws = args.laws or (2 if args.quick else 6)
    n = args.runs or (64 if args.quick else 96)
    t0 = time.perf_counter()
    print(f"## Adaptive vs one-shot swarms: {D} domains, {M} metrics, noise {NOISE}, {laws} laws from "
          f"{args.first_law}, {n} runs "
          f"(adaptive: {n // 2} + 2×{n // 4}; half: {n // 4} + 2×{n // 8})")
    rows: dict[str, list[dict[str, float]]] = {"free": [], "caps": []}
    for seed in range(args.first_law, args.first_law + laws):
        for caps in (False, True):
            t = time.perf_counter()
            r = one_case(seed, caps, n)
            rows["caps" if caps else "free"].append(r)
            print(f"  law {seed} {'caps' if caps else 'free'}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items())
                  + f"  ({time.perf_counter() - t:.0f}s)", flush=True)
    summary: dict[str, dict[str, float]] = {}
    for name, rs in [("no caps", rows["free"]), ("token caps", rows["caps"]), ("all", rows["free"] + rows["caps"])]:
        summary[name] = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}

    def ratio(a: float, b: float, target: float) -> str:
        return f"{a / b:.2f} {'✓' if a <= target * b else '✗'}"

    for baseline, what in [("one-shot", "as `olmix fit` proposes a sampled swarm"),
                           ("one-shot + residual GP", "with the same residual-GP proposal as the adaptive arms")]:
        print(f"\nAgainst one-shot {what}:\n\n| setting | {baseline} regret | adaptive regret | ratio (target ≤ 0.5) | "
              "adaptive, half the runs | ratio (target ≤ 1) |\n|---|---|---|---|---|---|")
        for name, m in summary.items():
            one, ada, half = m[baseline], m["adaptive"], m["adaptive, half the runs"]
            print(f"| {name} | {one:.4f} | {ada:.4f} | {ratio(ada, one, 0.5)} | {half:.4f} | {ratio(half, one, 1.0)} |")
    print("\n(mean regret over the laws; 0 = the true constrained optimum, 1 = the one-shot swarm's median run; "
          "adaptive, no residual GP: " + ", ".join(f"{k} {m['adaptive, no residual GP']:.4f}" for k, m in summary.items())
          + ")")
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cases": rows, "summary": summary}, f, indent=2)


if __name__ == "__main__":
    main()
