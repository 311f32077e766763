"""Fit and propose on the reduced swarm; constraints hold on the expanded mixture (token caps, minimum weights)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from olmix_core.config import EXISTING, ExperimentConfig
from olmix_core.fit import run_fit
from olmix_core.reuse import EXPANDED_FILE, expand_mixtures, propose_expanded, reduce_weights, reduced_fit_inputs, resolve_reuse
from olmix_core.sampling import generate_mixtures
from olmix_core.stages import fit_options
from tests.conftest import minimal_config

TOKENS = {"wiki": 2_000_000, "code": 1_000_000, "web:science": 3_000_000, "web:sports": 500_000}
FROZEN = {"code": 0.25, "web:science": 0.5, "web:sports": 0.25}


def _fit(tmp_path, loss, **overrides):
    """A reduced swarm of 24 runs whose loss is `loss(existing weight)`, fitted and proposed as `olmix swarm` does."""
    prev = tmp_path / "prev.json"
    prev.write_text(json.dumps(FROZEN))
    cfg = minimal_config(reuse={"previous": str(prev)}, variants=24, storage_root=str(tmp_path / "store"), **overrides)
    config, _ = resolve_reuse(ExperimentConfig.from_dict(cfg))
    mixtures = generate_mixtures(config, TOKENS)
    leaves = config.leaf_names()
    leaf_mixes = expand_mixtures(config, mixtures, TOKENS)
    rows = [reduce_weights(config, {leaf: m[leaf][0] for leaf in leaves}) for m in leaf_mixes]
    ids = [f"t-00000000-{i:04d}" for i in range(len(rows))]
    ratios, metrics = str(tmp_path / "ratios.csv"), str(tmp_path / "metrics.csv")
    pd.DataFrame([{"run": i, "name": i, **r} for i, r in zip(ids, rows)]).to_csv(ratios, index=False)
    rng = np.random.default_rng(0)
    y = [loss(r[EXISTING]) + rng.normal(0, 1e-3) for r in rows]
    pd.DataFrame({"run": ids, "name": ids, "loss": y}).to_csv(metrics, index=False)
    total = sum(TOKENS.values())
    priors = {"relative_sizes": {k: v / total for k, v in TOKENS.items()}, "token_counts": TOKENS}
    options, priors = reduced_fit_inputs(config, fit_options(config).model_copy(update={"plots": False}), priors)
    out = tmp_path / "fit"
    fit = run_fit(ratios, metrics, str(out), options, priors=priors)
    fit, proposal = propose_expanded(config, fit, ratios, metrics, str(out), options, priors)
    return config, fit, proposal, out


def test_token_caps_hold_on_every_expanded_leaf(tmp_path):
    # more existing is better, but web:sports (0.5M tokens at ratio 0.25) caps existing at 2M of a 3M-token run
    config, fit, proposal, out = _fit(tmp_path, lambda e: 3.0 - e, max_tokens=3_000_000, fit={"regression": {"type": "log_linear"}})
    assert proposal.reduced[EXISTING] == pytest.approx(2 / 3, abs=1e-3)
    expanded = json.loads((out / EXPANDED_FILE).read_text())
    assert expanded == proposal.expanded and set(expanded) == set(config.leaf_names())
    assert json.loads((out / "proposed_weights.json").read_text()) == pytest.approx(proposal.reduced)
    for leaf, w in expanded.items():
        assert w * 3_000_000 <= TOKENS[leaf] * 1.0 * (1 + 1e-9), leaf
    assert expanded["web:sports"] == pytest.approx(1 / 6, abs=1e-3)
    for leaf, r in FROZEN.items():
        assert expanded[leaf] == pytest.approx(proposal.reduced[EXISTING] * r, rel=1e-12)
    assert sum(expanded.values()) == pytest.approx(1.0)


def test_minimum_weight_holds_on_every_expanded_leaf(tmp_path):
    # the loss is lowest at existing = 0.2, but each part needs >= 0.1: existing is 0 or >= 0.1 / 0.25 = 0.4
    config, fit, proposal, out = _fit(
        tmp_path, lambda e: 3.0 + 4 * (e - 0.2) ** 2, max_tokens=1_000_000,
        fit={"constraints": {"min_weight_per_domain": 0.1}, "regression": {"type": "gp"}},
    )
    assert proposal.existing_minimum == pytest.approx(0.4)
    assert proposal.branches, "the proposal fell into the gap, so both ends were proposed"
    e = proposal.reduced[EXISTING]
    assert e == pytest.approx(0.4, abs=1e-6) or e == 0.0
    for leaf, w in proposal.expanded.items():
        assert w == 0.0 or w >= 0.1 - 1e-9, (leaf, w)
    # the fit folder's files are the winning branch's
    assert json.loads((out / "proposed_weights.json").read_text()) == pytest.approx(proposal.reduced)
    assert fit.proposed_weights == pytest.approx(proposal.reduced)
