"""Hierarchical Dirichlet sampling of swarm mixtures (the seed's `generate_weights_dirichlet`, vectorised).

Candidates are drawn in batches of `variants × sample_multiplier` as matrices (rows = candidates, columns = leaves);
every constraint is a matrix operation or a row filter, and the number of batches is bounded, so impossible
constraints end with an error naming the constraint instead of looping forever.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

import fsspec
import numpy as np

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError, DataError, InfeasibleError

Mixture = dict[str, list[float]]  # leaf -> [weight, repetition_factor] (the seed's format)

MAX_BATCHES = 50
DEDUP_DECIMALS = 4
EXISTING_MIN_DISTANCE = 0.01
_TOL = 1e-9


@dataclass
class SamplingProblem:
    """The config resolved to arrays: leaf order, priors, groups with fixed mass, caps, minimums."""

    leaves: list[str]
    source_names: list[str]
    source_of_leaf: np.ndarray  # (L,) index into source_names
    source_prior: np.ndarray  # (S,) after temperature, over sources
    topic_prior: dict[int, np.ndarray]  # source index -> (T,) prior over its leaves
    topic_fixed: dict[int, np.ndarray]  # source index -> (T,) fixed share or nan
    fixed_source: np.ndarray  # (S,) fixed weight or nan
    caps: np.ndarray  # (L,) max weight from tokens × repetition cap / max_tokens
    tokens: np.ndarray  # (L,)
    nonzero: np.ndarray  # (L,) bool: never zeroed by a minimum
    max_tokens: int
    min_strength: float
    max_strength: float
    minimum_weight: float
    minimum_source_weight: float
    minimum_topic_weight: float
    existing: np.ndarray | None = None  # (M, L) rows to stay away from
    leaf_index: dict[str, int] = field(default_factory=dict)


def _temper(p: np.ndarray, temperature: float) -> np.ndarray:
    q = np.where(p > 0, np.power(np.maximum(p, 1e-300), temperature), 0.0)
    return q / q.sum()


def build_problem(config: ExperimentConfig, token_counts: dict[str, int]) -> SamplingProblem:
    leaves = config.leaf_names()
    missing = [leaf for leaf in leaves if leaf not in token_counts]
    if missing:
        raise ConfigError(f"priors: no token count for leaves {missing}")
    sources = [s.name for s in config.sources]
    s_index = {s: i for i, s in enumerate(sources)}
    source_of = np.array([s_index[config.source_of(leaf)] for leaf in leaves])
    tokens = np.array([float(token_counts[leaf]) for leaf in leaves])

    if config.manual_prior is not None:
        raw = np.array([float(config.manual_prior.get(s, 0.0)) for s in sources])
    else:
        raw = np.bincount(source_of, weights=tokens, minlength=len(sources))
    fixed_map = config.fixed_weights()
    fixed = np.array([fixed_map.get(s, np.nan) for s in sources])
    free = np.isnan(fixed)
    if free.any() and raw[free].sum() <= 0:
        raise ConfigError("manual_prior: every source without a fixed weight has prior 0")
    source_prior = np.zeros(len(sources))
    if free.any():
        source_prior[free] = _temper(raw[free] / raw[free].sum(), config.source_mix_temperature or config.mix_temperature)

    topic_t = config.topic_mix_temperature or config.mix_temperature
    topic_prior: dict[int, np.ndarray] = {}
    topic_fixed: dict[int, np.ndarray] = {}
    for s in config.sources:
        if s.topics:
            i = s_index[s.name]
            cols = np.flatnonzero(source_of == i)
            topic_prior[i] = _temper(tokens[cols] / tokens[cols].sum(), topic_t)
            topic_fixed[i] = np.array([np.nan if t.weight is None else t.weight for t in s.topics])

    rep_caps = config.leaf_repetition_caps()
    caps = np.array([tokens[j] * rep_caps[leaf] / config.target_tokens for j, leaf in enumerate(leaves)])
    nonzero = np.array([leaf in config.nonzero_weight or config.source_of(leaf) in config.nonzero_weight for leaf in leaves])
    problem = SamplingProblem(
        leaves=leaves,
        source_names=sources,
        source_of_leaf=source_of,
        source_prior=source_prior,
        topic_prior=topic_prior,
        topic_fixed=topic_fixed,
        fixed_source=fixed,
        caps=caps,
        tokens=tokens,
        nonzero=nonzero,
        max_tokens=config.target_tokens,
        min_strength=config.min_strength,
        max_strength=config.max_strength,
        minimum_weight=config.minimum_weight,
        minimum_source_weight=config.minimum_source_weight,
        minimum_topic_weight=config.minimum_topic_weight,
        leaf_index={leaf: j for j, leaf in enumerate(leaves)},
    )
    if config.existing_mix_file:
        problem.existing = load_existing_mixtures(config.existing_mix_file, leaves)
    check_feasible(problem)
    return problem


def load_existing_mixtures(path: str, leaves: list[str]) -> np.ndarray:
    """Rows of an earlier mixtures file, matched to this config's leaves by name (missing leaves = 0)."""
    try:
        mixtures = read_mixtures_file(path)
    except DataError as e:
        raise ConfigError(f"existing_mix_file: {e}") from None
    return mixtures_matrix(mixtures, leaves)


