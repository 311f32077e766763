"""Typed experiment configs (pydantic v2), compatible with the seed's / regmixer's YAML files.

Unknown keys are rejected rather than ignored: a misspelt constraint silently dropped would produce a swarm
that looks right and is not.
"""

from __future__ import annotations

import enum
import logging
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from olmix_core.errors import ConfigError
from olmix_core.fit.options import RULE_ERROR, FitOptions
from olmix_core.names import CONTROL_RE, check_name, max_swarm_name_length

DEFAULT_STORAGE_ROOT = ".olmix/store"
log = logging.getLogger("olmix.config")
STORE_PROTOCOLS = ("s3", "gs", "gcs", "file")  # storage_root / evaluation.results_prefix: a local path or one of these


def _allows(annotation: Any, kind: type) -> bool:
    """Whether a field's annotation admits `kind` (through Optional / unions)."""
    if annotation is kind:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_allows(a, kind) for a in typing.get_args(annotation))
    return False


def _check_values(value: Any, free_text: bool = False) -> None:
    """Every string (keys included) free of control characters, every float finite; raises ValueError."""
    if isinstance(value, str):
        bad = CONTROL_RE.search(value.replace("\n", "").replace("\t", "") if free_text else value)
        if bad:
            raise ValueError(f"{value!r} contains a control character ({bad.group()!r}); values reach paths, names and scripts")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number (got {value})")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_values(k)
            _check_values(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_values(v)


class _Strict(BaseModel):
    """Unknown keys rejected; no YAML `true` taken for a number; no control characters in any string, no NaN or
    infinity in any number (they would reach a path, a shell script or the optimiser)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    _free_text: ClassVar[frozenset[str]] = frozenset()  # fields that may hold newlines and tabs (never used in a path or script)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(v, bool) and field is not None and not _allows(field.annotation, bool):
            if _allows(field.annotation, int) or _allows(field.annotation, float):
                raise ValueError(f"expected a number, got {v!r} (YAML true/false is not a number)")
        return v

    @field_validator("*", mode="after")
    @classmethod
    def _clean_values(cls, v: Any, info: ValidationInfo) -> Any:
        if not isinstance(v, BaseModel):
            _check_values(v, free_text=info.field_name in cls._free_text)
        return v


class Priority(str, enum.Enum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class DType(str, enum.Enum):
    uint16 = "uint16"
    uint32 = "uint32"

    @property
    def itemsize(self) -> int:
        return 2 if self is DType.uint16 else 4


def _unit_weight(v: float | None, what: str) -> float | None:
    if v is not None and not 0.0 <= v <= 1.0:
        raise ValueError(f"{what} {v} must be in [0, 1]")
    return v


def _repetition(v: float | None) -> float | None:
    if v is not None and v < 1.0:
        raise ValueError(f"max_repetition_factor {v} must be >= 1")
    return v


class TopicConfig(_Strict):
    """A topic inside a source; its leaf is named `source:topic`."""

    name: str = Field(description="Topic name; the leaf is `source:topic`.")
    paths: list[str] = Field(min_length=1, description="Token files, folders or globs (local, `s3://`, `gs://`).")
    weight: float | None = Field(None, description="Fixes the topic's share inside its source, in [0, 1].")
    max_repetition_factor: float | None = Field(
        None, description="Repetition cap of this topic (≥ 1); default: its source's `max_repetition_factor`."
    )

    _name = field_validator("name")(lambda v: check_name(v, "topic name"))

    _weight = field_validator("weight")(lambda v: _unit_weight(v, "weight"))
    _rep = field_validator("max_repetition_factor")(lambda v: _repetition(v))


class SourceConfig(_Strict):
    """A data source: either `paths` (one leaf) or `topics` (one leaf per topic)."""

    name: str = Field(description="Source name.")
    paths: list[str] | None = Field(
        None, description="Files, folders or globs (local, `s3://`, `gs://`); exactly one of `paths` / `topics`."
    )
    topics: list[TopicConfig] | None = Field(None, description="Topics of this source, one leaf each.")
    max_repetition_factor: float = Field(1.0, description="How often this source's tokens may be repeated (≥ 1).")
    weight: float | None = Field(None, description="Fixes the source's share in every mixture, in [0, 1].")

    _name = field_validator("name")(lambda v: check_name(v, "source name"))

    _weight = field_validator("weight")(lambda v: _unit_weight(v, "weight"))
    _rep = field_validator("max_repetition_factor")(lambda v: _repetition(v))

    @model_validator(mode="after")
    def _paths_xor_topics(self) -> "SourceConfig":
        has_paths = bool(self.paths)
        has_topics = bool(self.topics)
        if has_paths == has_topics:
            raise ValueError(f"source {self.name!r} needs exactly one of `paths` or `topics` (got {'both' if has_paths else 'neither'})")
        if self.topics:
            names = [t.name for t in self.topics]
            dups = sorted({n for n in names if names.count(n) > 1})
            if dups:
                raise ValueError(f"source {self.name!r} has duplicate topic names: {dups}")
            fixed = sum(t.weight or 0.0 for t in self.topics)
            if fixed > 1.0 + 1e-9:
                raise ValueError(f"source {self.name!r}: fixed topic weights sum to {fixed:.4f} > 1")
        return self

    def leaves(self) -> list[tuple[str, list[str], float]]:
        """(leaf name, paths, max repetition factor) for each leaf of this source."""
        if self.paths:
            return [(self.name, list(self.paths), self.max_repetition_factor)]
        return [
            (f"{self.name}:{t.name}", list(t.paths), t.max_repetition_factor or self.max_repetition_factor)
            for t in self.topics or []
        ]


class PriorsConfig(_Strict):
    """Known token counts per leaf: skips listing the files."""

    token_counts: dict[str, int] = Field(description="`{leaf: tokens}` for every leaf (output of `olmix priors compute`).")
    relative_sizes: dict[str, float] | None = Field(None, description="`{leaf: share of all tokens}`.")


class WandbConfig(_Strict):
    """WandB logging of the proxy runs (online needs `WANDB_API_KEY` in the environment)."""

    mode: Literal["off", "offline", "online"] = Field("off", description="`off`, `offline` or `online`.")
    project: str = Field("olmix", description="WandB project.")
    entity: str | None = Field(None, description="WandB entity (user or team); default: the API key's.")


class TrainingConfig(_Strict):
    """How each proxy model is trained (olmo-core). Batch sizes are in tokens, as olmo-core counts them."""

    model: str | None = Field(None, description=(
        "olmo-core preset (`olmo2_1M`, `olmo2_14M`, `olmo2_30M`, `olmo2_60M`, `olmo2_190M`, `olmo2_1B`, …) or `tiny`; "
        "default: a custom shape from `d_model`/`n_layers`/`n_heads` if any is set, else the `proxy_model_id` preset, "
        "else a tiny default (64/2/4)."
    ))
    d_model: int | None = Field(None, description="Custom shape: model width (used when no preset applies).")
    n_layers: int | None = Field(None, description="Custom shape: number of layers.")
    n_heads: int | None = Field(None, description="Custom shape: number of attention heads.")
    vocab_size: int | None = Field(None, description="Custom vocabulary size (local/demo data); overrides a named tokenizer's.")
    eos_token_id: int | None = Field(None, description="Custom vocabulary: end-of-document token id.")
    pad_token_id: int | None = Field(None, description="Custom vocabulary: padding token id.")
    global_batch_size: int | None = Field(None, description="Tokens per optimizer step; default: 16 sequences.")
    microbatch_size: int | None = Field(None, description="Tokens per micro-batch (per rank); default: the global batch.")
    learning_rate: float = Field(4e-3, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.1, description="AdamW weight decay.")
    warmup_fraction: float = Field(0.1, description="Share of steps in linear warm-up (then cosine decay).")
    checkpoint_interval: int | None = Field(None, description="Steps between checkpoints; default: only at the end.")
    threads_per_run: int = Field(1, description="Torch threads per local run.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="`auto` (a GPU when there is one), `cpu` or `cuda`.")
    wandb: WandbConfig = Field(default_factory=WandbConfig, description="WandB logging.")
    checkpoint_root: str | None = Field(None, description="Where run checkpoints go; default: `{storage_root}/checkpoints`.")

    @field_validator("d_model", "n_layers", "n_heads", "vocab_size", "global_batch_size", "microbatch_size", "checkpoint_interval", "threads_per_run")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v

    @field_validator("eos_token_id", "pad_token_id", "weight_decay")
    @classmethod
    def _non_negative(cls, v: float | None) -> float | None:
        if v is not None and v < 0:
            raise ValueError(f"must be >= 0 (got {v})")
        return v

    @field_validator("learning_rate")
    @classmethod
    def _lr(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v

    @field_validator("warmup_fraction")
    @classmethod
    def _warmup(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"must be in [0, 1) (got {v})")
        return v


# What `olmix train` builds, checked here so `launch validate`, `launch run` and the trainer share one rule -----------
TOKENIZERS = ("dolma2", "dolma2_sigdig", "gpt-neox", "gpt_neox", "gpt_neox_olmo_dolma_v1_5", "gpt2")
DEFAULT_BATCH_SEQUENCES = 16
TINY_SHAPE = {"d_model": 64, "n_layers": 2, "n_heads": 4}  # ~180k parameters with the demo's 258-token vocabulary
CUSTOM_MODELS = {"tiny", "custom"}
_PRESET_RE = re.compile(r"^(olmo2|olmo3)_\d+(\.\d+)?[MB](_v\d+)?$")
_SEED_ALIAS_RE = re.compile(r"^olmo_(\d+(?:\.\d+)?)([mb])$", re.IGNORECASE)  # the seed's names: olmo_30m, olmo_1b


def batch_tokens(training: TrainingConfig, sequence_length: int) -> tuple[int, int]:
    """(global, micro) batch sizes in tokens; ValueError naming the field when they do not split into sequences."""
    seq = sequence_length
    gbs = training.global_batch_size or DEFAULT_BATCH_SEQUENCES * seq
    mbs = training.microbatch_size or gbs
    if gbs % seq:
        raise ValueError(f"training.global_batch_size {gbs} must be a multiple of sequence_length {seq} (it counts tokens)")
    if mbs % seq or gbs % mbs:
        raise ValueError(f"training.microbatch_size {mbs} must be a multiple of sequence_length {seq} and divide global_batch_size {gbs}")
    return gbs, mbs


def check_tokenizer(tokenizer: str, training: TrainingConfig) -> None:
    """A named tokenizer, or `custom` with a vocabulary (`training.vocab_size`, `eos_token_id`) that holds its ids."""
    t = training
    if tokenizer == "custom" or t.vocab_size is not None:
        if t.vocab_size is None or t.eos_token_id is None:
            raise ValueError("training: a custom tokenizer needs training.vocab_size and training.eos_token_id")
        pad = t.pad_token_id if t.pad_token_id is not None else t.eos_token_id
        for field, value in (("eos_token_id", t.eos_token_id), ("pad_token_id", pad)):
            if not 0 <= value < t.vocab_size:
                raise ValueError(f"training.{field} {value} is outside the vocabulary (vocab_size {t.vocab_size})")
    elif tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer {tokenizer!r} is not known; use one of {sorted(TOKENIZERS)} or 'custom'")


def preset_spelling(name: str) -> str:
    """An olmo-core preset name for `name`, accepting the seed's aliases (`olmo_30m` -> `olmo2_30M`); ValueError
    when it cannot be one (the trainer also checks that olmo-core has it)."""
    m = _SEED_ALIAS_RE.match(name)
    if m:
        name = f"olmo2_{m.group(1)}{m.group(2).upper()}"
    if not _PRESET_RE.match(name):
        raise ValueError(f"model {name!r} is not an olmo-core preset (e.g. olmo2_1M, olmo2_14M, olmo2_30M, olmo2_190M, olmo2_1B)")
    return name


def model_choice(training: TrainingConfig, proxy_model_id: str | None) -> tuple[str, dict[str, int]]:
    """(preset name, {}) or ("custom", shape): `training.model` if a preset; else an explicit shape; else
    `proxy_model_id`; else the tiny default shape."""
    t = training
    shape = {k: v for k, v in (("d_model", t.d_model), ("n_layers", t.n_layers), ("n_heads", t.n_heads)) if v is not None}
    if t.model is not None and t.model not in CUSTOM_MODELS:
        return preset_spelling(t.model), {}
    if t.model is None and not shape and proxy_model_id:
        return preset_spelling(proxy_model_id), {}
    shape = {**TINY_SHAPE, **shape}
    if shape["d_model"] % shape["n_heads"]:
        raise ValueError(f"training.d_model {shape['d_model']} must be divisible by training.n_heads {shape['n_heads']}")
    return "custom", shape


def check_store_url(value: str, what: str) -> str:
    """A local path, or a URL of a store fsspec can open here (s3://bucket/..., gs://bucket/...)."""
    if "://" in value:
        protocol, _, rest = value.partition("://")
        if protocol not in STORE_PROTOCOLS:
            raise ValueError(f"{what} {value!r}: unknown protocol {protocol!r} (use a local path, s3://bucket/prefix or gs://bucket/prefix)")
        if protocol != "file" and not rest.split("/", 1)[0]:
            raise ValueError(f"{what} {value!r} has no bucket (use {protocol}://bucket/prefix)")
    elif not value.strip():
        raise ValueError(f"{what} is empty")
    return value


class BeakerConfig(_Strict):
    """Beaker jobs: where they run, on what, paid by whom (the regmixer-style top-level keys load here)."""

    budget: str | None = Field(None, description="Beaker budget.")
    workspace: str | None = Field(None, description="Beaker workspace.")
    cluster: str = Field("local", description="Beaker cluster (or the kind of storage checkpoints go to).")
    clusters: list[str] = Field(default_factory=list, description="Clusters to allow; default: `cluster`.")
    priority: Priority = Field(Priority.normal, description="`low`, `normal`, `high` or `urgent`.")
    preemptible: bool = Field(True, description="Beaker jobs may be preempted (and are resubmitted).")
    nodes: int = Field(1, description="Nodes per proxy run (> 1: replicas with leader selection, under torchrun).")
    gpus: int = Field(0, description="GPUs per node (> 1 runs under torchrun).")
    weka: bool = Field(False, description="Mount Weka (checkpoints under `/weka/...` on jupiter/saturn).")
    image: str = Field("ai2/olmix", description="Beaker image with olmix installed, or `docker://<image>`.")
    user: str | None = Field(None, description="Beaker user: checkpoint paths (`{user}`) and default secret names (`{user}_{VAR}`).")
    secrets: dict[str, str] = Field(default_factory=dict, description=(
        "`{ENV_VAR: secret name}` injected into jobs (e.g. `WANDB_API_KEY: my_wandb`); values never leave Beaker."
    ))
    max_submit_workers: int = Field(10, description="Experiments created in parallel.")

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must be >= 0 (got {v})")
        return v

    @field_validator("max_submit_workers")
    @classmethod
    def _workers(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v


class OfflineEvalConfig(_Strict):
    """`olmix eval launch --backend local`: per-domain loss of each finished run's latest checkpoint on token files."""

    sources: dict[str, list[str]] = Field(
        default_factory=dict, description="`{label: [token files]}` to evaluate on; default: `evaluation.sources`."
    )
    bytes_per_token: dict[str, float] = Field(default_factory=dict, description=(
        "`{label: mean UTF-8 bytes per token}`: enables `lm:<label>:bpb` (custom byte-level vocabularies need none)."
    ))
    max_tokens: int | None = Field(None, description="Tokens per eval set (whole documents, at least one); default: all.")
    batch_size: int = Field(16, description="Documents per forward pass.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="`auto`, `cpu` or `cuda`.")

    @field_validator("sources")
    @classmethod
    def _labels(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for label, paths in v.items():
            check_name(label, "evaluation.offline.sources label")
            if not paths:
                raise ValueError(f"label {label!r} has no token files")
        return v

    @field_validator("bytes_per_token")
    @classmethod
    def _bpt(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not x > 0}
        if bad:
            raise ValueError(f"bytes per token must be > 0 (got {bad})")
        return v

    @field_validator("max_tokens", "batch_size")
    @classmethod
    def _pos(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v


class EvaluationConfig(_Strict):
    """How the proxies are evaluated: in-loop validation sets, the offline eval script, the local offline eval."""

    sources: dict[str, list[str]] = Field(default_factory=dict, description=(
        "In-loop validation sets: `{label: [token files]}`; logged as `eval/lm/<label>/CE loss`."
    ))
    interval: int | None = Field(None, description="Steps between in-loop evaluations; default: only at the end.")
    tasks: list[str] | None = Field(None, description=(
        "Tasks for the emitted `olmo-cookbook-eval` script; default: the 109 olmo3 offline BPB tasks."
    ))
    cluster: str = Field("aus", description="Cluster passed to `olmo-cookbook-eval -c`.")
    model_backend: str = Field("olmo_core", description="Model backend passed to `olmo-cookbook-eval -v`.")
    checkpoint_roots: dict[str, str] = Field(default_factory=dict, description=(
        "Override the checkpoint root per storage kind (`s3`, `gcs`, `weka`, `local`) in eval scripts."
    ))
    results_prefix: str | None = Field(None, description=(
        "Where offline eval dashboards (`{prefix}/{dashboard}/{run}/…/metrics-all.jsonl`) live; default: `{storage_root}/evals`."
    ))
    offline: OfflineEvalConfig = Field(default_factory=OfflineEvalConfig, description="`olmix eval launch --backend local`.")

    @field_validator("sources")
    @classmethod
    def _labels(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for label in v:
            check_name(label, "evaluation.sources label")
        return v

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v

    @field_validator("results_prefix")
    @classmethod
    def _store_url(cls, v: str | None) -> str | None:
        return v if v is None else check_store_url(v, "evaluation.results_prefix")


# Keys of earlier versions (the seed's / regmixer's top level) -> their place now: (block, key).
LEGACY_KEYS: dict[str, tuple[str, str]] = {
    **{k: ("beaker", k) for k in ("budget", "workspace", "cluster", "priority", "preemptible", "nodes", "gpus", "weka")},
    "eval_sources": ("evaluation", "sources"),
    "eval_interval": ("evaluation", "interval"),
    "eval_tasks": ("evaluation", "tasks"),
    "eval_cluster": ("evaluation", "cluster"),
    "eval_model_backend": ("evaluation", "model_backend"),
    "checkpoint_roots": ("evaluation", "checkpoint_roots"),
    "eval_results_prefix": ("evaluation", "results_prefix"),
    "offline_eval": ("evaluation", "offline"),
}


def _default(block: str, key: str) -> Any:
    """A block field's default as it appears in a dumped config (so a dump of defaults never clashes)."""
    model = {"beaker": BeakerConfig, "evaluation": EvaluationConfig}[block]
    value = model.model_fields[key].get_default(call_default_factory=True)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def move_legacy_keys(data: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """A copy of `data` with the top-level keys of earlier versions moved into their block, and one logged
    deprecation note naming each new key. A key set in both places is an error naming both."""
    moved = [k for k in LEGACY_KEYS if k in data]
    if not moved:
        return data
    out = dict(data)
    for key in moved:
        block, new = LEGACY_KEYS[key]
        target = out.get(block)
        if isinstance(target, BaseModel):
            target = target.model_dump(exclude_unset=True)
        target = dict(target) if isinstance(target, dict) else ({} if target is None else target)
        if not isinstance(target, dict):
            return data  # a malformed block: let validation name it
        value = out.pop(key)
        if new in target and target[new] != value and target[new] != _default(block, new):
            raise ValueError(f"{key}: set both at the top level and as {block}.{new}; keep only {block}.{new}")
        target[new] = value
        out[block] = target
    for key in moved:
        log.warning("%s: config key %r is deprecated: use %r", source, key, ".".join(LEGACY_KEYS[key]))
    return out


EXISTING = "existing"  # the virtual domain of a reuse update: the frozen leaves at their previous ratios


class ReuseConfig(_Strict):
    """Mixture reuse after a domain-set update (see docs/reuse.md and `olmix_core.reuse`).

    `partial` freezes every leaf present in the previous mixture and in this config (and not in `recompute`) into one
    virtual domain `existing` at the previous ratios renormalised, and swarms over {existing, free leaves} only.
    `full` ignores the previous mixture for the swarm (every current leaf is free, as without `reuse`) and only keeps
    the lineage: the baseline that reuse is measured against.
    """

    previous: str | None = Field(None, description=(
        "`proposed_weights.json` of a previous fit, or a `{leaf: weight}` JSON/YAML file (path or fsspec URL)."
    ))
    recompute: list[str] = Field(default_factory=list, description="Leaves or sources to free again (changed data).")
    mode: Literal["partial", "full"] = Field("partial", description=(
        "`partial`: swarm over `existing` plus the free leaves; `full`: every current leaf is free (the baseline)."
    ))
    frozen: dict[str, float] | None = Field(None, description=(
        "`existing`'s inner ratios `{leaf: ratio}` (sum 1), resolved from `previous` by `olmix mix reuse`."
    ))

    @field_validator("frozen")
    @classmethod
    def _frozen(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        bad = {k: w for k, w in v.items() if not (0.0 <= w <= 1.0)}
        if bad:
            raise ValueError(f"ratios must be in [0, 1] (got {bad})")
        if v and abs(sum(v.values()) - 1.0) > 1e-6:
            raise ValueError(f"ratios sum to {sum(v.values()):.6f}, not 1")
        return v

    @model_validator(mode="after")
    def _source(self) -> "ReuseConfig":
        if self.previous is None and self.frozen is None:
            raise ValueError("set `previous` (the previous mixture) or `frozen` (existing's ratios)")
        if self.previous is not None and any(ord(c) < 32 for c in self.previous):
            raise ValueError("previous: control characters are not allowed")
        return self


class ExperimentConfig(_Strict):
    """One swarm: sources, sampling knobs, proxy training, infrastructure, evals, storage."""

    name: str = Field(description="Swarm name; prefix of every run name.")
    description: str = Field("", description="Free text.")
    variants: int = Field(16, description="Number of mixtures (proxy runs); > 0.")
    seed: int = Field(42, description="Sampling seed; run `i` trains with seed `seed + i`.")
    max_tokens: int | None = Field(None, description=(
        "Tokens per proxy run; > 0. Without it, `proxy_model_id` and `chinchilla_multiple` set it."
    ))
    proxy_model_id: str | None = Field(None, description=(
        "olmo-core preset of the proxy (e.g. `olmo2_30M`); with `chinchilla_multiple` sets tokens = "
        "20 × params × multiple when `max_tokens` is absent."
    ))
    chinchilla_multiple: float | None = Field(None, description="See `proxy_model_id`.")
    sequence_length: int = Field(2048, description="Tokens per training sequence.")
    dtype: DType = Field(DType.uint32, description="Token file dtype (`uint16` or `uint32`); token count = bytes // itemsize.")
    tokenizer: str = Field("dolma2", description=(
        "`dolma2`, `dolma2_sigdig`, `gpt-neox`, `gpt2`, or `custom` (see `training.vocab_size`)."
    ))
    sources: list[SourceConfig] = Field(description="The data sources; at least one, unique names.")

    # sampling
    mix_temperature: float = Field(1.0, description="Temperature applied to priors (p^T, renormalised).")
    source_mix_temperature: float | None = Field(
        None, description="Temperature of the source-level prior; default: `mix_temperature`."
    )
    topic_mix_temperature: float | None = Field(
        None, description="Temperature of the topic-level priors; default: `mix_temperature`."
    )
    min_strength: float = Field(0.1, description=(
        "Lower end of the Dirichlet concentration range (log-uniform); low = sparse, spread-out mixtures."
    ))
    max_strength: float = Field(5.0, description="Upper end of the Dirichlet concentration range.")
    minimum_weight: float = Field(0.0, description="Leaf weights below it become 0.")
    minimum_source_weight: float = Field(0.0, description="Source weights below it become 0.")
    minimum_topic_weight: float = Field(0.0, description="Topic shares (inside a source) below it become 0.")
    repetition_factor: float = Field(1.0, description=(
        "Global repetition cap (≥ 1); a leaf's cap is `min(repetition_factor, its max_repetition_factor)`."
    ))
    nonzero_weight: list[str] = Field(default_factory=list, description="Sources or leaves that must be > 0 in every mixture.")
    fixed_source_weights: dict[str, float] = Field(
        default_factory=dict, description="`{source: weight}` frozen in every mixture; sum ≤ 1."
    )
    manual_prior: dict[str, float] | None = Field(None, description="`{source: weight}` replaces the token-count prior.")
    sample_multiplier: int = Field(10, description="Candidates drawn per batch = variants × multiplier.")
    existing_mix_file: str | None = Field(
        None, description="An earlier `mixtures.json`; new mixtures stay ≥ 0.01 (L2) away from its rows."
    )

    # infrastructure
    launcher: Literal["local", "beaker"] = Field("local", description="`local` (subprocesses on this machine) or `beaker`.")
    max_concurrency: int | None = Field(
        None, description="Local launcher: runs at once; default: usable cores // `training.threads_per_run`."
    )
    beaker: BeakerConfig = Field(default_factory=BeakerConfig, description="Beaker jobs: budget, workspace, cluster, resources, image, secrets.")
    max_attempts: int = Field(3, description="Per run, counting resubmissions after preemption or failure.")

    # training and evals
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="How each proxy model is trained (olmo-core).")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description=(
        "In-loop validation sets, the offline eval script and the local offline eval."
    ))

    # fitting and storage
    fit: FitOptions = Field(default_factory=FitOptions, description=(
        "What the swarm optimises when it fits: the fit/propose options (sections `regression`, `proposer`, "
        "`constraints`, `filtering`, `eval`), the same model as `olmix fit --config`; flat keys of earlier versions "
        "load. Unset token caps and the seed come from the swarm (`repetition_factor`, `max_tokens`, `seed`)."
    ))
    storage_root: str = Field(DEFAULT_STORAGE_ROOT, description="The artifact store: a local folder, `s3://…` or `gs://…`.")
    priors: PriorsConfig | None = Field(None, description=(
        "Known token counts: skips file listing (output of `olmix priors compute`)."
    ))
    reuse: ReuseConfig | None = Field(None, description=(
        "Mixture reuse after a domain-set update: freeze the previous mixture's untouched leaves into the virtual "
        "domain `existing` ([reuse](../reuse.md))."
    ))

    _free_text: ClassVar[frozenset[str]] = frozenset({"description"})
    _name = field_validator("name")(lambda v: check_name(v, "name"))

    @field_validator("storage_root")
    @classmethod
    def _store_url(cls, v: str) -> str:
        return check_store_url(v, "storage_root")

    @field_validator("seed")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must be >= 0 (got {v})")
        return v

    @field_validator("max_concurrency", "max_attempts")
    @classmethod
    def _positive_opt(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"variants must be > 0 (got {v})")
        return v

    @field_validator("max_tokens")
    @classmethod
    def _tokens(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise ValueError(f"max_tokens must be > 0 (got {v})")
        return v

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        return move_legacy_keys(data, (info.context or {}).get("source", "config"))

    @field_validator("sequence_length", "sample_multiplier")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v

    @field_validator("minimum_weight", "minimum_source_weight", "minimum_topic_weight")
    @classmethod
    def _minimums(cls, v: float) -> float:
        return _unit_weight(v, "minimum weight")  # type: ignore[return-value]

    @field_validator("mix_temperature", "source_mix_temperature", "topic_mix_temperature", "min_strength", "max_strength")
    @classmethod
    def _pos_float(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v

    @field_validator("repetition_factor")
    @classmethod
    def _repf(cls, v: float) -> float:
        if v < 1.0:
            raise ValueError(f"repetition_factor {v} must be >= 1")
        return v

    @field_validator("fixed_source_weights")
    @classmethod
    def _fixed(cls, v: dict[str, float]) -> dict[str, float]:
        for k, w in v.items():
            if not 0.0 <= w <= 1.0:
                raise ValueError(f"weight of {k!r} is {w}, outside [0, 1]")
        total = sum(v.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fixed weights sum to {total:.4f} > 1")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> "ExperimentConfig":
        if not self.sources:
            raise ValueError("sources: at least one source is required")
        names = [s.name for s in self.sources]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ValueError(f"sources: duplicate source names {dups}")
        if self.min_strength > self.max_strength:
            raise ValueError(f"min_strength {self.min_strength} > max_strength {self.max_strength}")
        if self.max_tokens is None:
            if not (self.proxy_model_id and self.chinchilla_multiple):
                raise ValueError("max_tokens: set max_tokens, or proxy_model_id and chinchilla_multiple")
            if self.chinchilla_multiple <= 0:
                raise ValueError(f"chinchilla_multiple must be > 0 (got {self.chinchilla_multiple})")
            model_params(self.proxy_model_id)  # raises on an unknown model id
        source_names = set(names)
        leaves = set(self.leaf_names())
        fixed = dict(self.fixed_source_weights)
        for s in self.sources:
            if s.weight is not None:
                fixed.setdefault(s.name, s.weight)
        for key, where in [(fixed, "fixed_source_weights"), (self.manual_prior or {}, "manual_prior")]:
            unknown = sorted(set(key) - source_names)
            if unknown:
                raise ValueError(f"{where}: unknown sources {unknown} (sources: {sorted(source_names)})")
        total = sum(fixed.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fixed source weights (fixed_source_weights and source `weight`) sum to {total:.4f} > 1")
        unknown = sorted(set(self.nonzero_weight) - source_names - leaves)
        if unknown:
            raise ValueError(f"nonzero_weight: unknown sources or leaves {unknown}")
        if self.manual_prior is not None:
            bad = {k: v for k, v in self.manual_prior.items() if v < 0}
            if bad:
                raise ValueError(f"manual_prior: negative values {bad}")
        if self.priors is not None:
            missing = sorted(leaves - set(self.priors.token_counts))
            if missing:
                raise ValueError(f"priors.token_counts: no count for leaves {missing}")
        if self.reuse is not None:
            if EXISTING in source_names:
                raise ValueError(f"reuse: a source may not be named {EXISTING!r} (the virtual domain of reuse)")
            unknown = sorted(set(self.reuse.recompute) - source_names - leaves)
            if unknown:
                raise ValueError(f"reuse.recompute: unknown sources or leaves {unknown}")
            unknown = sorted(set(self.reuse.frozen or {}) - leaves)
            if unknown:
                raise ValueError(f"reuse.frozen: leaves not in the config's sources {unknown}")
        longest = max_swarm_name_length(self.variants)
        if len(self.name) > longest:
            raise ValueError(f"name: {len(self.name)} characters; with {self.variants} variants at most {longest} fit in a "
                             "run's file name ({name}-{group id}-{variant})")
        batch_tokens(self.training, self.sequence_length)
        check_tokenizer(self.tokenizer, self.training)
        model_choice(self.training, self.proxy_model_id)
        return self

    # derived values -------------------------------------------------------------------------
    def leaf_names(self) -> list[str]:
        return [leaf for s in self.sources for leaf, _, _ in s.leaves()]

    def leaves(self) -> list[tuple[str, list[str], float]]:
        return [leaf for s in self.sources for leaf in s.leaves()]

    def leaf_paths(self) -> dict[str, list[str]]:
        return {leaf: paths for leaf, paths, _ in self.leaves()}

    def leaf_repetition_caps(self) -> dict[str, float]:
        """Max repetition per leaf: min(config repetition_factor, the leaf's max_repetition_factor)."""
        return {leaf: min(self.repetition_factor, rep) for leaf, _, rep in self.leaves()}

    def source_of(self, leaf: str) -> str:
        return leaf.split(":", 1)[0]

    def fixed_weights(self) -> dict[str, float]:
        fixed = dict(self.fixed_source_weights)
        for s in self.sources:
            if s.weight is not None:
                fixed.setdefault(s.name, s.weight)
        return fixed

    @property
    def target_tokens(self) -> int:
        """Tokens per proxy run: max_tokens, or 20 × params × chinchilla_multiple."""
        if self.max_tokens is not None:
            return self.max_tokens
        assert self.proxy_model_id and self.chinchilla_multiple
        return int(20 * model_params(self.proxy_model_id) * self.chinchilla_multiple)

    # io ---------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> "ExperimentConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
        try:
            return cls.model_validate(data, context={"source": source})
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, source)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ExperimentConfig":
        """Load a config from a local path or an fsspec URL (s3://, gs://)."""
        import fsspec

        try:
            with fsspec.open(str(path), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder, not a config file") from None
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: cannot read the config ({e})") from None
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text file (a YAML config is UTF-8 text)") from None
        if "\x00" in text:
            raise ConfigError(f"{path}: not a text file (it contains NUL bytes)")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        return cls.from_dict(data, str(path))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)


def format_validation_error(e: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<top level>"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == RULE_ERROR:  # a cross-field rule of the fit options names its own field
            loc, msg = f"{loc}.{err['ctx']['field']}", str(err["ctx"]["why"])
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not a config field; check the spelling)"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


_PARAM_RE = re.compile(r"(\d+(?:\.\d+)?)([MB])$", re.IGNORECASE)


def model_params(model_id: str) -> int:
    """Nominal parameter count of an olmo-core preset, read from its name (`olmo2_30M` -> 30e6)."""
    m = _PARAM_RE.search(model_id)
    if not m:
        raise ValueError(f"proxy_model_id {model_id!r}: cannot tell its size; use a preset like olmo2_30M or set max_tokens")
    scale = 1_000_000 if m.group(2).upper() == "M" else 1_000_000_000
    return int(float(m.group(1)) * scale)


def load_config(config: str | Path | dict | ExperimentConfig) -> ExperimentConfig:
    """Accept a path/URL, a dict, or a config: what flows and the CLI are given."""
    if isinstance(config, ExperimentConfig):
        return config
    if isinstance(config, dict):
        return ExperimentConfig.from_dict(config)
    return ExperimentConfig.from_yaml(config)
