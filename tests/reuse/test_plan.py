"""The reuse plan (frozen, free, partitioned, removed) and exact moves between reduced domains and leaves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from olmix_core.config import EXISTING, ExperimentConfig
from olmix_core.errors import ConfigError, DataError
from olmix_core.reuse import (
    default_variants,
    domains_of,
    expand_mixtures,
    expand_weights,
    plan_reuse,
    read_previous,
    reduce_weights,
    reduced_config,
    resolve_reuse,
)
from olmix_core.sampling import generate_mixtures
from olmix_core.stages import check_mixtures
from tests.conftest import minimal_config

TOKENS = {"wiki": 2_000_000, "code": 1_000_000, "web:science": 3_000_000, "web:sports": 500_000}


def _config(reuse: dict, **overrides) -> ExperimentConfig:
    cfg = minimal_config(reuse=reuse, **overrides)
    cfg.pop("variants")  # unset: the reduced swarm's size applies
    return ExperimentConfig.from_dict(cfg)


def test_added_leaf_is_free_and_the_rest_frozen_at_previous_ratios():
    config = _config({"frozen": None, "previous": "p.json"})
    plan = plan_reuse(config, {"code": 0.2, "web:science": 0.6, "web:sports": 0.2})
    assert plan.new == ["wiki"] and plan.free == ["wiki"] and not plan.removed
    assert plan.frozen == pytest.approx({"code": 0.2, "web:science": 0.6, "web:sports": 0.2})
    assert plan.domains == [EXISTING, "wiki"] and plan.needs_swarm
    assert plan.variants == default_variants(2) == 6


def test_recompute_a_source_frees_its_leaves_and_renormalises_the_rest():
    config = _config({"previous": "p.json", "recompute": ["web"]})
    plan = plan_reuse(config, {"wiki": 0.5, "code": 0.3, "web:science": 0.1, "web:sports": 0.1})
    assert plan.recomputed == ["web:science", "web:sports"]
    assert plan.frozen == pytest.approx({"wiki": 0.625, "code": 0.375})
    assert plan.domains == [EXISTING, "web:science", "web:sports"]


def test_partition_by_name_and_by_paths():
    config = _config({"previous": "p.json"})
    # `web` was one leaf; now it is web:science + web:sports
    plan = plan_reuse(config, {"wiki": 0.5, "code": 0.2, "web": 0.3})
    assert plan.partitioned == {"web": ["web:science", "web:sports"]}
    assert plan.free == ["web:science", "web:sports"] and not plan.removed and not plan.new
    assert plan.frozen == pytest.approx({"wiki": 5 / 7, "code": 2 / 7})
    # a differently named previous leaf whose paths contain the new leaves' paths
    plan = plan_reuse(config, {"wiki": 0.5, "code": 0.2, "crawl": 0.3}, previous_paths={"crawl": ["/data/web/**/*.bin"]})
    assert plan.partitioned == {"crawl": ["web:science", "web:sports"]} and not plan.removed


def test_removal_only_needs_no_swarm_and_renormalises():
    config = _config({"previous": "p.json"})
    prev = {"wiki": 0.4, "code": 0.1, "web:science": 0.2, "web:sports": 0.1, "books": 0.2}
    plan = plan_reuse(config, prev)
    assert plan.removed == ["books"] and not plan.needs_swarm and plan.free == []
    assert plan.final_weights == pytest.approx({"wiki": 0.5, "code": 0.125, "web:science": 0.25, "web:sports": 0.125})
    assert "no swarm needed" in plan.summary()


def test_full_mode_frees_everything_but_keeps_the_lineage():
    config = _config({"previous": "p.json", "mode": "full"})
    plan = plan_reuse(config, {"wiki": 0.5, "code": 0.5})
    assert plan.frozen == {} and plan.domains == config.leaf_names() and plan.new == ["web:science", "web:sports"]
    assert plan.variants == 3 * 4


def test_fixed_weight_sources_are_never_frozen():
    config = _config({"previous": "p.json"}, fixed_source_weights={"code": 0.1})
    plan = plan_reuse(config, {"wiki": 0.4, "code": 0.1, "web:science": 0.4, "web:sports": 0.1})
    assert "code" in plan.free and "code" in plan.pinned and "code" not in plan.frozen


def test_explicit_variants_win():
    cfg = minimal_config(reuse={"previous": "p.json"}, variants=11)
    assert plan_reuse(ExperimentConfig.from_dict(cfg), {"code": 1.0}).variants is None


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="reuse.recompute: unknown"):
        _config({"previous": "p.json", "recompute": ["nope"]})
    with pytest.raises(ConfigError, match="reuse"):
        _config({"recompute": []})
    with pytest.raises(ConfigError, match="reuse.frozen"):
        _config({"frozen": {"wiki": 0.5, "code": 0.6}})
    bad = minimal_config(reuse={"previous": "p.json"})
    bad["sources"].append({"name": EXISTING, "paths": ["/x"]})
    with pytest.raises(ConfigError, match="existing"):
        ExperimentConfig.from_dict(bad)


def test_read_previous_follows_a_reduced_proposal_to_its_expansion(tmp_path):
    (tmp_path / "prev.yaml").write_text("wiki: 2\ncode: 2\n")
    assert read_previous(str(tmp_path / "prev.yaml")) == {"wiki": 0.5, "code": 0.5}
    fit = tmp_path / "fit"
    fit.mkdir()
    (fit / "proposed_weights.json").write_text(json.dumps({EXISTING: 0.7, "wiki": 0.3}))
    with pytest.raises(ConfigError, match="olmix mix expand"):
        read_previous(str(fit / "proposed_weights.json"))
    (fit / "proposed_weights_expanded.json").write_text(json.dumps({"code": 0.7, "wiki": 0.3}))
    assert read_previous(str(fit / "proposed_weights.json")) == {"code": 0.7, "wiki": 0.3}
    (tmp_path / "bad.json").write_text(json.dumps({"wiki": -1}))
    with pytest.raises(ConfigError, match="wiki"):
        read_previous(str(tmp_path / "bad.json"))
    with pytest.raises(ConfigError, match="not found"):
        read_previous(str(tmp_path / "missing.json"))


@pytest.fixture
def resolved(tmp_path):
    prev = tmp_path / "prev.json"
    prev.write_text(json.dumps({"code": 0.25, "web:science": 0.5, "web:sports": 0.25}))
    config, plan = resolve_reuse(_config({"previous": str(prev)}))
    assert plan is not None
    return config


def test_expansion_is_exact_and_reduces_back(resolved):
    config = resolved
    assert config.reuse.frozen == {"code": 0.25, "web:science": 0.5, "web:sports": 0.25} and config.variants == 6
    full = expand_weights(config, {EXISTING: 0.6, "wiki": 0.4})
    assert full == {"wiki": 0.4, "code": 0.6 * 0.25, "web:science": 0.6 * 0.5, "web:sports": 0.6 * 0.25}
    assert reduce_weights(config, full) == pytest.approx({EXISTING: 0.6, "wiki": 0.4})
    off = dict(full, code=full["code"] + 0.01, wiki=full["wiki"] - 0.01)
    assert "not at" in reduce_weights(config, off)
    with pytest.raises(DataError, match="frozen part"):
        expand_weights(config, {EXISTING: 0.5, "code": 0.5})
    assert domains_of(config) == [EXISTING, "wiki"]


def test_reduced_swarm_samples_existing_as_one_domain_within_every_leaf_cap(resolved):
    # web:sports has 0.5M tokens at ratio 0.25: existing can hold at most 2M tokens, 2/3 of a 3M-token run
    config = ExperimentConfig.from_dict({**resolved.model_dump(mode="json", exclude_none=True), "max_tokens": 3_000_000})
    reduced, counts = reduced_config(config, TOKENS)
    assert [s.name for s in reduced.sources] == [EXISTING, "wiki"]
    assert counts[EXISTING] == 2_000_000  # min(1M/0.25, 3M/0.5, 0.5M/0.25)
    mixtures = generate_mixtures(config, TOKENS)
    assert len(mixtures) == 6 and all(set(m) == {EXISTING, "wiki"} for m in mixtures)
    assert max(m[EXISTING][0] for m in mixtures) <= 2 / 3 + 1e-9
    leaf_mixes = expand_mixtures(config, mixtures, TOKENS)
    check_mixtures(config, TOKENS, leaf_mixes)  # raises if any leaf exceeds its own cap
    for m, leaf in zip(mixtures, leaf_mixes):
        assert leaf["web:sports"][0] == pytest.approx(m[EXISTING][0] * 0.25, abs=0)
        assert sum(w for w, _ in leaf.values()) == pytest.approx(1.0)
        assert leaf["wiki"][0] == m["wiki"][0]
    assert np.isclose(leaf_mixes[0]["web:sports"][1], max(1.0, leaf_mixes[0]["web:sports"][0] * 3_000_000 / 500_000))


def test_given_mixtures_may_be_over_the_reduced_domains(resolved):
    mixes = check_mixtures(resolved, TOKENS, [{EXISTING: 0.7, "wiki": 0.3}])
    assert mixes[0][EXISTING][0] == pytest.approx(0.7) and set(mixes[0]) == {EXISTING, "wiki"}
    with pytest.raises(DataError, match="code"):
        check_mixtures(resolved, TOKENS, [{EXISTING: 0.7, "code": 0.3}])  # a frozen leaf is not a domain of its own
