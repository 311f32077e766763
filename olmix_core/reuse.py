"""Mixture reuse: after a domain-set update, swarm only over what the update touched (olmix paper §4–5).

A config with a `reuse:` block names the previous mixture. `plan_reuse` sorts the current leaves into

* frozen: present before and now, not in `reuse.recompute`, not pinned by a fixed weight. They become one virtual
  domain `existing` whose inner ratios are their previous weights renormalised;
* free: new leaves, recomputed ones, the parts of a partitioned leaf (a previous leaf split into several new ones:
  `web` → `web:a`, `web:b`, or leaves whose paths lie under the previous leaf's paths) and pinned ones.

Removed leaves drop out and the rest is renormalised; an update that only removes needs no swarm: the plan's
`final_weights` is the mixture. Everything downstream works on the reduced domains {existing, free leaves}:
`reduced_config` for sampling, `reduce_weights` for results tables, `reduced_fit_inputs` for the fit, and
`expand_weights` / `expand_mixtures` to go back to real leaves (run specs train on real olmo-core sources at the
frozen ratios; proposals are expanded to `proposed_weights_expanded.json`). Token caps and minimum weights are
translated so that they hold on the expanded mixture (`existing_capacity`, `existing_minimum`).
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from olmix_core.config import EXISTING, ExperimentConfig
from olmix_core.errors import ConfigError, DataError

EXPANDED_FILE = "proposed_weights_expanded.json"  # the final proposal over every leaf, next to proposed_weights.json
PLAN_FILE = "reuse_plan.json"  # in the swarm's store folder
MIN_VARIANTS = 6
RATIO_TOLERANCE = 1e-6  # how far a run's frozen leaves may be from existing's ratios (float rounding only)


class ReusePlan(BaseModel):
    """What a reuse update freezes and frees; also the lineage recorded in the swarm's metadata."""

    mode: Literal["partial", "full"]
    previous: str | None = None
    previous_swarm: str | None = None  # name/group of the swarm the previous proposal came from, when in a store
    previous_fit_id: str | None = None
    frozen: dict[str, float] = {}  # existing's inner ratios (sum 1, or empty)
    free: list[str] = []  # leaves the swarm varies (with `existing`)
    new: list[str] = []
    recomputed: list[str] = []
    partitioned: dict[str, list[str]] = {}  # previous leaf -> the current leaves it was split into
    removed: list[str] = []
    pinned: list[str] = []  # free because a fixed weight pins them
    domains: list[str] = []  # the reduced swarm's domains: existing (when any leaf is frozen) + free
    needs_swarm: bool = True
    final_weights: dict[str, float] | None = None  # the mixture itself when no swarm is needed
    variants: int | None = None  # swarm size chosen when the config leaves `variants` unset

    def summary(self) -> str:
        """A few lines for CLIs and flow summaries."""
        lines = [f"reuse ({self.mode}) of {self.previous or 'frozen ratios in the config'}"]
        if self.previous_swarm:
            lines[0] += f" [swarm {self.previous_swarm}{', ' + self.previous_fit_id if self.previous_fit_id else ''}]"
        if self.frozen:
            lines.append(f"  existing = {len(self.frozen)} frozen leaves: " + ", ".join(f"{k}={v:.4f}" for k, v in self.frozen.items()))
        for label, items in (("new", self.new), ("recomputed", self.recomputed), ("removed", self.removed), ("pinned", self.pinned)):
            if items:
                lines.append(f"  {label}: {', '.join(items)}")
        for old, parts in self.partitioned.items():
            lines.append(f"  partitioned: {old} -> {', '.join(parts)}")
        if self.needs_swarm:
            lines.append(f"  swarm over {len(self.domains)} domains: {', '.join(self.domains)}" + (f"; {self.variants} variants" if self.variants else ""))
        else:
            lines.append("  no swarm needed: the final mixture is the previous one without the removed leaves, renormalised")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ previous mixture
