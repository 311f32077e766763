"""`olmix fit --config fit.yaml`: the fit options as a file, including Ai2 olmix's fit configs unchanged.

Sections: `swarm` (ratios, metrics: paths relative to the file's folder, else the working directory), `priors`
(inline relative_sizes/token_counts, or a path), `eval`, `regression`, `proposer`, `constraints`, `filtering` (see
`options.FitOptions`), plus `output_dir` and `plots`. A file shaped like Ai2's (a `swarm:` section and inline
priors with relative_sizes and token_counts, both required there) is read as Ai2's format: Ai2's defaults apply where
it is silent (log_linear, exact, repetition_factor 4, caps off), each noted, and each field whose meaning differs
here is named in a note. The flat keys of earlier `olmix fit --config` files (`ratios`, `regression_type`,
`metric`, `no_plots`, ...) still load, each with a deprecation note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from olmix_core.errors import ConfigError
from olmix_core.fit.options import FLAT_KEYS, FitOptions, nest_flat_keys

# Ai2 olmix's defaults (olmix/fit/config.py) where they differ from ours
AI2_DEFAULTS = {
    ("regression", "type"): "log_linear",
    ("proposer", "type"): "exact",
    ("constraints", "repetition_factor"): 4.0,
    ("constraints", "enabled"): False,
}
# keys of earlier flat files that were CLI option names, not option names
LEGACY_CLI_KEYS = {"metric": ("filtering", "metrics"), "fixed_weight": ("constraints", "fixed_weights")}
PATH_KEYS = ("ratios", "metrics")


@dataclass
class FitFile:
    """What a fit config file asks for; `values` are the options as nested plain data (CLI flags go on top)."""

    path: str
    ratios: str | None
    metrics: str | None
    priors: str | dict[str, Any] | None
    output_dir: str | None
    values: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _resolve(p: Any, base: Path, what: str) -> str:
    """A path from the file: relative to the file's folder if it exists there, else to the working directory."""
    if not isinstance(p, str) or not p.strip():
        raise ConfigError(f"{what}: expected a path, got {p!r}")
    if "://" in p or Path(p).is_absolute():
        return p
    here = base / p
    if here.exists():
        return str(here)
    if not Path(p).exists():
        raise ConfigError(f"{what}: {p} is neither in the config's folder ({base}) nor in the working directory "
                          f"({Path.cwd()})")
    return p


def read_fit_file(path: str | Path) -> FitFile:
    """Parse a fit config file (ours or Ai2's) into paths and nested option values; nothing is fitted."""
    import yaml

    path = str(path)
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected YAML fit options)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: cannot parse YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of fit options, got {type(data).__name__}")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    base = p.resolve().parent
    notes: list[str] = []
    priors_in = data.get("priors")
    ai2 = "swarm" in data and isinstance(priors_in, dict) and {"relative_sizes", "token_counts"} <= set(priors_in)

    swarm = data.pop("swarm", None) or {}
    if not isinstance(swarm, dict) or set(swarm) - {"ratios", "metrics"}:
        raise ConfigError(f"{path}: swarm: expected a mapping with ratios and metrics (got {swarm!r})")
    paths = {k: swarm.get(k) for k in PATH_KEYS}
    for k in PATH_KEYS:  # flat ratios/metrics of earlier files
        if k in data and isinstance(data[k], str):
            if paths[k] is not None:
                raise ConfigError(f"{path}: {k} and swarm.{k} both given; keep swarm.{k}")
            paths[k] = data.pop(k)
            notes.append(f"{path}: '{k}' at the top level is deprecated: use 'swarm.{k}'")
    resolved = {k: None if v is None else _resolve(v, base, f"{path}: swarm.{k}") for k, v in paths.items()}
    priors = data.pop("priors", None)
    if isinstance(priors, str):
        priors = _resolve(priors, base, f"{path}: priors")
    elif priors is not None and not isinstance(priors, dict):
        raise ConfigError(f"{path}: priors: expected relative_sizes/token_counts or a path, got {priors!r}")
    output_dir = data.pop("output_dir", None)

    if "no_plots" in data:
        notes.append(f"{path}: 'no_plots' is deprecated: use 'plots: false'")
        data["plots"] = not data.pop("no_plots")
    for old, (section, name) in LEGACY_CLI_KEYS.items():
        if old in data:
            notes.append(f"{path}: '{old}' is deprecated: use '{section}.{name}'")
            data.setdefault(section, {})
            if isinstance(data[section], dict):
                data[section][name] = data.pop(old)

    def deprecated(old: str, new: str) -> None:
        notes.append(f"{path}: '{old}' is deprecated: use '{new}'")

    try:
        values = nest_flat_keys(data, deprecated) if any(k in FLAT_KEYS for k in data) else data
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None
    if ai2:
        notes += _ai2_notes(values, path)
    return FitFile(path, resolved["ratios"], resolved["metrics"], priors, output_dir, values, notes)


def _ai2_notes(values: dict[str, Any], path: str) -> list[str]:
    """Apply Ai2's defaults where the file is silent; one line per field whose meaning differs here."""
    notes = []
    for (section, name), default in AI2_DEFAULTS.items():
        part = values.setdefault(section, {})
        if isinstance(part, dict) and name not in part:
            part[name] = default
            notes.append(f"{path}: {section}.{name} not set: Ai2's default {default!r} applies")
    regression = values.get("regression") or {}
    if regression.get("aggregate_task_families") and not (values.get("eval") or {}).get("tasks"):
        regression["aggregate_task_families"] = False
        notes.append(f"{path}: regression.aggregate_task_families is true but eval.tasks names no families: each "
                     "metric is fitted on its own (Ai2's olmix refuses this combination)")
    proposer = values.get("proposer") or {}
    constraints = values.get("constraints") or {}
    ptype = proposer.get("type")
    if proposer.get("temperature") is not None and ptype not in ("simulation", "simulation_iterative"):
        notes.append(f"{path}: proposer.temperature is used by simulation proposers only (in Ai2's olmix too); "
                     f"not by {ptype!r}")
    if proposer.get("make_worst_mix") and ptype == "exact":
        proposer["type"] = "general"
        notes.append(f"{path}: proposer.make_worst_mix with type exact: Ai2's exact proposer ignores make_worst_mix; "
                     "here the general proposer finds the worst mixture")
    if constraints.get("enabled") is False:
        unused = [k for k in ("target_tokens", "repetition_factor") if constraints.get(k) is not None]
        if unused:
            notes.append(f"{path}: constraints.enabled is false: {', '.join('constraints.' + k for k in unused)} unused "
                         "(no token caps)")
    drops = set((values.get("filtering") or {}).get("drop_metrics") or [])
    tasks = (values.get("eval") or {}).get("tasks") or {}
    agg = (values.get("regression") or {}).get("aggregate_task_families")
    if agg and isinstance(tasks, dict):
        inside = sorted({t for ts in tasks.values() for t in (ts.values() if isinstance(ts, dict) else ts)} & drops)
        if inside:
            notes.append(f"{path}: filtering.drop_metrics: {len(inside)} dropped task(s) are left out of their "
                         "family's mean (Ai2's olmix drops after aggregating, where task names have no effect)")
    return notes


def fit_options(file: FitFile) -> FitOptions:
    """The file's options alone (no CLI flags), errors naming the file and the field."""
    return FitOptions.from_dict(file.values, file.path)