def read_mixtures_file(path: str) -> list[Mixture]:
    """A mixtures file: a list of `{leaf: [weight, repetition_factor]}` or `{leaf: weight}` (or `{"mixes": [...]}`)."""
    try:
        with fsspec.open(path, "r") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: mixtures file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, dict) and "mixes" in data:
        data = data["mixes"]
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: expected a non-empty list of mixtures")
    out: list[Mixture] = []
    for i, mix in enumerate(data):
        if not isinstance(mix, dict) or not mix:
            raise DataError(f"{path}: mixture {i} must be a non-empty object of leaf -> weight")
        row: Mixture = {}
        for leaf, value in mix.items():
            pair = value if isinstance(value, (list, tuple)) else [value]
            try:
                row[leaf] = [float(pair[0]), float(pair[1]) if len(pair) > 1 else math.nan]
            except (TypeError, ValueError, IndexError):
                raise DataError(f"{path}: mixture {i}, leaf {leaf!r}: expected a weight or [weight, repetition_factor]") from None
        out.append(row)
    seen: dict[tuple, int] = {}
    dups: list[str] = []
    for i, row in enumerate(out):
        key = tuple(sorted((leaf, w) for leaf, (w, _) in row.items() if w != 0.0))
        if key in seen:
            dups.append(f"{i} (same as {seen[key]})")
        else:
            seen[key] = i
    if dups:
        raise DataError(f"{path}: duplicate mixtures (rows counted from 0): {', '.join(dups[:10])}"
                        + (f", ... ({len(dups)} in all)" if len(dups) > 10 else "") + "; each run needs a different mixture")
    return out


def check_feasible(p: SamplingProblem) -> None:
    """Constraints that no mixture can meet, named before any sampling."""
    total_cap = p.caps.sum()
    if total_cap < 1.0 - 1e-9:
        raise InfeasibleError(
            f"token caps: all leaves together hold {total_cap:.3f} of max_tokens={p.max_tokens} even at their repetition "
            f"caps (need >= 1); raise repetition_factor / max_repetition_factor or lower max_tokens"
        )
    for i, w in enumerate(p.fixed_source):
        if np.isnan(w):
            continue
        cols = p.source_of_leaf == i
        if w > p.caps[cols].sum() + 1e-12:
            raise InfeasibleError(
                f"fixed weight {w} of source {p.source_names[i]!r} exceeds its token cap {p.caps[cols].sum():.4f}"
            )
    free_leaves = np.isnan(p.fixed_source[p.source_of_leaf])
    free_mass = 1.0 - np.nansum(p.fixed_source)
    if free_leaves.any() and free_mass > 0 and p.caps[free_leaves].sum() < free_mass - 1e-9:
        raise InfeasibleError(
            f"token caps: sources without a fixed weight can hold {p.caps[free_leaves].sum():.4f} but must hold {free_mass:.4f}"
        )
    if not free_leaves.any() and abs(free_mass) > 1e-9:
        raise InfeasibleError(f"fixed weights sum to {1 - free_mass:.4f}, but every source is fixed: they must sum to 1")


def _dirichlet_rows(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """Row-wise Dirichlet with a different concentration per row (alpha: (N, K))."""
    g = rng.gamma(np.maximum(alpha, 1e-12))
    s = g.sum(axis=1, keepdims=True)
    return np.divide(g, s, out=np.zeros_like(g), where=s > 0)


def _strengths(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size=(n, 1)))


def _share(
    rng: np.random.Generator, n: int, prior: np.ndarray, fixed: np.ndarray, lo: float, hi: float, minimum: float, keep: np.ndarray
) -> np.ndarray:
    """Shares over K items: fixed items keep their share; the rest split the remaining mass by a Dirichlet draw.

    Items below `minimum` (and not in `keep`) are zeroed and the free mass renormalised."""
    k = len(prior)
    out = np.zeros((n, k))
    is_fixed = ~np.isnan(fixed)
    out[:, is_fixed] = fixed[is_fixed]
    free = ~is_fixed & (prior > 0)
    mass = 1.0 - fixed[is_fixed].sum()
    if free.any() and mass > 0:
        draw = _dirichlet_rows(rng, prior[free][None, :] / prior[free].sum() * _strengths(rng, n, lo, hi))
        if minimum > 0:
            draw = np.where((draw < minimum / mass) & ~keep[free][None, :], 0.0, draw)
            s = draw.sum(axis=1, keepdims=True)
            draw = np.divide(draw, s, out=np.zeros_like(draw), where=s > 0)
        out[:, free] = draw * mass
    return out