def read_text(url: str, what: str) -> str:
    """A small text file from a path or fsspec URL; a missing one is a ConfigError naming `what`."""
    from olmix_core.store import open_fs

    fs, path = open_fs(url)
    try:
        return fs.cat_file(path).decode()
    except FileNotFoundError:
        raise ConfigError(f"{what}: {url} not found") from None


def _parse_mapping(text: str, url: str, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) if url.endswith((".yaml", ".yml")) else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{what}: {url} is not valid {'YAML' if url.endswith(('.yaml', '.yml')) else 'JSON'} ({e})") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{what}: {url} must be a non-empty mapping leaf -> weight")
    return data


def read_previous(url: str) -> dict[str, float]:
    """The previous mixture `{leaf: weight}` (normalised) from a fit's proposed_weights.json or a JSON/YAML file.

    A reduced proposal of an earlier reuse update (it has an `existing` key) is read through the expanded proposal
    next to it."""
    data = _parse_mapping(read_text(url, "reuse.previous"), url, "reuse.previous")
    if EXISTING in data:
        sibling = posixpath.join(posixpath.dirname(url), EXPANDED_FILE)
        try:
            data = _parse_mapping(read_text(sibling, "reuse.previous"), sibling, "reuse.previous")
        except ConfigError:
            raise ConfigError(
                f"reuse.previous: {url} is a reduced proposal (it has {EXISTING!r}) and {EXPANDED_FILE} is not next to "
                "it; expand it first with `olmix mix expand`"
            ) from None
    out: dict[str, float] = {}
    for leaf, value in data.items():
        v = value[0] if isinstance(value, (list, tuple)) and value else value
        try:
            w = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"reuse.previous: {url}: weight of {leaf!r} is {value!r}, not a number") from None
        if not (math.isfinite(w) and w >= 0):
            raise ConfigError(f"reuse.previous: {url}: weight of {leaf!r} is {w}, must be finite and >= 0")
        out[str(leaf)] = w
    total = sum(out.values())
    if total <= 0:
        raise ConfigError(f"reuse.previous: {url}: every weight is 0")
    return {k: v / total for k, v in out.items()}


def _store_location(url: str) -> tuple[str, str, str] | None:
    """(swarm root URL, swarm name/group, fit id) when `url` is `{root}/{name}/{group}/fits/{fit}/<file>`."""
    parts = url.rstrip("/").split("/")
    if len(parts) >= 5 and parts[-3] == "fits":
        return "/".join(parts[:-3]), f"{parts[-5]}/{parts[-4]}", parts[-2]
    return None


def previous_leaf_paths(url: str) -> dict[str, list[str]]:
    """Leaf -> paths of the swarm that proposed `url` (its stored config.yaml), for path-based partition detection;
    empty when the proposal does not sit in a store."""
    loc = _store_location(url)
    if loc is None:
        return {}
    try:
        data = yaml.safe_load(read_text(loc[0] + "/config.yaml", "reuse.previous"))
    except (ConfigError, yaml.YAMLError):
        return {}
    out: dict[str, list[str]] = {}
    for s in (data or {}).get("sources") or []:
        if s.get("paths"):
            out[s["name"]] = list(s["paths"])
        for t in s.get("topics") or []:
            out[f"{s['name']}:{t['name']}"] = list(t.get("paths") or [])
    return out


def _prefix(pattern: str) -> str:
    """The literal folder part of a path or glob: `s3://b/web/*.npy` -> `s3://b/web/`."""
    cut = min((i for i, c in enumerate(pattern) if c in "*?["), default=len(pattern))
    head = pattern[:cut]
    return head if cut < len(pattern) else head.rstrip("/") + "/"


def _under(paths: list[str], parents: list[str]) -> bool:
    prefixes = [_prefix(p) for p in parents if _prefix(p).strip("/")]
    return any(_prefix(p).startswith(pre) or p.startswith(pre) for p in paths for pre in prefixes)


