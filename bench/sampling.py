"""Sampling speed: 256 and 10,000 variants over 24 leaves with token caps and minimum weights.

Target (issue 3): 10,000 variants in under 5 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from olmix_core.config import ExperimentConfig
from olmix_core.sampling import build_problem, generate_mixtures, mixtures_matrix


def config(variants: int) -> ExperimentConfig:
    sources = []
    counts = {}
    for i in range(8):
        sources.append({"name": f"src{i}", "max_repetition_factor": 2.0, "topics": [{"name": f"t{j}", "paths": ["x"]} for j in range(3)]})
        for j in range(3):
            counts[f"src{i}:t{j}"] = int(5e7 * (1 + ((i * 3 + j) % 7)))
    return ExperimentConfig.from_dict(
        {
            "name": "bench",
            "variants": variants,
            "seed": 0,
            "max_tokens": 2_000_000_000,
            "repetition_factor": 2.0,
            "minimum_weight": 0.002,
            "minimum_source_weight": 0.01,
            "sources": sources,
            "priors": {"token_counts": counts},
        }
    )


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    print(f"{'variants':>9}  {'leaves':>6}  {'seconds':>8}  {'weights at a token cap':>20}")
    for variants in (256, 10_000):
        cfg = config(variants)
        t0 = time.perf_counter()
        mixtures = generate_mixtures(cfg, cfg.priors.token_counts)
        dt = time.perf_counter() - t0
        w = mixtures_matrix(mixtures, cfg.leaf_names())
        caps = build_problem(cfg, cfg.priors.token_counts).caps
        assert (w <= caps[None, :] + 1e-9).all()
        at_cap = int((np.isclose(w, caps[None, :], atol=1e-9)).sum())
        print(f"{variants:>9}  {len(cfg.leaf_names()):>6}  {dt:8.2f}  {at_cap:>20}")
        assert len(mixtures) == variants
    print(f"target: 10,000 variants < 5 s -> {'met' if dt < 5 else 'MISSED'} ({dt:.2f} s, ratio {dt / 5:.2f} of budget)")


if __name__ == "__main__":
    main()