def _renormalise_groups(w: np.ndarray, groups: list[tuple[np.ndarray, float]]) -> np.ndarray:
    for cols, mass in groups:
        s = w[:, cols].sum(axis=1, keepdims=True)
        w[:, cols] = np.divide(w[:, cols] * mass, s, out=np.zeros_like(w[:, cols]), where=s > 0)
    return w


def _apply_caps(w: np.ndarray, caps: np.ndarray, groups: list[tuple[np.ndarray, float]], rounds: int = 20) -> np.ndarray:
    """Clip leaves at their token caps and hand the excess to uncapped non-zero leaves of the same group,
    proportionally (weights only grow, so minimums stay met)."""
    for cols, _ in groups:
        sub = w[:, cols]
        cap = caps[cols][None, :]
        for _ in range(rounds):
            excess = np.clip(sub - cap, 0.0, None).sum(axis=1, keepdims=True)
            if not (excess > 1e-12).any():
                break
            sub = np.minimum(sub, cap)
            room = (sub > 0) & (sub < cap - 1e-15)
            base = np.where(room, sub, 0.0)
            s = base.sum(axis=1, keepdims=True)
            sub = sub + np.divide(base * excess, s, out=np.zeros_like(base), where=s > 0)
        w[:, cols] = sub
    return w


def _exempt_from_minimum(p: SamplingProblem) -> np.ndarray:
    """Leaves whose weight is pinned by a fixed source weight or a fixed topic share: a leaf-level minimum would
    break the pin, so `minimum_source_weight` governs them instead."""
    exempt = ~np.isnan(p.fixed_source[p.source_of_leaf])
    for i, shares in p.topic_fixed.items():
        if (~np.isnan(shares)).any():
            exempt |= p.source_of_leaf == i
    return exempt


def _groups(p: SamplingProblem) -> list[tuple[np.ndarray, float]]:
    """Leaf groups with a fixed total: each fixed source alone, and all free sources together."""
    groups = []
    leaf_fixed = p.fixed_source[p.source_of_leaf]
    for i, w in enumerate(p.fixed_source):
        if not np.isnan(w):
            groups.append((np.flatnonzero(p.source_of_leaf == i), float(w)))
    free_cols = np.flatnonzero(np.isnan(leaf_fixed))
    if free_cols.size:
        groups.append((free_cols, float(1.0 - np.nansum(p.fixed_source))))
    return groups


def sample_candidates(p: SamplingProblem, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, L) candidate mixtures before filtering."""
    source_keep = np.array([bool(p.nonzero[p.source_of_leaf == i].any()) for i in range(len(p.source_names))])
    src = _share(rng, n, p.source_prior, p.fixed_source, p.min_strength, p.max_strength, p.minimum_source_weight, source_keep)
    w = np.zeros((n, len(p.leaves)))
    for i in range(len(p.source_names)):
        cols = np.flatnonzero(p.source_of_leaf == i)
        if i in p.topic_prior:
            share = _share(
                rng, n, p.topic_prior[i], p.topic_fixed[i], p.min_strength, p.max_strength, p.minimum_topic_weight, p.nonzero[cols]
            )
            w[:, cols] = src[:, [i]] * share
        else:
            w[:, cols] = src[:, [i]]
    groups = _groups(p)
    if p.minimum_weight > 0:
        drop = (w < p.minimum_weight) & ~p.nonzero[None, :] & ~_exempt_from_minimum(p)[None, :]
        w = _renormalise_groups(np.where(drop, 0.0, w), groups)
    return _apply_caps(w, p.caps, groups)


def violations(p: SamplingProblem, w: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks (rows violating) per constraint, for filtering and for naming what rejected candidates."""
    out = {
        "weights sum to 1": np.abs(w.sum(axis=1) - 1.0) > 1e-6,
        "token caps (repetition_factor / max_repetition_factor)": (w > p.caps[None, :] + 1e-9).any(axis=1),
        "nonzero_weight": (w[:, p.nonzero] <= 0).any(axis=1),
    }
    if p.minimum_weight > 0:
        check = ~_exempt_from_minimum(p) & ~p.nonzero
        out["minimum_weight"] = ((w[:, check] > 0) & (w[:, check] < p.minimum_weight - 1e-9)).any(axis=1)
    for i, shares in p.topic_fixed.items():
        cols = np.flatnonzero(p.source_of_leaf == i)
        total = w[:, cols].sum(axis=1, keepdims=True)
        actual = np.divide(w[:, cols], total, out=np.zeros_like(w[:, cols]), where=total > 0)
        pinned = ~np.isnan(shares)
        if pinned.any():
            off = (np.abs(actual[:, pinned] - shares[pinned][None, :]) > 1e-6).any(axis=1) & (total[:, 0] > 0)
            out[f"fixed topic weights of {p.source_names[i]}"] = off
    for i, fw in enumerate(p.fixed_source):
        if not np.isnan(fw):
            out[f"fixed weight of {p.source_names[i]}"] = np.abs(w[:, p.source_of_leaf == i].sum(axis=1) - fw) > 1e-6
    if p.existing is not None and len(p.existing):
        near = np.zeros(len(w), dtype=bool)
        for start in range(0, len(w), 4096):
            chunk = w[start : start + 4096]
            d2 = (chunk**2).sum(1)[:, None] + (p.existing**2).sum(1)[None, :] - 2 * chunk @ p.existing.T
            near[start : start + 4096] = (d2 < EXISTING_MIN_DISTANCE**2).any(axis=1)
        out["existing_mix_file (within L2 0.01 of an earlier mixture)"] = near
    return out