# ------------------------------------------------------------------------------------------------------- the plan
def _pinned(config: ExperimentConfig) -> set[str]:
    """Leaves whose weight a fixed source weight or a fixed topic share pins: freezing them would break the pin."""
    fixed = config.fixed_weights()
    out: set[str] = set()
    for s in config.sources:
        if s.name in fixed or any(t.weight is not None for t in s.topics or []):
            out.update(leaf for leaf, _, _ in s.leaves())
    return out


def default_variants(n_domains: int) -> int:
    """The paper's swarm size for a reduced swarm: about 3 runs per domain (K ≈ 3(m+1) for m free domains)."""
    return max(MIN_VARIANTS, 3 * n_domains)


def plan_reuse(
    config: ExperimentConfig,
    previous: Mapping[str, float] | None,
    previous_paths: Mapping[str, list[str]] | None = None,
    previous_url: str | None = None,
) -> ReusePlan:
    """The reuse plan of `config` against the previous mixture (pure: no I/O). With `reuse.frozen` set, those
    ratios are existing's (the explicit config); `previous` then only fills in the lineage."""
    reuse = config.reuse
    if reuse is None:
        raise ConfigError("reuse: the config has no reuse block")
    leaves = config.leaf_names()
    sources = {s.name: [leaf for leaf, _, _ in s.leaves()] for s in config.sources}
    recompute = {leaf for name in reuse.recompute for leaf in sources.get(name, [name])}
    pinned = _pinned(config)
    prev = dict(previous or {})
    paths = config.leaf_paths()
    partitioned: dict[str, list[str]] = {}
    for old in [p for p in prev if p not in leaves]:
        parts = [
            leaf
            for leaf in leaves
            if leaf not in prev
            and (config.source_of(leaf) == old or leaf.startswith(old + ":") or _under(paths[leaf], list((previous_paths or {}).get(old, []))))
        ]
        if parts:
            partitioned[old] = parts
    removed = [p for p in prev if p not in leaves and p not in partitioned]
    new = [leaf for leaf in leaves if prev and leaf not in prev and not any(leaf in v for v in partitioned.values())]
    plan = ReusePlan(
        mode=reuse.mode,
        previous=previous_url,
        new=new,
        recomputed=[leaf for leaf in leaves if leaf in recompute],
        partitioned=partitioned,
        removed=removed,
    )
    if reuse.mode == "full":
        frozen: dict[str, float] = {}
    elif reuse.frozen is not None:
        frozen = {leaf: float(reuse.frozen[leaf]) for leaf in leaves if leaf in reuse.frozen}
    else:
        keep = [leaf for leaf in leaves if leaf in prev and leaf not in recompute and leaf not in pinned]
        mass = math.fsum(prev[leaf] for leaf in keep)
        frozen = {leaf: prev[leaf] / mass for leaf in keep} if mass > 0 else {}
    if frozen and not any(r > 0 for r in frozen.values()):
        frozen = {}
    free = [leaf for leaf in leaves if leaf not in frozen]
    plan.frozen = frozen
    plan.free = free
    plan.pinned = [leaf for leaf in free if leaf in pinned and frozen]
    plan.domains = ([EXISTING] if frozen else []) + free
    plan.needs_swarm = bool(free)
    if not plan.needs_swarm:
        plan.final_weights = dict(frozen)
    elif "variants" not in config.model_fields_set:
        plan.variants = default_variants(len(plan.domains))
    return plan


def plan_for(config: ExperimentConfig) -> ReusePlan:
    """The plan of a config with a reuse block, reading `reuse.previous` (and its swarm's config) when set."""
    assert config.reuse is not None
    url = config.reuse.previous
    prev = None
    if url:
        try:
            prev = read_previous(url)
        except ConfigError:
            if config.reuse.frozen is None and config.reuse.mode == "partial":
                raise  # the ratios come from it; otherwise it only fills in the lineage
    plan = plan_reuse(config, prev, previous_leaf_paths(url) if url else None, url)
    if url:
        plan.previous_swarm, plan.previous_fit_id = previous_origin(url)
    return plan


def previous_origin(url: str) -> tuple[str | None, str | None]:
    """(swarm `name/group`, fit id) that proposed `url`: from its store location, else from the verify.json that
    `olmix swarm --output-dir` leaves next to the proposal."""
    loc = _store_location(url)
    if loc is not None:
        return loc[1], loc[2]
    sibling = posixpath.join(posixpath.dirname(url), "verify.json")
    try:
        data = json.loads(read_text(sibling, "reuse.previous"))
    except (ConfigError, json.JSONDecodeError):
        return None, None
    group, fit_id = data.get("group_id"), data.get("fit_id")
    return (str(group) if group else None), (str(fit_id) if fit_id else None)


def resolve_reuse(config: ExperimentConfig) -> tuple[ExperimentConfig, ReusePlan | None]:
    """The explicit config (existing's ratios in `reuse.frozen`, the swarm size in `variants`) and its plan; a
    config without reuse comes back unchanged. Same inputs, same explicit config."""
    if config.reuse is None:
        return config, None
    plan = plan_for(config)
    data = config.model_dump(mode="json", exclude_none=True)
    data["reuse"]["frozen"] = plan.frozen
    if plan.variants is not None:
        data["variants"] = plan.variants
    return ExperimentConfig.from_dict(data, "reuse"), plan


def resolved(config: ExperimentConfig) -> ExperimentConfig:
    """`config` with existing's ratios and the swarm size filled in; no I/O when they already are."""
    if config.reuse is None:
        return config
    if config.reuse.frozen is None:
        return resolve_reuse(config)[0]
    if "variants" in config.model_fields_set:
        return config
    data = config.model_dump(mode="json", exclude_none=True)
    data["variants"] = default_variants(len(domains_of(config)))
    return ExperimentConfig.from_dict(data, "reuse")


def frozen_of(config: ExperimentConfig) -> dict[str, float]:
    """Existing's inner ratios; empty when the config does not reuse (no block, `full` mode, nothing frozen)."""
    if config.reuse is None or config.reuse.mode == "full":
        return {}
    if config.reuse.frozen is not None:
        return {k: v for k, v in config.reuse.frozen.items()}
    return plan_for(config).frozen


def domains_of(config: ExperimentConfig) -> list[str]:
    """The swarm's domains: the leaves, or {existing, free leaves} when the config reuses a mixture."""
    frozen = frozen_of(config)
    if not frozen:
        return config.leaf_names()
    return [EXISTING] + [leaf for leaf in config.leaf_names() if leaf not in frozen]


# ---------------------------------------------------------------------------------------------- reduced <-> leaves
def expand_weights(config: ExperimentConfig, weights: Mapping[str, float]) -> dict[str, float]:
    """A mixture over the reduced domains as one over every leaf: existing's weight × the frozen ratios."""
    frozen = frozen_of(config)
    w_e = float(weights.get(EXISTING, 0.0))
    if EXISTING in weights and not frozen:
        raise DataError(f"mixture has {EXISTING!r} but the config freezes no leaf (reuse)")
    out = {leaf: 0.0 for leaf in config.leaf_names()}
    for d, w in weights.items():
        if d == EXISTING:
            continue
        if d not in out:
            raise DataError(f"mixture names {d!r}, neither {EXISTING!r} nor a leaf of the config")
        if d in frozen:
            raise DataError(f"mixture gives {d!r} its own weight, but it is a frozen part of {EXISTING!r}")
        out[d] = float(w)
    for leaf, r in frozen.items():
        out[leaf] = w_e * r
    return out