def sample_weights(p: SamplingProblem, variants: int, seed: int, sample_multiplier: int = 10) -> np.ndarray:
    """Exactly `variants` unique valid mixtures, (variants, L); same seed, same output."""
    rng = np.random.default_rng(seed)
    batch = max(variants * sample_multiplier, 256)
    kept: list[np.ndarray] = []
    seen: set[bytes] = set()
    rejected: Counter[str] = Counter()
    duplicates = 0
    for _ in range(MAX_BATCHES):
        w = sample_candidates(p, rng, batch)
        bad = np.zeros(len(w), dtype=bool)
        for name, mask in violations(p, w).items():
            rejected[name] += int((mask & ~bad).sum())
            bad |= mask
        w = w[~bad]
        keys = np.round(w, DEDUP_DECIMALS)
        for row, key in zip(w, keys):
            kb = key.tobytes()
            if kb in seen:
                duplicates += 1
                continue
            seen.add(kb)
            kept.append(row)
            if len(kept) == variants:
                return np.array(kept)
    reasons = ", ".join(f"{name}: {count}" for name, count in rejected.most_common() if count) or "none"
    raise InfeasibleError(
        f"could only find {len(kept)} of {variants} unique mixtures after {MAX_BATCHES * batch} candidates "
        f"(rejected by constraint: {reasons}; duplicates: {duplicates}); relax the constraints or ask for fewer variants"
    )


def repetition_factors(p: SamplingProblem, w: np.ndarray) -> np.ndarray:
    """Per leaf, how often its tokens are repeated: max(1, w × max_tokens / tokens)."""
    return np.maximum(1.0, w * p.max_tokens / p.tokens[None, :])


def generate_mixtures(config: ExperimentConfig, token_counts: dict[str, int]) -> list[dict[str, list[float]]]:
    """The swarm's mixtures in the seed's format: one `{leaf: [weight, repetition_factor]}` per variant (over
    {existing, free leaves} when the config reuses a mixture: `olmix_core.reuse.reduced_config`)."""
    if config.reuse is not None:
        from olmix_core.reuse import reduced_config, resolved

        config, token_counts = reduced_config(resolved(config), token_counts)
    p = build_problem(config, token_counts)
    w = sample_weights(p, config.variants, config.seed, config.sample_multiplier)
    reps = repetition_factors(p, w)
    return [
        {leaf: [float(w[i, j]), float(reps[i, j])] for j, leaf in enumerate(p.leaves)}
        for i in range(len(w))
    ]


def mixtures_matrix(mixtures: list[dict[str, list[float]]], leaves: list[str]) -> np.ndarray:
    return np.array([[float(m.get(leaf, [0.0])[0]) for leaf in leaves] for m in mixtures])


def summary_rows(mixtures: list[dict[str, list[float]]], leaves: list[str], prior: dict[str, float] | None = None) -> list[dict]:
    """Per leaf: prior, min/mean/max weight, share of variants using it, max repetition."""
    w = mixtures_matrix(mixtures, leaves)
    reps = np.array([[float(m.get(leaf, [0.0, 1.0])[1]) for leaf in leaves] for m in mixtures])
    rows = []
    for j, leaf in enumerate(leaves):
        rows.append(
            {
                "leaf": leaf,
                "prior": (prior or {}).get(leaf, float("nan")),
                "min": float(w[:, j].min()),
                "mean": float(w[:, j].mean()),
                "max": float(w[:, j].max()),
                "used": float((w[:, j] > 0).mean()),
                "max_repetition": float(reps[:, j].max()),
            }
        )
    return rows