def reduce_weights(config: ExperimentConfig, weights: Mapping[str, float]) -> dict[str, float] | str:
    """A run's leaf weights as reduced-domain weights (existing = the sum of the frozen leaves), or why they are
    not a mixture of this reuse swarm (frozen leaves off existing's ratios). Reduced weights pass through."""
    frozen = frozen_of(config)
    if not frozen or EXISTING in weights:
        return dict(weights)
    try:
        parts = {leaf: float(weights.get(leaf, 0.0)) for leaf in frozen}
    except (TypeError, ValueError):
        return f"weights of the frozen leaves are not numbers: { {k: weights.get(k) for k in frozen} }"
    total = math.fsum(parts.values())
    off = [leaf for leaf, r in frozen.items() if abs(parts[leaf] - total * r) > RATIO_TOLERANCE]
    if off:
        return f"frozen leaves {off} are not at {EXISTING!r}'s ratios (a run of another mixture)"
    out = {EXISTING: total}
    out.update({d: w for d, w in weights.items() if d not in frozen})
    return out


def expand_mixtures(config: ExperimentConfig, mixtures: list[dict[str, list[float]]], token_counts: Mapping[str, int]) -> list[dict[str, list[float]]]:
    """Reduced swarm mixtures (`{domain: [weight, repetition]}`) as leaf mixtures for run specs: every frozen leaf at
    existing's weight × its ratio, with its own repetition factor `max(1, weight × target_tokens / tokens)`."""
    target = config.target_tokens
    out = []
    for mix in mixtures:
        if EXISTING not in mix:
            out.append(mix)
            continue
        leaf_w = expand_weights(config, {d: float(v[0] if isinstance(v, (list, tuple)) else v) for d, v in mix.items()})
        out.append({leaf: [w, max(1.0, w * target / token_counts[leaf])] for leaf, w in leaf_w.items()})
    return out


def existing_capacity(frozen: Mapping[str, float], token_counts: Mapping[str, float], repetition: Mapping[str, float]) -> float:
    """Tokens existing can supply at its ratios: min over parts of tokens × repetition cap / ratio, so
    existing's max weight (capacity / target tokens) keeps every part within its own cap."""
    caps = [token_counts[leaf] * repetition[leaf] / r for leaf, r in frozen.items() if r > 0]
    return min(caps)


def existing_minimum(frozen: Mapping[str, float], min_weight: float) -> float:
    """Existing's smallest non-zero weight for every non-zero part to get at least `min_weight`."""
    positive = [r for r in frozen.values() if r > 0]
    return min_weight / min(positive) if min_weight > 0 and positive else 0.0


def reduced_config(config: ExperimentConfig, token_counts: Mapping[str, int]) -> tuple[ExperimentConfig, dict[str, int]]:
    """The config the reduced swarm is sampled from, and its token counts: the free leaves' sources as they are
    (topics trimmed to the free ones) plus one source `existing` (never zero) whose count is its capacity
    (`existing_capacity`, at repetition 1).

    The sources' prior is uniform: existing would otherwise dwarf a new source by token count and the few runs
    would barely vary it, leaving the fit to extrapolate. A `manual_prior` is split between existing and the free
    part of each source by tokens."""
    frozen = frozen_of(config)
    if not frozen:
        return config, dict(token_counts)
    rep_caps = config.leaf_repetition_caps()
    capacity = int(existing_capacity(frozen, token_counts, rep_caps))
    if capacity <= 0:
        raise ConfigError(f"reuse: {EXISTING!r} has no tokens at its ratios")
    data = config.model_dump(mode="json", exclude_none=True)
    kept_sources = []
    prior: dict[str, float] = {}
    user_prior = config.manual_prior or {}
    existing_prior = 0.0
    for s, raw in zip(config.sources, data["sources"]):
        leaves = [leaf for leaf, _, _ in s.leaves()]
        free = [leaf for leaf in leaves if leaf not in frozen]
        src_tokens = sum(token_counts[leaf] for leaf in leaves)
        frozen_tokens = sum(token_counts[leaf] for leaf in leaves if frozen.get(leaf, 0) > 0)
        share = frozen_tokens / src_tokens if src_tokens else 0.0
        existing_prior += user_prior.get(s.name, 0.0) * share if config.manual_prior else 0.0
        if not free:
            continue
        if s.topics:
            raw = {**raw, "topics": [t for t, leaf in zip(raw["topics"], leaves) if leaf in free]}
        kept_sources.append(raw)
        prior[s.name] = user_prior.get(s.name, 0.0) * (1 - share) if config.manual_prior else 1.0
    paths = sorted({p for leaf, ps in config.leaf_paths().items() if leaf in frozen for p in ps})
    kept_names = {s["name"] for s in kept_sources}
    kept_leaves = {leaf for leaf in config.leaf_names() if leaf not in frozen}
    data.update(
        sources=[{"name": EXISTING, "paths": paths, "max_repetition_factor": 1.0}, *kept_sources],
        manual_prior={EXISTING: existing_prior if config.manual_prior else 1.0, **prior},
        fixed_source_weights={k: v for k, v in config.fixed_source_weights.items() if k in kept_names},
        nonzero_weight=[EXISTING, *[n for n in config.nonzero_weight if n in kept_names or n in kept_leaves]],
    )
    counts = {EXISTING: capacity, **{leaf: int(token_counts[leaf]) for leaf in kept_leaves}}
    data["priors"] = {"token_counts": counts}
    for key in ("reuse", "existing_mix_file"):
        data.pop(key, None)
    return ExperimentConfig.from_dict(data, "reuse (reduced swarm)"), counts


def reduced_fit_inputs(config: ExperimentConfig, options: Any, priors: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Fit options (`FitOptions`, or a mapping of them) and priors over the reduced domains, with the expanded
    mixture's token caps: existing's token count is its capacity at the options' repetition caps (its own repetition
    factor 1), its prior its parts' size. Without reuse both come back as given."""
    from olmix_core.fit.options import FitOptions

    frozen = frozen_of(config)
    if not frozen:
        return options, dict(priors)
    opts = FitOptions.from_dict(options)
    c = opts.constraints
    counts = priors["token_counts"]
    rep = c.repetition_factor if c.repetition_factor is not None else 1.0
    rep_of = {leaf: float(rep.get(leaf, 1.0) if isinstance(rep, dict) else rep) for leaf in config.leaf_names()}
    free = [leaf for leaf in config.leaf_names() if leaf not in frozen]
    token_counts = {EXISTING: existing_capacity(frozen, counts, rep_of), **{leaf: counts[leaf] for leaf in free}}
    sizes = {EXISTING: float(sum(counts[leaf] for leaf in frozen)), **{leaf: float(counts[leaf]) for leaf in free}}
    total = sum(sizes.values())
    constraints = c.model_copy(update={
        "repetition_factor": {EXISTING: 1.0, **{leaf: rep_of[leaf] for leaf in free}},
        "fixed_weights": {k: v for k, v in c.fixed_weights.items() if k not in frozen},
    })
    opts = opts.model_copy(update={"constraints": constraints})
    return opts, {"relative_sizes": {k: v / total for k, v in sizes.items()}, "token_counts": token_counts}


# --------------------------------------------------------------------------------------------- proposals
class ExpandedProposal(BaseModel):
    """What `propose_expanded` settled on: the reduced proposal, the expanded one, and how the minimum was met."""

    reduced: dict[str, float]
    expanded: dict[str, float]
    existing_minimum: float = 0.0
    branches: dict[str, float] = {}  # existing fixed at a value -> penalised predicted objective (minimum weights)
    files: dict[str, str] = {}


def _write_json(url: str, obj: Any) -> str:
    from olmix_core.store import open_fs

    fs, path = open_fs(url)
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(path, (json.dumps(obj, indent=2) + "\n").encode())
    return url


def propose_expanded(
    config: ExperimentConfig, fit: Any, ratios: str, metrics: str, fit_dir: str, options: Any, priors: Mapping[str, Any]
) -> tuple[Any, ExpandedProposal]:
    """Finish a reduced fit (`fit`: run_fit's FitResult with reduced `options`/`priors`) so the minimum weight holds on
    the expanded mixture, then write proposed_weights_expanded.json next to proposed_weights.json.

    Every non-zero part of existing needs `existing × ratio >= min_weight`, so existing is 0 or at least
    `existing_minimum`. When the proposal puts existing strictly between, the best feasible mixture has existing at
    one of those two ends (the objective along existing is minimised outside the gap): both are proposed from the
    saved models with existing fixed, and the better prediction wins (its files are the fit folder's)."""
    from olmix_core.errors import InfeasibleError
    from olmix_core.fit import propose_from_fit
    from olmix_core.fit.options import FitOptions

    options = FitOptions.from_dict(options)
    frozen = frozen_of(config)
    mw = float(options.constraints.min_weight_per_domain)
    m_e = existing_minimum(frozen, mw)
    branches: dict[str, float] = {}
    w = fit.proposed_weights or {}

    def pinned(value: float) -> FitOptions:
        c = options.constraints
        return options.model_copy(update={"constraints": c.model_copy(update={"fixed_weights": {**c.fixed_weights, EXISTING: value}})})

    if frozen and mw > 0 and 0 < w.get(EXISTING, 0.0) < m_e - 1e-12:
        results = {}
        for value in (0.0, m_e):
            if value > 1.0:
                continue
            try:
                results[value] = propose_from_fit(ratios, metrics, fit_dir, pinned(value), dict(priors))
            except InfeasibleError:
                continue
            branches[f"{value:.6g}"] = float(results[value].proposal.penalised)
        if not results:
            raise InfeasibleError(f"fit.constraints.min_weight_per_domain {mw}: {EXISTING!r} can be neither 0 nor >= {m_e:.4g} (its parts' minimum)")
        best = min(results, key=lambda v: results[v].proposal.penalised)
        if best != list(results)[-1]:  # the folder holds the last branch's files: rewrite the winner's
            results[best] = propose_from_fit(ratios, metrics, fit_dir, pinned(best), dict(priors))
        fit.proposal, fit.predicted = results[best].proposal, results[best].predicted
    reduced = dict(fit.proposed_weights or {})
    expanded = expand_weights(config, reduced) if frozen else reduced
    out = ExpandedProposal(reduced=reduced, expanded=expanded, existing_minimum=m_e, branches=branches)
    out.files["proposed_weights_expanded"] = _write_json(f"{str(fit_dir).rstrip('/')}/{EXPANDED_FILE}", expanded)
    return fit, out


def write_final_weights(url: str, weights: Mapping[str, float]) -> str:
    return _write_json(url, dict(weights))


def record_plan(swarm: Any, plan: ReusePlan | None) -> None:
    """reuse_plan.json in the swarm's folder and the lineage in metadata.json (`reuse`), for summaries."""
    if plan is None:
        return
    from olmix_core.metadata import update_metadata

    swarm.store.write_json(swarm.key(PLAN_FILE), plan.model_dump(mode="json"))
    update_metadata(swarm, reuse=lineage(plan).model_dump(mode="json"))


class ReuseLineage(BaseModel):
    """metadata.json's `reuse`: which previous swarm/fit this update reused, and how (the plan in short)."""

    mode: Literal["partial", "full"]
    previous: str | None = None
    previous_swarm: str | None = None
    previous_fit_id: str | None = None
    domains: list[str] = []
    frozen: list[str] = []
    new: list[str] = []
    recomputed: list[str] = []
    partitioned: dict[str, list[str]] = {}
    removed: list[str] = []
    needs_swarm: bool = True

    def line(self) -> str:
        """One line for summaries."""
        origin = " ".join(x for x in (self.previous_swarm, self.previous_fit_id) if x) or "?"
        what = f"{len(self.frozen)} leaves frozen in {EXISTING}" if self.frozen else "nothing frozen"
        swarm = f"swarm over {', '.join(self.domains)}" if self.needs_swarm else "no swarm needed"
        return f"reuse ({self.mode}) of {self.previous} [from {origin}]: {what}; {swarm}"


def lineage(plan: ReusePlan) -> ReuseLineage:
    return ReuseLineage(**{k: getattr(plan, k) for k in ReuseLineage.model_fields if k != "frozen"}, frozen=sorted(plan.frozen))
